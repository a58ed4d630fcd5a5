//! Crash test: a child process appends to the journal as fast as it can and prints every
//! acknowledged entry; it is killed with SIGKILL at a random moment, many times over the
//! same database. After each kill, every acknowledged entry must be there and the database
//! must pass `PRAGMA integrity_check`.
//!
//! The child is this test binary run again with `HOLDFAST_CRASH_CHILD` set, so it drives the
//! real store code (writer thread, group commit, WAL with synchronous=FULL).

// Test and benchmark code: a failed step should stop with its message.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use holdfast::store::{Lane, NewEntry, Store, StoreOptions};
use holdfast_sync::ops::{Operation, PickOp};

const CHILD_ENV: &str = "HOLDFAST_CRASH_CHILD";

fn entry(n: u64) -> NewEntry {
    NewEntry {
        id: None,
        device: format!("scanner-{}", n % 8),
        operator: None,
        op: Operation::Pick(PickOp {
            picking_id: (n % 13) as i64 + 1,
            move_id: (n % 29) as i64 + 1,
            product_id: (n % 101) as i64 + 1,
            location_id: 10,
            lot_name: None,
            package_id: None,
            quantity: 1.0,
            view_quantity: 5.0,
        }),
    }
}

/// The child: 16 concurrent appenders; one line per acknowledged append.
fn child(db: &Path) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = Store::open(StoreOptions::new(db, "crash")).unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        for w in 0..16u64 {
            let store = store.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                for n in 0.. {
                    let appended = store
                        .append(Lane::Device, entry(w * 1_000_000 + n))
                        .await
                        .unwrap();
                    if tx.send(appended.id.to_string()).is_err() {
                        return;
                    }
                }
            });
        }
        let mut out = std::io::stdout().lock();
        while let Some(id) = rx.recv().await {
            // Written only after the append was acknowledged, i.e. committed.
            writeln!(out, "{id}").unwrap();
            out.flush().unwrap();
        }
    });
}

#[test]
fn acknowledged_appends_survive_sigkill() {
    if let Some(db) = std::env::var_os(CHILD_ENV) {
        child(Path::new(&db));
        return;
    }
    let runs: usize = std::env::var("HOLDFAST_CRASH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let seed = std::env::var("HOLDFAST_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("crash test: {runs} runs, seed {seed} (set HOLDFAST_CRASH_SEED to replay)");
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("holdfast.db");
    let mut acked: HashSet<String> = HashSet::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for run in 0..runs {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "acknowledged_appends_survive_sigkill",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &db)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter(|l| l.len() == 36)
                .collect::<Vec<_>>()
        });
        std::thread::sleep(Duration::from_millis(rng.u64(30..400)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Lines already in the pipe were acknowledged before the kill.
        let lines = reader.join().unwrap();

        let store = Store::open(StoreOptions::new(&db, "crash")).unwrap();
        let problems = store.read(|r| r.integrity_check()).unwrap();
        assert!(problems.is_empty(), "seed {seed}, run {run}: {problems:?}");
        // Every entry acknowledged in this run is there...
        for id in &lines {
            let found = store.read(|r| r.journal_entry(id)).unwrap();
            assert!(
                found.is_some(),
                "seed {seed}, run {run}: acknowledged entry {id} lost"
            );
        }
        acked.extend(lines);
        // ...and nothing from earlier runs went missing.
        let total: i64 = store
            .read(|r| r.queue_stats())
            .unwrap()
            .by_state
            .values()
            .sum();
        assert!(
            total as usize >= acked.len(),
            "seed {seed}, run {run}: {total} entries, {} acknowledged",
            acked.len()
        );
        rt.block_on(store.shutdown()).unwrap();
    }
    assert!(
        acked.len() > runs,
        "the child acknowledged almost nothing: {}",
        acked.len()
    );
    eprintln!(
        "crash test: {} acknowledged entries survived {runs} kills",
        acked.len()
    );
}
