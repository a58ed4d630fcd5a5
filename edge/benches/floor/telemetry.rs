//! Telemetry's cost on the floor: the same handhelds with the MQTT telemetry off, on, and on
//! with its broker black-holed behind a fault proxy.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use holdfast::http::AppState;
use holdfast::store::Store;
use tokio::runtime::Runtime;

use crate::client::Handheld;
use crate::run::{Run, local_closed, local_paced, ms};
use crate::{mosquitto, progress};

/// Telemetry to the broker behind `addr`, every 5 s (the shortest interval allowed).
pub fn telemetry_settings(addr: SocketAddr) -> holdfast::telemetry::Settings {
    use holdfast::telemetry::profile::{Broker, Login, Profile, Protocol};
    holdfast::telemetry::Settings {
        site: "bench".into(),
        broker: Broker {
            profile: Profile::Generic {
                prefix: "holdfast".into(),
            },
            host: addr.ip().to_string(),
            port: addr.port(),
            tls: None,
            client_id: "holdfast-bench".into(),
            login: Login::None,
            protocol: Protocol::V311,
            keep_alive: Duration::from_secs(5),
            qos1: true,
            will_delay: Duration::ZERO,
            retry_min: Duration::from_millis(200),
            retry_max: Duration::from_secs(2),
        },
        interval: Duration::from_secs(5),
        events_buffer: 1000,
        disk_pressure_bytes: 500_000_000,
    }
}

/// The 200 paced handhelds closed loop and paced at 1,000 scans/s, with telemetry off, on (to
/// a Mosquitto behind a fault proxy), on with the broker black-holed, and off again; prints
/// what the sampler's status read costs and the runs against the mean of the two "off" ones.
/// Skipped (no runs) without Debian's `mosquitto`. Gives the handhelds back.
pub fn runs(
    srv: &Runtime,
    generator: &Runtime,
    store: &Store,
    state: &AppState,
    mut handhelds: Vec<Handheld>,
    (warmup, run_time): (u64, Duration),
) -> (Vec<Run>, Vec<Handheld>) {
    let paced_devices = handhelds.len();
    let mut telemetry_runs = Vec::new();
    match mosquitto::binary() {
        None => println!("(telemetry runs skipped: mosquitto is not installed)"),
        Some(bin) => {
            let mdir = tempfile::tempdir().unwrap();
            let addr: SocketAddr = {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap()
            };
            let _broker = mosquitto::Mosquitto::plain(&bin, mdir.path(), addr, true);
            let proxy = srv
                .block_on(holdfast_sync::sim::proxy::FaultProxy::start(addr))
                .unwrap();
            let settings = telemetry_settings(proxy.addr());
            let telemetry = holdfast::telemetry::Telemetry::new(&settings);
            let cancel = tokio_util::sync::CancellationToken::new();
            let mut on = state.clone();
            on.telemetry = Some(telemetry.clone());
            // What the sampler reads every 2 s: the status snapshot, on this store.
            let mut reads: Vec<Duration> = (0..9)
                .map(|_| {
                    let t = Instant::now();
                    holdfast::http::full_status(&on).unwrap();
                    t.elapsed()
                })
                .collect();
            reads.sort();
            println!(
                "\nthe status snapshot telemetry reads every 2 s: {:.2} ms (median of 9, journal of {} entries)",
                ms(reads[4]),
                store
                    .read(|r| r.queue_stats())
                    .unwrap()
                    .by_state
                    .values()
                    .sum::<i64>()
            );
            // Off before and after the telemetry runs: the store grows during the runs, so
            // the two "off" runs bound what the growth alone does.
            for (label, setup) in [
                ("off", None),
                ("on", Some(holdfast_sync::sim::proxy::Link::Up)),
                (
                    "on, broker black-holed",
                    Some(holdfast_sync::sim::proxy::Link::Stall),
                ),
                ("off again", Some(holdfast_sync::sim::proxy::Link::Refuse)),
            ] {
                match setup {
                    None => {}
                    Some(holdfast_sync::sim::proxy::Link::Refuse) => cancel.cancel(),
                    Some(holdfast_sync::sim::proxy::Link::Up) => {
                        srv.spawn(holdfast::telemetry::run(
                            on.clone(),
                            settings.clone(),
                            telemetry.clone(),
                            cancel.clone(),
                        ));
                        // Connected, and the first status sent.
                        let start = Instant::now();
                        while !telemetry.health().connected
                            && start.elapsed() < Duration::from_secs(10)
                        {
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                    Some(link) => proxy.set(link),
                }
                progress(&format!("telemetry {label}: closed loop and paced 1000/s"));
                let (run, back) = generator.block_on(local_closed(
                    store,
                    handhelds,
                    warmup,
                    run_time,
                    format!("telemetry {label}, closed"),
                ));
                telemetry_runs.push(run);
                let (run, back) = generator.block_on(local_paced(
                    store,
                    back,
                    warmup,
                    run_time,
                    1_000.0,
                    format!("telemetry {label}, 1000/s"),
                ));
                telemetry_runs.push(run);
                handhelds = back;
            }
            let health = telemetry.health();
            println!(
                "\n## telemetry's cost on the floor ({paced_devices} devices; link at the end: connected {}, {} events buffered, {} dropped)",
                health.connected, health.buffered_events, health.dropped_events
            );
            Run::header();
            for r in &telemetry_runs {
                r.row();
            }
            // The baseline: the mean of the two "off" runs around the others.
            let (off, again) = (&telemetry_runs[0..2], &telemetry_runs[6..8]);
            let base_rate = (off[0].rate() + again[0].rate()) / 2.0;
            let base_p99 = (ms(off[1].p(0.99)) + ms(again[1].p(0.99))) / 2.0;
            for pair in telemetry_runs.chunks(2) {
                println!(
                    "{}: closed-loop scans/s {:.2}x of off, paced p99 {:.2}x of off",
                    pair[0].label,
                    pair[0].rate() / base_rate,
                    ms(pair[1].p(0.99)) / base_p99,
                );
            }
        }
    }
    (telemetry_runs, handhelds)
}
