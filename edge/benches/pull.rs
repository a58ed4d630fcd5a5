//! Pull benchmark: the real `holdfast sync pull` against the Odoo simulator holding a large
//! warehouse; prints wall time, records/s and the appliance's peak resident memory.
//!
//! ```text
//! cargo bench -p holdfast --bench pull                          # 100k products, 500k quants
//! HOLDFAST_BENCH_SCALE=0.1 cargo bench -p holdfast --bench pull
//! ```

// Benchmark code: a failed step should stop with its message.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::Instant;

use holdfast_sync::dataset::{Dataset, DatasetSpec};
use holdfast_sync::sim::{SimConfig, Simulator, odoo_now};
use nix::sys::resource::{UsageWho, getrusage};

fn main() {
    let scale: f64 = std::env::var("HOLDFAST_BENCH_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    let spec = DatasetSpec {
        seed: 1,
        products: (100_000.0 * scale) as usize,
        quants: (500_000.0 * scale) as usize,
        pickings: (2_000.0 * scale) as usize,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let data = Dataset::generate(&spec);
    let sim = rt
        .block_on(Simulator::start(SimConfig::default(), &data))
        .unwrap();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    std::fs::write(dir.path().join("key"), &sim.config().api_key).unwrap();
    let config = dir.path().join("holdfast.toml");
    std::fs::write(
        &config,
        format!(
            "[site]\nid = \"bench\"\n[store]\npath = \"{}\"\n[log]\nlevel = \"warn\"\n[odoo]\nurl = \"{}\"\ndatabase = \"{}\"\nlogin = \"{}\"\napi_key_file = \"{}\"\ncompany_id = 1\nwarehouse_id = 1\n",
            dir.path().join("holdfast.db").display(),
            sim.url(),
            sim.config().database,
            sim.config().login,
            dir.path().join("key").display()
        ),
    )
    .unwrap();
    println!(
        "holdfast pull benchmark: simulator with {} products, {} quants, {} pickings ({} records)",
        spec.products,
        spec.quants,
        spec.pickings,
        data.len()
    );
    let start = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .args(["--config", config.to_str().unwrap(), "sync", "pull"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Peak RSS of the appliance itself: VmHWM of its own address space, sampled until it
    // exits (rusage of children would count the pages a fork shares with this process).
    let pid = child.id();
    let sampler = std::thread::spawn(move || {
        let mut peak_kib = 0u64;
        while let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            if let Some(kib) = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            {
                peak_kib = peak_kib.max(kib);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        peak_kib
    });
    let out = child.wait_with_output().unwrap();
    let wall = start.elapsed();
    let peak_kib = sampler.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let records: f64 = stdout
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    println!("{}", stdout.trim());
    println!(
        "full pull of the site's scope             : {:>8.2} s (target < 60 s)",
        wall.as_secs_f64()
    );
    println!(
        "records written to the mirror             : {:>8.0} ({:.0} records/s)",
        records,
        records / wall.as_secs_f64()
    );
    println!(
        "peak resident memory of the appliance     : {:>8.1} MB",
        peak_kib as f64 / 1024.0
    );

    // Incremental: 100 records changed in the cloud (products, moves, quants, pickings).
    sim.with_tables(|t| {
        let now = odoo_now();
        for i in 0..25 {
            t.write(
                "product.product",
                data.products[i * 7].id.0,
                serde_json::json!({"name": format!("Changed {i}")}),
                &now,
            );
            t.write(
                "stock.quant",
                data.quants[i * 11].id.0,
                serde_json::json!({"quantity": 7.0}),
                &now,
            );
            t.write(
                "stock.picking",
                data.pickings[i].id.0,
                serde_json::json!({"origin": "changed"}),
                &now,
            );
            t.write(
                "stock.move",
                data.moves[i * 3].id.0,
                serde_json::json!({"product_uom_qty": 3.0}),
                &now,
            );
        }
    });
    // CPU time of finished children: the appliance's own work, apart from the simulator's.
    let children_cpu = || {
        let usage = getrusage(UsageWho::RUSAGE_CHILDREN).unwrap();
        let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
        secs(usage.user_time()) + secs(usage.system_time())
    };
    let cpu_before = children_cpu();
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .args(["--config", config.to_str().unwrap(), "sync", "pull"])
        .output()
        .unwrap();
    let wall = start.elapsed();
    let cpu = children_cpu() - cpu_before;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{}", String::from_utf8_lossy(&out.stdout).trim());
    println!(
        "incremental pull, 100 records changed     : {:>8.3} s (target < 1 s; includes process start, connect and 8 locations of quant reconciliation)",
        wall.as_secs_f64()
    );
    println!(
        "  the appliance's own CPU time             : {:>8.3} s (the rest is the simulator scanning without indexes)",
        cpu
    );
}
