"""A Holdfast appliance image in a QEMU virtual machine, driven like a fleet operator would:
its firmware (OVMF, or AAVMF on arm64), its disk, a host-forwarded port for the appliance's
HTTP listener, and the QEMU guest agent (in the image) to run commands on it. QMP `quit` is a
power cut: the machine stops at once, with no shutdown.

Only the Python standard library; imported by proofs.py.
"""

import base64
import json
import os
import random
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request

FIRMWARE = {
    "x86_64": (
        "qemu-system-x86_64",
        "/usr/share/OVMF/OVMF_CODE_4M.fd",
        "/usr/share/OVMF/OVMF_VARS_4M.fd",
        ["-machine", "q35", "-device", "i6300esb", "-action", "watchdog=reset"],
    ),
    "arm64": (
        "qemu-system-aarch64",
        "/usr/share/AAVMF/AAVMF_CODE.fd",
        "/usr/share/AAVMF/AAVMF_VARS.fd",
        ["-machine", "virt", "-cpu", "cortex-a57"],
    ),
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GuestError(Exception):
    pass


class Vm:
    def __init__(self, work, disk, arch="x86_64", extra_disks=(), memory_mb=1024):
        self.work = work
        self.disk = disk
        self.arch = arch
        self.extra_disks = list(extra_disks)
        self.memory_mb = memory_mb
        self.port = free_port()
        self.proc = None
        self.console = os.path.join(work, "console.log")
        self.vars = os.path.join(work, "efivars.fd")
        self.qga_path = os.path.join(work, "qga.sock")
        self.qmp_path = os.path.join(work, "qmp.sock")
        binary, code, vars_template, _ = FIRMWARE[arch]
        self.binary, self.code = binary, code
        if not os.path.exists(self.vars):
            shutil.copy(vars_template, self.vars)

    # --- The machine.

    def start(self):
        """Powers the machine on (its disk and firmware variables as the last run left them)."""
        _, _, _, machine = FIRMWARE[self.arch]
        accel = os.environ.get("HOLDFAST_VM_ACCEL", "tcg,thread=multi")
        cmd = [
            self.binary, *machine, "-accel", accel, "-m", str(self.memory_mb), "-smp", "2",
            "-drive", f"if=pflash,format=raw,readonly=on,file={self.code}",
            "-drive", f"if=pflash,format=raw,file={self.vars}",
            "-drive", f"file={self.disk},format=raw,if=virtio,cache=writeback",
            "-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{self.port}-:8080",
            "-device", "virtio-net-pci,netdev=n0",
            "-device", "virtio-serial-pci",
            "-chardev", f"socket,id=qga,path={self.qga_path},server=on,wait=off",
            "-device", "virtserialport,chardev=qga,name=org.qemu.guest_agent.0",
            "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
            "-display", "none", "-serial", f"file:{self.console}.{int(time.time())}",
        ]
        for extra in self.extra_disks:
            cmd += ["-drive", f"file={extra},format=raw,if=virtio,readonly=on"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.work, "qemu.err"), "a"))
        self.started = time.monotonic()
        deadline = time.monotonic() + 10
        while not os.path.exists(self.qmp_path):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise GuestError(f"qemu did not start: {open(os.path.join(self.work, 'qemu.err')).read()}")
            time.sleep(0.1)

    def _qmp(self, command):
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(self.qmp_path)
            f = s.makefile("rw")
            f.readline()
            for c in ("qmp_capabilities", command):
                f.write(json.dumps({"execute": c}) + "\n")
                f.flush()
                f.readline()

    def power_cut(self):
        """QMP quit: the machine stops now, no shutdown, nothing flushed by the guest."""
        self._qmp("quit")
        self.proc.wait(timeout=30)
        for path in (self.qmp_path, self.qga_path):
            if os.path.exists(path):
                os.unlink(path)

    def reset(self):
        """QMP system_reset: the reset button, what a hardware watchdog does to a hung machine."""
        self._qmp("system_reset")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for path in (self.qmp_path, self.qga_path):
            if os.path.exists(path):
                os.unlink(path)

    def console_text(self):
        logs = sorted(p for p in os.listdir(self.work) if p.startswith("console.log."))
        return "".join(open(os.path.join(self.work, p), errors="replace").read() for p in logs)

    # --- The appliance over HTTP (the host-forwarded port).

    def http(self, method, path, body=None, headers=None, timeout=10):
        url = f"http://127.0.0.1:{self.port}{path}"
        data = body.encode() if isinstance(body, str) else body
        request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def wait_http(self, path, timeout):
        """Seconds until `path` answers 200, or GuestError."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            try:
                if self.http("GET", path, timeout=3)[0] == 200:
                    return time.monotonic() - start
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise GuestError("the machine stopped")
            time.sleep(1)
        raise GuestError(f"{path} did not answer within {timeout}s")

    # --- The guest agent.

    def _agent(self, request, timeout):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(timeout)
            s.connect(self.qga_path)
            f = s.makefile("rwb")
            token = random.randrange(1, 2**31)
            f.write(json.dumps({"execute": "guest-sync", "arguments": {"id": token}}).encode() + b"\n")
            f.flush()
            while True:
                line = f.readline()
                if not line:
                    raise GuestError("guest agent closed the connection")
                try:
                    if json.loads(line.strip(b"\xff").decode()).get("return") == token:
                        break
                except ValueError:
                    continue
            f.write(json.dumps(request).encode() + b"\n")
            f.flush()
            answer = json.loads(f.readline())
        if "error" in answer:
            raise GuestError(f"guest agent: {answer['error']}")
        return answer["return"]

    def agent(self, request, timeout=10):
        """One guest-agent request, retried while the agent is not (yet) answering."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self._agent(request, timeout=5)
            except (OSError, GuestError, ValueError) as e:
                if time.monotonic() > deadline:
                    raise GuestError(f"guest agent not answering: {e}") from e
                time.sleep(1)

    def sh(self, script, timeout=120, check=True):
        """Runs a shell script on the guest as root: (exit code, stdout, stderr)."""
        pid = self.agent({"execute": "guest-exec", "arguments": {
            "path": "/bin/sh", "arg": ["-c", script], "capture-output": True}}, timeout=timeout)["pid"]
        deadline = time.monotonic() + timeout
        while True:
            status = self.agent({"execute": "guest-exec-status", "arguments": {"pid": pid}}, timeout=30)
            if status.get("exited"):
                break
            if time.monotonic() > deadline:
                raise GuestError(f"`{script}` still running after {timeout}s")
            time.sleep(0.5)
        out = base64.b64decode(status.get("out-data", "")).decode(errors="replace")
        err = base64.b64decode(status.get("err-data", "")).decode(errors="replace")
        code = status.get("exitcode", -1)
        if check and code != 0:
            raise GuestError(f"`{script}` exited {code}:\n{out}\n{err}")
        return code, out, err

    def reboot(self):
        """Asks the guest to reboot (its agent stops with it, so nothing is waited for)."""
        self.agent({"execute": "guest-exec", "arguments": {
            "path": "/bin/systemctl", "arg": ["--no-block", "reboot"]}})

    def boot_id(self, timeout=30):
        return self.sh("cat /proc/sys/kernel/random/boot_id", timeout=timeout)[1].strip()

    def wait_new_boot(self, old_boot_id, timeout):
        """Seconds until the guest agent answers from a boot other than `old_boot_id`."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            try:
                current = self._sh_quick("cat /proc/sys/kernel/random/boot_id")
                if current and current != old_boot_id:
                    return time.monotonic() - start, current
            except (OSError, GuestError, ValueError):
                pass
            if self.proc.poll() is not None:
                raise GuestError("the machine stopped")
            time.sleep(2)
        raise GuestError(f"no new boot within {timeout}s")

    def _sh_quick(self, script):
        pid = self._agent({"execute": "guest-exec", "arguments": {
            "path": "/bin/sh", "arg": ["-c", script], "capture-output": True}}, timeout=5)["pid"]
        for _ in range(20):
            status = self._agent({"execute": "guest-exec-status", "arguments": {"pid": pid}}, timeout=5)
            if status.get("exited"):
                return base64.b64decode(status.get("out-data", "")).decode().strip()
            time.sleep(0.25)
        return None
