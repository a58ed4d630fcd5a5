#!/usr/bin/env python3
"""The appliance image's proofs, in a QEMU virtual machine (software emulation unless
HOLDFAST_VM_ACCEL says otherwise), against `holdfast sim` on the host as its Odoo:

  boot      the image provisioned from its ESP boots with OVMF + systemd-boot; /healthz
            answers through a host-forwarded port; `systemctl is-system-running` is running;
            the provisioning file is consumed; the boot is blessed
  update    a signed bundle of a newer version is installed into the other slot from update
            media; after a reboot that slot runs, blessed, and a journal entry made before
            the update is still there (so is the backup the update took first)
  rollback  a bundle whose Holdfast refuses to start is installed; the machine reboots into
            it, its health fails on every try, and systemd-boot comes back to the good slot
            by itself, data intact
  powercut  the machine is stopped by QMP `quit` during a burst of floor writes; after the
            next boot the store passes `holdfast db check` and every acknowledged entry is
            in the journal

  multi-user  (arm64, whose image may have no Holdfast) boots to multi-user.target

    proofs.py --out OUT --holdfast HOST_BINARY [--arch x86_64] [--only boot,update,...]

OUT is build.sh's output directory (built with --boot-tries 2); HOST_BINARY runs the
simulator. Prints each figure on a line starting with "figure:".
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vm import GuestError, Vm, free_port  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
IMAGES = os.path.dirname(HERE)

BOOT_SECS = 300  # the stated bound: one boot to a ready appliance under software emulation
REBOOT_WATCHDOG_SECS = 120  # RebootWatchdogSec in the image's system.conf.d
TOKEN_DEVICE = "vm-handheld"
BADGE = "BADGE-VM-1"


def log(message):
    print(f"proofs: {message}", flush=True)


def figure(name, value):
    print(f"figure: {name}: {value}", flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


class Failed(Exception):
    pass


def expect(condition, message):
    if not condition:
        raise Failed(message)


class Site:
    """The host side: the simulated Odoo, the update media, the machine's disk."""

    def __init__(self, args, work):
        self.args = args
        self.work = work
        self.sim_port = free_port()
        self.sim = subprocess.Popen(
            [args.holdfast, "sim", "--listen", f"127.0.0.1:{self.sim_port}", "--odoo-version", "19"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        banner = self.sim.stdout.readline() + self.sim.stdout.readline()
        expect("simulator" in banner, f"holdfast sim did not start: {banner}")
        fields = banner.split('"')
        self.database, self.login, self.api_key = fields[1], fields[3], fields[5]

    def provisioning(self):
        """The files a site puts on the ESP: config and API key (Odoo: the host's simulator,
        which the guest reaches at 10.0.2.2)."""
        d = os.path.join(self.work, "holdfast-provision")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "holdfast.toml"), "w") as f:
            f.write(f"""[site]
id = "vm-site"
name = "Image test site"

[http]
listen = "0.0.0.0:8080"

[odoo]
url = "http://10.0.2.2:{self.sim_port}"
database = "{self.database}"
login = "{self.login}"
api_key_file = "odoo-api-key"
company_id = 1
warehouse_id = 1

[floor]
require_source_location = false
over_pick = "allow"
over_pick_factor = 1000
""")
        with open(os.path.join(d, "odoo-api-key"), "w") as f:
            f.write(self.api_key + "\n")
        with open(os.path.join(d, "managers"), "w") as f:
            f.write("# the site's console accounts\nanna manager correct-horse-battery-9\n")
        return d

    def stop(self):
        self.sim.kill()
        self.sim.wait()


def esp_offset(disk):
    table = json.loads(subprocess.run(["sfdisk", "-J", disk], check=True, capture_output=True, text=True).stdout)
    return table["partitiontable"]["partitions"][0]["start"] * 512


def update_media(args, work):
    """Two bundles on an ext4 volume labelled HOLDFAST-UPD (what a USB stick would carry):
    a good newer version, and one whose Holdfast refuses to start."""
    media = os.path.join(work, "media")
    os.makedirs(media, exist_ok=True)
    bundle = os.path.join(IMAGES, "bundle.sh")
    start = time.monotonic()
    run([bundle, args.arch, args.out, "0.1.0-update", os.path.join(media, "good.raucb")])
    figure("bundle build (good, seconds)", round(time.monotonic() - start))
    figure("bundle size (MiB)", os.path.getsize(os.path.join(media, "good.raucb")) >> 20)
    broken = os.path.join(work, "broken-overlay/usr/bin")
    os.makedirs(broken, exist_ok=True)
    with open(os.path.join(broken, "holdfast"), "w") as f:
        f.write("#!/bin/sh\necho 'holdfast: this build refuses to start (rollback proof)' >&2\nexit 1\n")
    os.chmod(os.path.join(broken, "holdfast"), 0o755)
    run([bundle, args.arch, args.out, "0.1.0-broken", os.path.join(media, "broken.raucb"),
         "--overlay", os.path.join(work, "broken-overlay")])
    size = sum(os.path.getsize(os.path.join(media, f)) for f in os.listdir(media)) >> 20
    image = os.path.join(work, "media.ext4")
    run(["mkfs.ext4", "-q", "-L", "HOLDFAST-UPD", "-d", media, image, f"{size + 64}M"])
    shutil.rmtree(media)
    return image


def rauc_status(vm):
    return json.loads(vm.sh("rauc status --output-format=json")[1])


def entries(vm):
    return sorted(vm.sh("ls /boot/efi/loader/entries")[1].split())


def wait_ready(vm, what, since=None):
    """Waits for a ready appliance and a finished boot (holdfast-health passed): prints the
    seconds from `since` (default: power-on) to /healthz."""
    vm.wait_http("/healthz", BOOT_SECS)
    figure(f"{what}: to /healthz (seconds)", round(time.monotonic() - (since or vm.started)))
    code, state, _ = vm.sh("systemctl is-system-running --wait", timeout=BOOT_SECS, check=False)
    state = state.strip()
    if state != "running":
        failed = vm.sh("systemctl --failed --no-legend --plain", check=False)[1]
        raise Failed(f"{what}: system is {state}; failed units:\n{failed}")
    # boot-complete.target reached: holdfast-health passed.
    vm.sh("systemctl is-active holdfast-health.service boot-complete.target")


class Floor:
    """A handheld on the appliance's device API: signs in, opens a pick session, scans."""

    def __init__(self, vm):
        self.vm = vm
        token = vm.sh(f"holdfast device issue {TOKEN_DEVICE}")[1].strip()
        vm.sh(f"holdfast operator add picker --name 'Image test' --badge {BADGE}")
        self.auth = f"Bearer {token}"
        self.n = 0
        self.acknowledged = []
        status, body = self.get("/api/v1/pickings")
        expect(status == 200, f"pickings: {status} {body}")
        self.post("/api/v1/login", {"badge": BADGE}, 200)
        # The first picking with a barcoded, untracked move that opens a pick session.
        for picking, code in self.candidates(json.loads(body)["pickings"]):
            if self.post("/api/v1/sessions", {"workflow": "pick", "picking_id": picking}, None)[0] == 201:
                self.picking, self.code = picking, code
                break
        else:
            raise Failed("no picking with a barcoded, untracked move opens a pick session")

    def get(self, path):
        return self.vm.http("GET", path, headers={"Authorization": self.auth})

    def candidates(self, pickings):
        for p in pickings:
            status, body = self.get(f"/api/v1/pickings/{p['id']}")
            if status != 200:
                continue
            for move in json.loads(body).get("moves", []):
                if move.get("barcode") and move.get("tracking") == "none":
                    yield p["id"], move["barcode"]
                    break

    def post(self, path, body, want):
        """POSTs as the handheld; with `want`, the status must be it and the JSON answer is
        returned; without, (status, text)."""
        self.n += 1
        status, answer = self.vm.http("POST", path, json.dumps(body), headers={
            "Authorization": self.auth, "Content-Type": "application/json",
            "Idempotency-Key": f"vm-{time.time_ns()}-{self.n}"}, timeout=15)
        if want is None:
            return status, answer
        expect(status == want, f"{path}: HTTP {status} {answer}")
        return json.loads(answer)

    def scan(self):
        answer = self.post("/api/v1/scan", {"code": self.code}, 200)
        expect(answer.get("status") in ("ok", "warning"), f"scan: {answer}")
        for entry in answer.get("entries", []):
            self.acknowledged.append(str(entry["id"]))


def journal_ids(vm):
    out = vm.sh("holdfast journal list --json --limit 1000000", timeout=300)[1]
    return {str(json.loads(line)["id"]) for line in out.splitlines() if line.strip()}


def prove_boot(vm):
    wait_ready(vm, "first boot from power-on")
    expect(vm.sh("test -e /boot/efi/holdfast-provision", check=False)[0] != 0,
           "the provisioning directory is still on the ESP")
    expect(rauc_status(vm)["booted"] == "a", "the factory image did not boot slot A")
    data_mib = int(vm.sh("df -m --output=size /data | tail -n 1")[1])
    figure("first boot: /data file system (MiB; 512 in the image, flashed to a disk 2048 larger)", data_mib)
    expect(data_mib > 2400, f"the data partition did not grow to the disk: {data_mib} MiB")
    managers = vm.sh("holdfast manager list")[1]
    expect("anna" in managers, f"the provisioned console account is missing: {managers}")
    figure("first boot: systemctl is-system-running", "running")


def prove_update(vm, floor):
    floor.scan()
    before = journal_ids(vm)
    expect(set(floor.acknowledged) <= before, "an acknowledged entry is not in the journal")
    vm.sh("mkdir -p /run/media && mount -o ro /dev/disk/by-label/HOLDFAST-UPD /run/media")
    start = time.monotonic()
    vm.sh("rauc install /run/media/good.raucb", timeout=1200)
    figure("update: rauc install (seconds)", round(time.monotonic() - start))
    expect(entries(vm) == ["holdfast-a.conf", "holdfast-b+2.conf"], f"entries after install: {entries(vm)}")
    backups = vm.sh("ls /var/lib/holdfast/backups")[1]
    expect("pre-update-" in backups, f"no pre-update backup: {backups}")
    old = vm.boot_id()
    start = time.monotonic()
    vm.reboot()
    vm.wait_new_boot(old, BOOT_SECS)
    wait_ready(vm, "update: from the reboot", since=start)
    figure("update: reboot to a ready, blessed slot B (seconds)", round(time.monotonic() - start))
    status = rauc_status(vm)
    expect(status["booted"] == "b", f"booted {status['booted']} after the update")
    expect(entries(vm) == ["holdfast-a.conf", "holdfast-b.conf"], f"slot B not blessed: {entries(vm)}")
    release = vm.sh("cat /usr/lib/holdfast-image/release")[1]
    expect("IMAGE_VERSION=0.1.0-update" in release, release)
    expect(before <= journal_ids(vm), "journal entries made before the update are gone")


def prove_rollback(vm, floor):
    before = journal_ids(vm)
    vm.sh("mkdir -p /run/media && (mountpoint -q /run/media || mount -o ro /dev/disk/by-label/HOLDFAST-UPD /run/media)")
    vm.sh("rauc install /run/media/broken.raucb", timeout=1200)
    expect(entries(vm) == ["holdfast-a+2.conf", "holdfast-b.conf"], f"entries after install: {entries(vm)}")
    old = vm.boot_id()
    start = time.monotonic()
    vm.reboot()
    # Two trial boots of A fail their health and reboot; then systemd-boot starts B again.
    boots = resets = 0
    while True:
        try:
            _, old = vm.wait_new_boot(old, BOOT_SECS + REBOOT_WATCHDOG_SECS)
        except GuestError as e:
            # A reboot hung past the image's reboot watchdog: under emulation, in the firmware,
            # where no watchdog is armed. Once, the harness presses reset as a board's
            # watchdog would (the trial still costs its try); the console says where it hung.
            if resets or vm.proc.poll() is not None:
                raise
            resets += 1
            log(f"rollback: {e}; console tail:\n{vm.console_text()[-3000:]}\nproofs: pressing reset")
            vm.reset()
            continue
        boots += 1
        slot = vm.sh("sed -n 's/.*rauc\\.slot=\\([ab]\\).*/\\1/p' /proc/cmdline")[1].strip()
        log(f"rollback: boot {boots} on slot {slot}")
        if slot == "b":
            break
        expect(boots < 4, "still booting the broken slot after its tries")
    wait_ready(vm, "rollback: from the reboot", since=start)
    figure("rollback: reboot into the broken slot to ready on the good one (seconds)", round(time.monotonic() - start))
    figure("rollback: boots", boots)
    figure("rollback: resets pressed by the harness", resets)
    expect(entries(vm) == ["holdfast-a+0-2.conf", "holdfast-b.conf"], f"entries after rollback: {entries(vm)}")
    status = rauc_status(vm)
    expect(status["booted"] == "b", f"booted {status['booted']}")
    expect(before <= journal_ids(vm), "journal entries lost in the rollback")
    verdicts = vm.sh("cat /data/boot-health.log")[1]
    failed = [line for line in verdicts.splitlines() if "0.1.0-broken: FAILED" in line]
    expect(len(failed) == 2, f"the two failed trials are not in /data/boot-health.log:\n{verdicts}")
    floor.scan()


def config_drive(site, work):
    """A FAT volume labelled HF-CONFIG with the site's files and a new site name."""
    files = site.provisioning()
    toml = os.path.join(files, "holdfast.toml")
    with open(toml) as f:
        text = f.read().replace('name = "Image test site"', 'name = "Image test site (drive)"')
    with open(toml, "w") as f:
        f.write(text)
    drive = os.path.join(work, "config-drive.vfat")
    run(["mkfs.vfat", "-n", "HF-CONFIG", "-C", drive, "8192"], stdout=subprocess.DEVNULL)
    run(["mcopy", "-i", drive, toml, os.path.join(files, "odoo-api-key"), "::/"])
    return drive


def prove_power_cut(vm, floor, site, site_work):
    stop = threading.Event()
    errors = []

    def burst():
        while not stop.is_set():
            try:
                floor.scan()
            except (OSError, Failed) as e:
                errors.append(str(e))
                return

    threads = [threading.Thread(target=burst) for _ in range(1)]
    for t in threads:
        t.start()
    time.sleep(8)
    acknowledged = list(floor.acknowledged)
    vm.power_cut()
    stop.set()
    for t in threads:
        t.join()
    figure("power cut: entries acknowledged before the cut", len(acknowledged))
    expect(len(acknowledged) > 0, "no entry acknowledged before the cut")
    # The machine comes back with a config drive (a USB stick labelled HF-CONFIG) giving
    # the site a new name: applied once, before the appliance starts.
    vm.extra_disks.append(config_drive(site, site_work))
    vm.start()
    wait_ready(vm, "after the power cut, from power-on")
    vm.sh("runuser -u holdfast -- holdfast db check --database /var/lib/holdfast/holdfast.db")
    missing = set(acknowledged) - journal_ids(vm)
    expect(not missing, f"acknowledged entries lost in the power cut: {sorted(missing)}")
    figure("power cut: acknowledged entries found after the boot", f"{len(acknowledged)} of {len(acknowledged)}")
    vm.sh("grep -qx 'name = \"Image test site (drive)\"' /etc/holdfast/holdfast.toml")
    vm.sh("test -s /etc/holdfast/.provisioned-drive")
    status, body = vm.http("GET", "/api/v1/status", headers={"Authorization": floor.auth})
    expect(status == 200 and "Image test site (drive)" in body, f"the drive's site name is not served: {status} {body[:300]}")


def prove_multi_user(args, work, disk):
    vm = Vm(work, disk, args.arch)
    try:
        vm.start()
        # Another architecture under emulation boots several times slower.
        bound = BOOT_SECS * (1 if args.arch == os.uname().machine else 4)
        vm.boot_id(timeout=bound)
        code, state, _ = vm.sh("systemctl is-system-running --wait", timeout=bound, check=False)
        figure(f"{args.arch}: power-on to guest agent and finished boot (seconds)", round(time.monotonic() - vm.started))
        vm.sh("systemctl is-active multi-user.target")
        failed = vm.sh("systemctl --failed --no-legend --plain", check=False)[1]
        figure(f"{args.arch}: systemctl is-system-running", f"{state.strip()} (failed units: {failed.strip() or 'none'})")
        expect(state.strip() == "running", f"system is {state.strip()}: {failed}")
        log("multi-user proof passed")
        return 0
    except (Failed, GuestError) as e:
        log(f"FAILED: {e}")
        print(f"--- the machine's console (last lines):\n{vm.console_text()[-6000:]}", file=sys.stderr)
        return 1
    finally:
        vm.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def main():
    # Stopped from outside (a CI timeout): the machine and the simulator go with us.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--holdfast")
    parser.add_argument("--arch", default="x86_64")
    parser.add_argument("--only", default="boot,update,rollback,powercut")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--media", help="update media from an earlier run (--keep) instead of new bundles")
    args = parser.parse_args()
    only = args.only.split(",")
    args.out = os.path.abspath(args.out)
    work = tempfile.mkdtemp(prefix="holdfast-vm-", dir=os.environ.get("TMPDIR", "/var/tmp"))
    log(f"work directory {work}")
    # The image flashed to a disk 2 GiB larger than itself: the data partition gets the rest.
    image = os.path.join(args.out, f"holdfast-{args.arch}.img")
    disk = os.path.join(work, "disk.img")
    with open(disk, "wb") as f:
        f.truncate(os.path.getsize(image) + (2 << 30))
    run([os.path.join(IMAGES, "flash.sh"), image, disk])
    if only == ["multi-user"]:
        sys.exit(prove_multi_user(args, work, disk))
    if not args.holdfast:
        parser.error("--holdfast is needed (the simulator)")
    site = Site(args, work)
    vm = None
    try:
        offset = esp_offset(disk)
        run(["mcopy", "-s", "-i", f"{disk}@@{offset}", site.provisioning(), "::/holdfast-provision"])
        extra = []
        if {"update", "rollback"} & set(only):
            extra = [os.path.abspath(args.media) if args.media else update_media(args, work)]
        vm = Vm(work, disk, args.arch, extra)
        vm.start()
        prove_boot(vm)
        floor = Floor(vm)
        if "update" in only:
            prove_update(vm, floor)
        if "rollback" in only:
            prove_rollback(vm, floor)
        if "powercut" in only:
            prove_power_cut(vm, floor, site, work)
        log("all proofs passed")
    except (Failed, GuestError, subprocess.CalledProcessError) as e:
        log(f"FAILED: {e}")
        if vm:
            tail = vm.console_text()[-6000:]
            print(f"--- the machine's console (last lines):\n{tail}", file=sys.stderr)
        sys.exit(1)
    finally:
        if vm:
            vm.stop()
        site.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
