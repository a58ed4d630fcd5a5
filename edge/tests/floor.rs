//! The floor service on the demo warehouse: workflows, their rules, sessions that survive a
//! restart, idempotent retries, concurrent use, and hostile input. Real store, real data set;
//! the HTTP layer is covered by the end-to-end tests.

// Test code: a failed step should stop with its message.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use holdfast::floor::{Answer, Caller, Floor, FloorRequest, LockoutPolicy, LoginBy, RawInput};
use holdfast::store::{JournalFilter, Store, StoreOptions};
use holdfast::workflow::{FloorPolicy, OverPick, Workflow};
use holdfast_sync::dataset::{Dataset, DatasetSpec};
use holdfast_sync::ops::BackorderChoice;
use proptest::prelude::*;

// The demo warehouse (DatasetSpec::demo, seed 7): see `holdfast demo`.
/// WH/INT/00001: 19 x [HF-00037] at WH-A-02-03, 12 x lot-tracked [HF-00004] (LOT-00004-A) at
/// WH-A-03-02, 4 x [HF-00011] at WH-A-03-03.
const INTERNAL: i64 = 3;
/// WH/OUT/00001: 3 x [HF-00040] (no barcode) at WH-A-01-10, 2 x serial-tracked [HF-00007]
/// (SN-00007-0000 at WH-A-02-09, SN-00007-0002 at WH-A-02-02).
const DELIVERY: i64 = 2;
/// WH/IN/00003: 10 x [HF-00037], 20 x lot-tracked [HF-00004], 3 x [HF-00011] into WH/Stock.
const RECEIPT: i64 = 7;
const P37: &str = "5901230000363";
const P4: &str = "5901230000035";
const P11: &str = "5901230000103";
const P7: &str = "5901230000066";

struct Site {
    rt: tokio::runtime::Runtime,
    store: Store,
    floor: Floor,
    n_keys: std::cell::Cell<u64>,
}

fn open(path: &Path, policy: FloorPolicy, seed: bool) -> Site {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let store = Store::open(StoreOptions::new(path, "test")).unwrap();
    if seed {
        rt.block_on(async {
            holdfast::demo::load(&store, &Dataset::generate(&DatasetSpec::demo()))
                .await
                .unwrap();
            holdfast::demo::seed_operators(&store).await.unwrap();
        });
    }
    let floor = Floor::new(store.clone(), policy, Some('~'), vec![]);
    Site {
        rt,
        store,
        floor,
        n_keys: std::cell::Cell::new(0),
    }
}

fn site(policy: FloorPolicy) -> (tempfile::TempDir, Site) {
    let dir = tempfile::tempdir().unwrap();
    let site = open(&dir.path().join("h.db"), policy, true);
    (dir, site)
}

impl Site {
    fn send_keyed(&self, device: &str, key: &str, request: FloorRequest) -> Answer {
        let caller = Caller {
            device: device.into(),
            key: Some(key.into()),
            fingerprint: format!("{request:?}"),
        };
        self.rt.block_on(self.floor.handle(&caller, request))
    }

    fn send(&self, device: &str, request: FloorRequest) -> Answer {
        let n = self.n_keys.get() + 1;
        self.n_keys.set(n);
        self.send_keyed(device, &format!("k{n}"), request)
    }

    fn login(&self, device: &str, badge: &str) {
        let a = self.send(device, FloorRequest::Login(LoginBy::Badge(badge.into())));
        assert_eq!(a.status, 200, "{}", a.body);
    }

    fn start(&self, device: &str, workflow: Workflow, picking_id: Option<i64>) -> String {
        let a = self.send(
            device,
            FloorRequest::Start {
                workflow,
                picking_id,
            },
        );
        assert!(a.status < 300, "{}", a.body);
        a.body["session_id"].as_str().unwrap().to_owned()
    }

    fn scan(&self, device: &str, code: &str) -> Answer {
        self.send(
            device,
            FloorRequest::Input {
                session: None,
                input: RawInput::Scan(code.as_bytes().to_vec()),
            },
        )
    }

    fn qty(&self, device: &str, q: f64) -> Answer {
        self.send(
            device,
            FloorRequest::Input {
                session: None,
                input: RawInput::Quantity(q),
            },
        )
    }

    fn input(&self, device: &str, input: RawInput) -> Answer {
        self.send(
            device,
            FloorRequest::Input {
                session: None,
                input,
            },
        )
    }

    fn n_entries(&self) -> usize {
        self.store
            .read(|r| {
                r.journal(&JournalFilter {
                    limit: 10_000,
                    ..Default::default()
                })
            })
            .unwrap()
            .len()
    }

    fn picked(&self, picking: i64) -> Vec<f64> {
        let (_, moves) = self.store.read(|r| r.picking(picking)).unwrap().unwrap();
        moves.iter().map(|m| m.picked).collect()
    }
}

/// Asserts a step's outcome: status and code.
#[track_caller]
fn expect(a: &Answer, status: &str, code: &str) {
    assert_eq!(
        (a.body["status"].as_str(), a.body["code"].as_str()),
        (Some(status), Some(code)),
        "answer: {}",
        a.body
    );
}

fn next(a: &Answer) -> &str {
    a.body["session"]["expect"].as_str().unwrap_or("")
}

fn entries(a: &Answer) -> usize {
    a.body["entries"].as_array().map(Vec::len).unwrap_or(0)
}

#[test]
fn a_picking_is_picked_line_by_line_and_validated() {
    let (_dir, s) = site(FloorPolicy::default());
    s.login("hh1", "OP-ALICE");
    s.start("hh1", Workflow::Pick, Some(INTERNAL));

    // The bin first (the site requires it), then the product; each scan is one entry.
    let a = s.scan("hh1", P37);
    expect(&a, "error", "location_first");
    assert_eq!(s.n_entries(), 0, "a refused scan records nothing");
    expect(&s.scan("hh1", "WH-A-02-03"), "ok", "location");
    let a = s.scan("hh1", P37);
    expect(&a, "ok", "picked");
    assert_eq!((entries(&a), next(&a)), (1, "quantity"));
    expect(&s.scan("hh1", P37), "ok", "picked");
    // A number sets the line's quantity at this bin: 17 more are journalled.
    let a = s.qty("hh1", 19.0);
    expect(&a, "ok", "quantity_set");
    assert_eq!(a.body["entries"][0]["payload"]["quantity"], 17.0);
    assert_eq!(s.picked(INTERNAL)[0], 19.0, "the view shows it at once");

    // Lot-tracked: the lot is asked for, and must exist.
    expect(&s.scan("hh1", "WH-A-03-02"), "ok", "location");
    let a = s.scan("hh1", P4);
    expect(&a, "ok", "lot_required");
    assert_eq!(next(&a), "lot");
    expect(&s.scan("hh1", "LOT-NOPE"), "error", "unknown_lot");
    // A GS1 label without AI 10/21 is no lot; with AI 10 it is that lot, not its text.
    expect(&s.scan("hh1", "]C117270101"), "error", "lot_required");
    let a = s.scan("hh1", "]C110LOT-00004-A");
    expect(&a, "ok", "picked");
    assert_eq!(a.body["entries"][0]["payload"]["lot_name"], "LOT-00004-A");
    expect(&s.qty("hh1", 12.0), "ok", "quantity_set");
    // A GS1 label carries product, lot and count at once (with '~' for a lost GS).
    expect(&s.scan("hh1", "WH-A-03-03"), "ok", "location");
    expect(
        &s.scan("hh1", &format!("]C101{P11:0>14}~303")),
        "ok",
        "picked",
    );
    expect(&s.scan("hh1", P11), "ok", "picked");
    assert_eq!(s.picked(INTERNAL), vec![19.0, 12.0, 4.0]);

    let a = s.input("hh1", RawInput::Validate(None));
    expect(&a, "ok", "validated");
    assert_eq!(a.body["session"]["state"], "done");
    assert_eq!(a.body["entries"][0]["payload"]["backorder"], "no_backorder");
    let journal = s
        .store
        .read(|r| {
            r.journal(&JournalFilter {
                limit: 100,
                ..Default::default()
            })
        })
        .unwrap();
    let kinds: Vec<&str> = journal.iter().rev().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "pick").count(), 7);
    assert_eq!(kinds.last(), Some(&"validate"));
    assert!(
        journal
            .iter()
            .all(|e| e.operator.as_deref() == Some("alice"))
    );
    assert!(journal.iter().all(|e| e.causal_key == "picking:3"));

    // Validated here: it leaves the open list and cannot be opened again, by anyone.
    let open = s.store.read(|r| r.pickings(true, 100)).unwrap();
    assert!(open.iter().all(|p| p.id != INTERNAL));
    for (device, badge) in [("hh1", "OP-ALICE"), ("hh2", "OP-BOB")] {
        s.login(device, badge);
        let a = s.send(
            device,
            FloorRequest::Start {
                workflow: Workflow::Pick,
                picking_id: Some(INTERNAL),
            },
        );
        assert_eq!(a.body["code"], "picking_closed", "{}", a.body);
    }
}

#[test]
fn pick_rules_wrong_product_location_serials_and_short_validation() {
    let (_dir, s) = site(FloorPolicy::default());
    s.login("hh1", "OP-BOB");
    s.start("hh1", Workflow::Pick, Some(DELIVERY));
    expect(&s.scan("hh1", "WH-A-01-10"), "ok", "location");
    // Not on this picking; a customer location is no source; a picking is the wrong step.
    expect(&s.scan("hh1", P37), "error", "wrong_product");
    expect(&s.scan("hh1", "WH/OUT/00002"), "error", "wrong_step");
    expect(&s.scan("hh1", "NO-SUCH-CODE"), "error", "unknown_barcode");
    // No barcode: the internal reference works.
    expect(&s.scan("hh1", "HF-00040"), "ok", "picked");

    // Serial: one per scan, only where it is, never twice.
    expect(&s.scan("hh1", "WH-A-02-09"), "ok", "location");
    expect(&s.scan("hh1", P7), "ok", "lot_required");
    expect(&s.scan("hh1", "SN-00007-0002"), "error", "serial_not_here");
    expect(&s.scan("hh1", "SN-00007-0000"), "ok", "picked");
    expect(&s.qty("hh1", 3.0), "error", "serial_quantity");
    expect(&s.scan("hh1", P7), "ok", "lot_required");
    expect(&s.scan("hh1", "SN-00007-0000"), "error", "serial_not_here");

    // Short lines: the backorder decision is explicit.
    let before = s.n_entries();
    let a = s.input("hh1", RawInput::Validate(None));
    expect(&a, "error", "backorder_choice_required");
    assert_eq!(s.n_entries(), before);
    let a = s.input("hh1", RawInput::Validate(Some(BackorderChoice::Backorder)));
    expect(&a, "ok", "validated");
    assert_eq!(a.body["entries"][0]["payload"]["backorder"], "backorder");
}

#[test]
fn over_pick_follows_the_site_policy() {
    for (policy, status, code) in [
        (OverPick::Refuse, "error", "over_pick"),
        (OverPick::Warn, "warning", "over_pick"),
        (OverPick::Allow, "ok", "quantity_set"),
    ] {
        let (_dir, s) = site(FloorPolicy {
            require_source_location: false,
            over_pick: policy,
            ..FloorPolicy::default()
        });
        s.login("hh1", "OP-ALICE");
        s.start("hh1", Workflow::Pick, Some(INTERNAL));
        expect(&s.scan("hh1", P11), "ok", "picked");
        let a = s.qty("hh1", 6.0);
        expect(&a, status, code);
        let want = if policy == OverPick::Refuse { 1.0 } else { 6.0 };
        assert_eq!(s.picked(INTERNAL)[2], want, "{policy:?}");
        // Putting some back is a negative correction of the same line.
        let a = s.qty("hh1", 0.0);
        expect(&a, "ok", "quantity_set");
        assert_eq!(s.picked(INTERNAL)[2], 0.0);
    }
}

#[test]
fn a_receipt_takes_lots_and_expiry_from_gs1_and_a_put_away_bin() {
    let (_dir, s) = site(FloorPolicy::default());
    s.login("hh1", "OP-ALICE");
    s.start("hh1", Workflow::Receive, Some(RECEIPT));
    // GS1-128 with GTIN, expiry (day 00 = end of month), lot and count.
    let a = s.scan("hh1", &format!("]C101{P4:0>14}17270200~10LOT-NEW~3020"));
    expect(&a, "ok", "received");
    let payload = &a.body["entries"][0]["payload"];
    assert_eq!(payload["lot_name"], "LOT-NEW");
    assert_eq!(payload["expiration_date"], "2027-02-28 00:00:00");
    assert_eq!(payload["quantity"], 20.0);
    // The new lot is known to the view (a pick could use it now).
    let lot = s.store.read(|r| r.lot(4, "LOT-NEW")).unwrap().unwrap();
    assert_eq!(lot.expiration_date.as_deref(), Some("2027-02-28 00:00:00"));
    // A put-away bin scanned after the line moves what the line recorded there.
    let a = s.scan("hh1", "WH-A-01-01");
    expect(&a, "ok", "location");
    let moved: Vec<(i64, f64)> = a.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let p = &e["payload"];
            (
                p["location_dest_id"].as_i64().unwrap(),
                p["quantity"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(moved, vec![(5, -20.0), (6, 20.0)]);
    assert_eq!(s.store.read(|r| r.on_hand(4, 6, "LOT-NEW")).unwrap(), 20.0);
    // Then an untracked product: its GS1 batch is ignored, the bin stays chosen.
    let a = s.scan("hh1", &format!("]C101{P11:0>14}10BATCH"));
    expect(&a, "ok", "received");
    assert!(
        a.body["entries"][0]["payload"].get("lot_name").is_none(),
        "{}",
        a.body
    );
    expect(&s.scan("hh1", P37), "ok", "received");
    let a = s.qty("hh1", 10.0);
    assert_eq!(a.body["entries"][0]["payload"]["location_dest_id"], 6);
    // A picking type's barcode is no input here; receipts end by validation.
    expect(&s.scan("hh1", "WHOUT"), "error", "wrong_step");
    expect(&s.input("hh1", RawInput::Finish), "error", "wrong_step");
    let a = s.input(
        "hh1",
        RawInput::Validate(Some(BackorderChoice::NoBackorder)),
    );
    expect(&a, "ok", "validated");
}

#[test]
fn a_count_keeps_what_the_view_showed() {
    let (_dir, s) = site(FloorPolicy::default());
    s.login("hh1", "OP-ALICE");
    s.start("hh1", Workflow::Count, None);
    expect(&s.scan("hh1", P37), "error", "location_first");
    expect(&s.scan("hh1", "WH-A-02-03"), "ok", "location");
    expect(&s.scan("hh1", P37), "ok", "counting");
    expect(&s.scan("hh1", P11), "error", "count_pending");
    let a = s.qty("hh1", 50.0);
    expect(&a, "warning", "count_difference");
    let payload = &a.body["entries"][0]["payload"];
    assert_eq!(
        (payload["counted"].as_f64(), payload["expected"].as_f64()),
        (Some(50.0), Some(57.0))
    );
    // The view now shows the count.
    assert_eq!(s.store.read(|r| r.on_hand(37, 18, "")).unwrap(), 50.0);
    let a = s.input("hh1", RawInput::Finish);
    expect(&a, "ok", "finished");
    assert_eq!(a.body["session"]["state"], "done");
}

#[test]
fn a_transfer_moves_stock_between_bins() {
    let (_dir, s) = site(FloorPolicy::default());
    s.login("hh1", "OP-ALICE");
    s.start("hh1", Workflow::Transfer, None);
    expect(&s.scan("hh1", "WH-A-02-03"), "ok", "location");
    expect(&s.scan("hh1", P37), "ok", "in_hand");
    expect(&s.scan("hh1", P37), "ok", "in_hand");
    expect(&s.qty("hh1", 5.0), "ok", "quantity_set");
    expect(&s.scan("hh1", "WH-A-02-03"), "error", "same_location");
    expect(&s.input("hh1", RawInput::Finish), "error", "item_pending");
    let a = s.scan("hh1", "WH-A-01-01");
    expect(&a, "ok", "moved");
    assert_eq!(a.body["entries"][0]["payload"]["quantity"], 5.0);
    assert_eq!(s.store.read(|r| r.on_hand(37, 18, "")).unwrap(), 52.0);
    assert_eq!(s.store.read(|r| r.on_hand(37, 6, "")).unwrap(), 5.0);
    expect(&s.input("hh1", RawInput::Finish), "ok", "finished");
}

#[test]
fn a_retry_with_the_same_key_gets_the_first_answer_and_records_once() {
    let (_dir, s) = site(FloorPolicy::default());
    s.login("hh1", "OP-ALICE");
    s.start("hh1", Workflow::Pick, Some(INTERNAL));
    s.scan("hh1", "WH-A-02-03");
    let scan = || FloorRequest::Input {
        session: None,
        input: RawInput::Scan(P37.as_bytes().to_vec()),
    };
    let first = s.send_keyed("hh1", "retry-1", scan());
    let again = s.send_keyed("hh1", "retry-1", scan());
    assert!(!first.replayed && again.replayed);
    assert_eq!(first.body["entries"], again.body["entries"]);
    assert_eq!(s.picked(INTERNAL)[0], 1.0, "recorded once");
    // The same key for a different request is refused; another device's key is its own.
    let other = s.send_keyed("hh1", "retry-1", FloorRequest::Logout);
    assert_eq!(
        (other.status, other.body["code"].as_str()),
        (422, Some("idempotency_key_reused"))
    );
    s.login("hh2", "OP-BOB");
    let a = s.send_keyed("hh2", "retry-1", FloorRequest::Logout);
    assert_eq!(a.status, 200);
}

#[test]
fn one_picking_one_session_and_sessions_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.db");
    let session;
    {
        let s = open(&path, FloorPolicy::default(), true);
        s.login("hh1", "OP-ALICE");
        s.login("hh2", "OP-BOB");
        session = s.start("hh1", Workflow::Pick, Some(INTERNAL));
        // Bob cannot open Alice's picking.
        let a = s.send(
            "hh2",
            FloorRequest::Start {
                workflow: Workflow::Pick,
                picking_id: Some(INTERNAL),
            },
        );
        assert_eq!(
            (a.status, a.body["code"].as_str()),
            (409, Some("picking_busy"))
        );
        // Nor type into her session.
        let a = s.send(
            "hh2",
            FloorRequest::Input {
                session: Some(session.clone()),
                input: RawInput::Quantity(1.0),
            },
        );
        assert_eq!(a.body["code"], "not_your_session");
        expect(&s.scan("hh1", "WH-A-02-03"), "ok", "location");
        expect(&s.scan("hh1", P37), "ok", "picked");
        s.rt.block_on(s.store.shutdown()).unwrap();
    }
    // The appliance restarts; Alice picks up a different handheld and resumes.
    let s = open(&path, FloorPolicy::default(), false);
    s.login("hh3", "OP-ALICE");
    let me = s.floor.whoami("hh3");
    assert_eq!(me.body["sessions"][0]["id"], session.as_str());
    assert_eq!(me.body["sessions"][0]["location"], "WH/Stock/A-02-03");
    let a = s.send(
        "hh3",
        FloorRequest::Resume {
            session: session.clone(),
        },
    );
    expect(&a, "ok", "resumed");
    assert_eq!(next(&a), "quantity", "mid-line, as left");
    expect(&s.scan("hh3", P37), "ok", "picked");
    assert_eq!(s.picked(INTERNAL)[0], 2.0);
    // The old device can no longer type into it.
    s.login("hh1", "OP-ALICE");
    let a = s.send(
        "hh1",
        FloorRequest::Input {
            session: Some(session.clone()),
            input: RawInput::Quantity(1.0),
        },
    );
    assert_eq!(a.body["code"], "session_elsewhere");
    // Cancelling frees the picking; what was recorded stays.
    let a = s.send("hh3", FloorRequest::Cancel { session });
    expect(&a, "ok", "cancelled");
    assert_eq!(s.n_entries(), 2);
    s.login("hh2", "OP-BOB");
    s.start("hh2", Workflow::Pick, Some(INTERNAL));
}

#[test]
fn concurrent_steps_on_one_session_never_double_record() {
    let (_dir, s) = site(FloorPolicy {
        require_source_location: false,
        over_pick: OverPick::Allow,
        ..FloorPolicy::default()
    });
    s.login("hh1", "OP-ALICE");
    s.start("hh1", Workflow::Pick, Some(INTERNAL));
    // 16 different scans race on one session: each either lands (and is recorded once) or
    // is told the session was busy; none is lost silently and none counts twice.
    let answers: Vec<Answer> = s.rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..16 {
            let floor = s.floor.clone();
            tasks.push(tokio::spawn(async move {
                let caller = Caller {
                    device: "hh1".into(),
                    key: Some(format!("race-{i}")),
                    fingerprint: format!("race-{i}"),
                };
                let request = FloorRequest::Input {
                    session: None,
                    input: RawInput::Scan(P37.as_bytes().to_vec()),
                };
                floor.handle(&caller, request).await
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    let ok = answers.iter().filter(|a| a.status == 200).count();
    let busy = answers
        .iter()
        .filter(|a| a.body["code"] == "session_busy")
        .count();
    assert_eq!(ok + busy, 16, "{answers:?}");
    assert!(ok >= 1);
    assert_eq!(s.picked(INTERNAL)[0], ok as f64);
    assert_eq!(s.n_entries(), ok);
}

#[test]
fn sign_in_by_badge_or_pin_and_wrong_ones_are_refused() {
    let (_dir, s) = site(FloorPolicy::default());
    let pin = |op: &str, pin: &str| {
        s.send(
            "hh1",
            FloorRequest::Login(LoginBy::Pin {
                operator: op.into(),
                pin: pin.into(),
            }),
        )
    };
    assert_eq!(pin("alice", "0000").status, 401);
    assert_eq!(pin("nobody", "1234").status, 401);
    assert_eq!(pin("alice", "1234").body["operator"]["id"], "alice");
    // Nothing works before sign-in; the first scan may be a badge.
    let a = s.scan("hh2", P37);
    assert_eq!(
        (a.status, a.body["code"].as_str()),
        (401, Some("not_signed_in"))
    );
    let a = s.scan("hh2", "OP-BOB");
    assert_eq!(a.body["operator"]["id"], "bob");
    // With no task open, scanning a picking's name opens it.
    let a = s.scan("hh2", "WH/IN/00003");
    expect(&a, "ok", "started");
    assert_eq!(a.body["session"]["workflow"], "receive");
    // Another operator's badge mid-task: they take over the device; Bob's session stays his.
    let a = s.scan("hh2", "OP-ALICE");
    assert_eq!(a.body["operator"]["id"], "alice");
    assert_eq!(a.body["sessions"].as_array().map(Vec::len), Some(0));
    let a = s.scan("hh2", P37);
    assert_eq!(a.body["code"], "no_session", "{}", a.body);
    // Repeated failures lock the device out for a while.
    for _ in 0..5 {
        pin("alice", "9999");
    }
    assert_eq!(pin("alice", "1234").status, 429);
}

/// What a scanner on any transport sends before anyone signed in is a badge guess: 2,000
/// guesses from one device get five looked at, then even the right badge waits.
#[test]
fn badge_guesses_by_scan_are_locked_out_per_device() {
    let (_dir, s) = site(FloorPolicy::default());
    let started = std::time::Instant::now();
    let mut looked_at = 0;
    for i in 0..2_000 {
        let a = s.scan("sc1", &format!("OP-{i:04}"));
        match (a.status, a.body["code"].as_str()) {
            (401, Some("not_signed_in")) => looked_at += 1,
            (429, Some("too_many_attempts")) => {}
            other => panic!("{other:?}: {}", a.body),
        }
    }
    assert_eq!(looked_at, 5, "in {:?}", started.elapsed());
    let a = s.scan("sc1", "OP-ALICE");
    assert_eq!(a.body["code"], "too_many_attempts", "{}", a.body);
    assert!(
        a.body["message"].as_str().unwrap().contains("try again in"),
        "{}",
        a.body
    );
    // Another device is not locked by this one.
    assert_eq!(s.scan("sc2", "OP-ALICE").body["operator"]["id"], "alice");
    let status = s.floor.lockout();
    assert_eq!(status.locked_devices, vec!["sc1".to_owned()]);
    assert_eq!(status.device_lockouts, 1);
    assert_eq!(status.refused_while_locked, 1_996);
}

/// A badge scanned on a signed-in device takes it over (a shift change): looking up scans
/// that matched nothing is a guess too, locked per device; the operator's task goes on.
#[test]
fn takeover_guesses_are_locked_out_and_the_task_goes_on() {
    let (_dir, s) = site(FloorPolicy::default());
    s.login("sc1", "OP-ALICE");
    s.start("sc1", Workflow::Pick, Some(INTERNAL));
    for i in 0..5 {
        let a = s.scan("sc1", &format!("OP-{i:04}"));
        assert_eq!(a.status, 422, "{}", a.body);
    }
    // Bob's real badge no longer takes the device over while it is locked.
    let a = s.scan("sc1", "OP-BOB");
    assert!(a.body["operator"].is_null(), "{}", a.body);
    assert_eq!(s.floor.lockout().locked_devices, vec!["sc1".to_owned()]);
    expect(&s.scan("sc1", "WH-A-02-03"), "ok", "location");
    // The site is not locked by a busy floor's stray scans.
    assert_eq!(s.floor.lockout().site_lockouts, 0);
}

/// Guessing from many device ids at once is as slow as from one: the site's count locks
/// sign-in everywhere, PINs included.
#[test]
fn guesses_spread_over_many_devices_lock_the_site() {
    let (_dir, s) = site(FloorPolicy::default());
    s.floor.set_lockout(LockoutPolicy {
        site_failures: 20,
        ..LockoutPolicy::default()
    });
    let mut looked_at = 0;
    for i in 0..200 {
        let a = s.scan(&format!("sc{}", i % 50), &format!("OP-{i:04}"));
        if a.status == 401 {
            looked_at += 1;
        } else {
            assert_eq!(a.body["code"], "too_many_attempts", "{}", a.body);
        }
    }
    assert_eq!(looked_at, 21);
    let a = s.send(
        "fresh",
        FloorRequest::Login(LoginBy::Pin {
            operator: "alice".into(),
            pin: "1234".into(),
        }),
    );
    assert_eq!(a.status, 429, "{}", a.body);
    assert!(
        a.body["message"].as_str().unwrap().contains("at this site"),
        "{}",
        a.body
    );
    assert_eq!(s.floor.lockout().site_lockouts, 1);
}

/// One line of WH/INT/00001 in hand: 4 x [HF-00011] at WH-A-03-03, one picked.
fn line_in_hand() -> (tempfile::TempDir, Site) {
    let (dir, s) = site(FloorPolicy {
        require_source_location: false,
        ..FloorPolicy::default()
    });
    s.login("hh1", "OP-ALICE");
    s.start("hh1", Workflow::Pick, Some(INTERNAL));
    expect(&s.scan("hh1", P11), "ok", "picked");
    (dir, s)
}

/// The journal's total of the line, in hundredths: each entry must itself be whole
/// hundredths (what Odoo's default unit rounding keeps).
fn journal_hundredths(s: &Site) -> i64 {
    let entries = s
        .store
        .read(|r| {
            r.journal(&JournalFilter {
                limit: 10_000,
                ..Default::default()
            })
        })
        .unwrap();
    entries
        .iter()
        .map(|e| {
            let q = e.payload["quantity"].as_f64().unwrap();
            let h = (q * 100.0).round();
            assert!((q * 100.0 - h).abs() < 1e-6, "journalled {q}");
            h as i64
        })
        .sum()
}

/// What an answer told the operator the line now holds ("Picked 2.5/4 …"), in hundredths.
fn told_hundredths(a: &Answer) -> i64 {
    let message = a.body["message"].as_str().unwrap();
    let told = message
        .split_whitespace()
        .find_map(|w| w.split_once('/').map(|(picked, _)| picked.to_owned()))
        .unwrap_or_else(|| panic!("no total in {message:?}"));
    (told.parse::<f64>().unwrap() * 100.0).round() as i64
}

#[test]
fn absurd_or_too_precise_quantities_are_refused_and_nothing_is_journalled() {
    let (_dir, s) = line_in_hand();
    let before = s.n_entries();
    for (q, code) in [
        (1e300, "quantity_too_large"),
        (1e20, "quantity_too_large"),
        (-0.0, "bad_quantity"),
        (-1.0, "bad_quantity"),
        (f64::NAN, "bad_quantity"),
        (1.005, "quantity_precision"),
        (41.0, "over_pick_limit"),
    ] {
        let a = s.qty("hh1", q);
        assert_eq!(
            (a.status, a.body["code"].as_str()),
            (422, Some(code)),
            "{q}: {}",
            a.body
        );
    }
    assert_eq!(s.n_entries(), before);
    // The line is as it was: setting it to 1 is no change, to 2.5 adds 1.5.
    let a = s.qty("hh1", 1.0);
    assert_eq!(told_hundredths(&a), 100, "{}", a.body);
    let a = s.qty("hh1", 2.5);
    assert_eq!(told_hundredths(&a), 250, "{}", a.body);
    assert_eq!(journal_hundredths(&s), 250);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// No sequence of quantities, sensible or not, makes the journal's total of a line differ
    /// from the decimal the operator was last told.
    #[test]
    fn the_journal_holds_exactly_what_the_operator_was_told(inputs in prop::collection::vec(
        prop_oneof![
            4 => (0u32..4_000).prop_map(|h| f64::from(h) / 100.0),
            1 => (0u32..100_000).prop_map(|t| f64::from(t) / 1000.0),
            1 => prop::sample::select(vec![1e300, 1e20, -0.0, -1.0, 0.1 + 0.2, 1e-7, 39.99, 40.0, 40.01]),
        ], 1..12)) {
        let (_dir, s) = line_in_hand();
        let mut told = 100;
        for q in inputs {
            let a = s.qty("hh1", q);
            if a.status == 200 {
                told = told_hundredths(&a);
            } else {
                prop_assert_eq!(a.status, 422, "{}", a.body);
            }
            prop_assert_eq!(journal_hundredths(&s), told, "after {}: {}", q, a.body);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Random bytes, control characters, overlong and non-UTF-8 scans: a clear refusal, no
    /// journal entry, and the session is exactly as it was.
    #[test]
    fn hostile_scans_change_nothing(scans in prop::collection::vec(
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..700),
            "[\\x00-\\x1f\\x7f]{1,8}".prop_map(String::into_bytes),
            "\\]C1[0-9]{0,40}".prop_map(String::into_bytes),
            "[ -~]{0,40}".prop_map(String::into_bytes),
        ], 1..6)) {
        let (_dir, s) = site(FloorPolicy::default());
        s.login("hh1", "OP-ALICE");
        let id = s.start("hh1", Workflow::Pick, Some(INTERNAL));
        expect(&s.scan("hh1", "WH-A-02-03"), "ok", "location");
        let before = s.floor.session("hh1", &id).body;
        for bytes in scans {
            let a = s.input("hh1", RawInput::Scan(bytes.clone()));
            if a.body["status"] == "error" {
                prop_assert!(a.status >= 400, "{}", a.body);
                prop_assert!(a.body["error"]["code"].is_string());
            }
        }
        // Whatever was accepted was a real scan of this picking (a bin or a product).
        let after = s.floor.session("hh1", &id).body;
        if s.n_entries() == 0 {
            prop_assert_eq!(&before["session"]["prompt"], &after["session"]["prompt"]);
        }
        prop_assert_eq!(&after["session"]["state"], "active");
        // And the session still works.
        let a = s.scan("hh1", "WH-A-02-03");
        prop_assert_eq!(a.body["status"].as_str(), Some("ok"));
    }
}

/// A pull brings `picking` from Odoo as cancelled.
fn cancelled_in_odoo(s: &Site, picking: i64) {
    use holdfast::store::MirrorBatch;
    use holdfast_sync::records::{PickingState, Record};
    let mut p = Dataset::generate(&DatasetSpec::demo())
        .pickings
        .into_iter()
        .find(|p| p.id.0 == picking)
        .unwrap();
    p.state = PickingState::Cancel;
    s.rt.block_on(async {
        let epoch = s.store.begin_pull().await.unwrap();
        s.store
            .apply_mirror(MirrorBatch {
                epoch: Some(epoch),
                upserts: vec![Record::Picking(p)],
                deletes: vec![],
            })
            .await
            .unwrap();
    });
}

#[test]
fn a_session_ends_when_its_picking_is_cancelled_in_odoo_and_nothing_is_left_to_decide() {
    use holdfast::store::Transition;
    let (_dir, s) = site(FloorPolicy::default());
    s.login("hh1", "OP-ALICE");
    s.login("hh2", "OP-BOB");

    // Nothing recorded yet: the pull that sees the cancellation closes the session.
    let session = s.start("hh1", Workflow::Pick, Some(DELIVERY));
    expect(&s.scan("hh1", "WH-A-01-10"), "ok", "location");
    cancelled_in_odoo(&s, DELIVERY);
    let row = s.store.read(|r| r.session(&session)).unwrap().unwrap();
    assert_eq!(row.state, "cancelled");
    let a = s.send(
        "hh1",
        FloorRequest::Input {
            session: Some(session.clone()),
            input: RawInput::Scan(P37.as_bytes().to_vec()),
        },
    );
    assert_eq!(
        (a.status, a.body["code"].as_str()),
        (409, Some("picking_cancelled")),
        "{}",
        a.body
    );
    assert!(
        a.body["message"]
            .as_str()
            .is_some_and(|m| m.contains("cancelled in Odoo")),
        "the operator is told why: {}",
        a.body
    );
    // The device no longer points at it, and nothing was journalled on the cancelled picking.
    let login = s.store.read(|r| r.device_login("hh1")).unwrap().unwrap();
    assert_eq!(login.session_id, None);
    assert_eq!(s.n_entries(), 0);

    // Picks recorded: the session stays while the conflict waits for a decision, and ends
    // with the first pull after it was discarded.
    let session = s.start("hh2", Workflow::Pick, Some(INTERNAL));
    expect(&s.scan("hh2", "WH-A-02-03"), "ok", "location");
    expect(&s.scan("hh2", P37), "ok", "picked");
    let picked = s
        .store
        .read(|r| {
            r.journal(&JournalFilter {
                limit: 10,
                ..Default::default()
            })
        })
        .unwrap();
    assert_eq!(picked.len(), 1, "{picked:?}");
    cancelled_in_odoo(&s, INTERNAL);
    let state = |s: &Site| {
        s.store
            .read(|r| r.session(&session))
            .unwrap()
            .unwrap()
            .state
    };
    assert_eq!(state(&s), "active", "the inbox decides first");
    let seq = picked[0].seq;
    s.rt.block_on(async {
        for t in [
            Transition::InFlight { seq },
            Transition::Conflict {
                seq,
                error: "picking cancelled in odoo".into(),
            },
            Transition::Resolved {
                seq,
                note: "discarded".into(),
            },
        ] {
            s.store.transition(t).await.unwrap();
        }
        s.store.begin_pull().await.unwrap();
    });
    assert_eq!(state(&s), "cancelled");
}
