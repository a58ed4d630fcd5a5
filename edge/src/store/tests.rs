//! Store tests: migrations, journal rules, failure modes, and the rebase property test.

use std::collections::{HashMap, HashSet};

use holdfast_sync::ops::{CountOp, Operation, PickOp, ReceiveOp, TransferOp};
use holdfast_sync::records::*;
use proptest::prelude::*;

use super::*;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(StoreOptions::new(
        dir.path().join("holdfast.db"),
        "site-test",
    ))
    .unwrap()
}

/// A second connection to the store's database, as another process (the CLI) opens it.
fn open_other(dir: &tempfile::TempDir) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(dir.path().join("holdfast.db")).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn
}

pub(super) fn pick(
    move_id: i64,
    product_id: i64,
    location_id: i64,
    lot: &str,
    qty: f64,
) -> NewEntry {
    NewEntry {
        id: None,
        device: "scanner-1".into(),
        operator: Some("op-7".into()),
        op: Operation::Pick(PickOp {
            picking_id: 1,
            move_id,
            product_id,
            location_id,
            lot_name: (!lot.is_empty()).then(|| lot.to_owned()),
            package_id: None,
            quantity: qty,
            view_quantity: 0.0,
        }),
    }
}

fn quant(id: i64, product_id: i64, location_id: i64, lot: &str, quantity: f64) -> Record {
    Record::Quant(Quant {
        id: QuantId(id),
        product_id: ProductId(product_id),
        location_id: LocationId(location_id),
        lot_id: None,
        lot_name: (!lot.is_empty()).then(|| lot.to_owned()),
        package_id: None,
        quantity,
        reserved: 0.0,
    })
}

fn mv(id: i64, picked: f64) -> Record {
    Record::Move(Move {
        id: MoveId(id),
        picking_id: Some(PickingId(1)),
        product_id: ProductId(1),
        product_uom_qty: 100.0,
        quantity: picked,
        picked: true,
        state: MoveState::Assigned,
        location_id: LocationId(10),
        location_dest_id: LocationId(99),
    })
}

#[test]
fn new_database_gets_the_current_schema() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let (found, supported) = store.read(|r| r.schema_version()).unwrap();
    assert_eq!(found, supported);
    assert_eq!(found, schema::SCHEMA_VERSION);
    assert!(store.read(|r| r.integrity_check()).unwrap().is_empty());
    assert_eq!(store.read(|r| r.appliance_state()).unwrap().mode, "offline");
}

#[test]
fn upgrade_keeps_data_and_newer_databases_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("holdfast.db");
    let rt = rt();
    {
        let store = Store::open(StoreOptions::new(&path, "s")).unwrap();
        rt.block_on(store.append(Lane::Device, pick(1, 1, 10, "", 2.0)))
            .unwrap();
        rt.block_on(store.shutdown()).unwrap();
    }
    // A later build adds a migration: the existing journal survives the upgrade.
    let mut conn = Connection::open(&path).unwrap();
    let mut next = schema::MIGRATIONS.to_vec();
    next.push("ALTER TABLE journal ADD COLUMN site_zone TEXT");
    let newer = schema::SCHEMA_VERSION + 1;
    assert_eq!(
        schema::migrate_with(&mut conn, "test", &next).unwrap(),
        newer
    );
    let n: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM journal WHERE site_zone IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1);
    drop(conn);

    // This build does not know the newer version: it refuses to open the upgraded file.
    let err = Store::open(StoreOptions::new(&path, "s")).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::TooNew { found, supported, .. }
                if found == newer && supported == schema::SCHEMA_VERSION
        ),
        "{err}"
    );
    assert!(err.to_string().contains("newer than this build"), "{err}");
    assert!(matches!(
        open_read_only(&path),
        Err(StoreError::TooNew { .. })
    ));
}

#[test]
fn appends_are_idempotent_by_id_and_the_journal_is_append_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let rt = rt();
    let mut entry = pick(1, 1, 10, "", 2.0);
    entry.id = Some(uuid::Uuid::now_v7());
    let first = rt
        .block_on(store.append(Lane::Device, entry.clone()))
        .unwrap();
    let again = rt.block_on(store.append(Lane::Device, entry)).unwrap();
    assert!(!first.duplicate);
    assert!(again.duplicate);
    assert_eq!(first.seq, again.seq);
    assert_eq!(store.read(|r| r.on_hand(1, 10, "")).unwrap(), -2.0);
    let stats = store.read(|r| r.queue_stats()).unwrap();
    assert_eq!(stats.by_state["pending"], 1);

    let err = rt
        .block_on(store.test_sql("DELETE FROM journal"))
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    let err = rt
        .block_on(store.test_sql("UPDATE journal SET payload = '{}'"))
        .unwrap_err();
    assert!(err.to_string().contains("immutable"), "{err}");
}

#[test]
fn invalid_operations_and_transitions_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let rt = rt();
    let err = rt
        .block_on(store.append(Lane::Device, pick(1, 1, 10, "", f64::NAN)))
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    let a = rt
        .block_on(store.append(Lane::Device, pick(1, 1, 10, "", 1.0)))
        .unwrap();
    let err = rt
        .block_on(store.transition(Transition::Applied {
            seq: a.seq,
            remote_ref: None,
        }))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("journal entry {} cannot go from pending to applied", a.seq)
    );
    let err = rt
        .block_on(store.transition(Transition::InFlight { seq: 999 }))
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)));
    // Nothing of the refused operations reached the journal.
    assert_eq!(
        store.read(|r| r.queue_stats()).unwrap().by_state["pending"],
        1
    );
}

#[test]
fn full_database_refuses_writes_and_keeps_reads() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = StoreOptions::new(dir.path().join("holdfast.db"), "s");
    options.max_size_bytes = Some(400 * 1024);
    let store = Store::open(options).unwrap();
    let rt = rt();
    let mut acked = 0;
    let err = loop {
        match rt.block_on(store.append(Lane::Device, pick(1, 1, 10, "", 1.0))) {
            Ok(_) => acked += 1,
            Err(e) => break e,
        }
        assert!(acked < 100_000, "the size cap never bit");
    };
    assert!(matches!(err, StoreError::Full), "{err}");
    assert!(err.to_string().contains("reads keep working"));
    // Everything acknowledged is there and readable.
    let stats = store.read(|r| r.queue_stats()).unwrap();
    assert_eq!(stats.by_state["pending"], acked);
    assert_eq!(
        store.read(|r| r.on_hand(1, 10, "")).unwrap(),
        -(acked as f64)
    );
    // The writer survives: a ping still commits; but the store is not ready for writes.
    rt.block_on(store.ping()).unwrap();
    assert!(matches!(store.writable(), Err(StoreError::Full)));
}

#[test]
fn the_size_cap_counts_the_wal_and_readiness_follows_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("holdfast.db");
    let cap = 4 * 1024 * 1024;
    let mut options = StoreOptions::new(&path, "s");
    options.max_size_bytes = Some(cap);
    let store = Store::open(options).unwrap();
    let rt = rt();
    rt.block_on(store.append(Lane::Device, pick(1, 1, 10, "", 1.0)))
        .unwrap();
    store.writable().unwrap();
    // A reader on an old snapshot (a long report, a backup) keeps every later page in the
    // WAL: no checkpoint can complete while it reads.
    let reader = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let _: i64 = reader
        .query_row("SELECT COUNT(*) FROM journal", [], |r| r.get(0))
        .unwrap();
    let mut acked = 1;
    let err = loop {
        match rt.block_on(store.append(Lane::Device, pick(1, 1, 10, "", 1.0))) {
            Ok(_) => acked += 1,
            Err(e) => break e,
        }
        let on_disk = size_on_disk(&path);
        assert!(
            on_disk <= 2 * cap,
            "the WAL grew past the cap: {on_disk} bytes on disk after {acked} appends"
        );
    };
    assert!(matches!(err, StoreError::Full), "{err}");
    let on_disk = size_on_disk(&path);
    assert!(on_disk <= cap, "{on_disk} bytes on disk, cap {cap}");
    // Not ready, and it says why without a path; the writer itself is alive.
    let why = store.writable().unwrap_err();
    assert!(matches!(why, StoreError::Full), "{why}");
    assert!(!why.to_string().contains("holdfast.db"));
    rt.block_on(store.ping()).unwrap();
    // Once the reader lets go, the WAL is truncated and writes are taken again; nothing
    // acknowledged is lost.
    reader.execute_batch("COMMIT").unwrap();
    drop(reader);
    rt.block_on(store.append(Lane::Device, pick(1, 1, 10, "", 1.0)))
        .unwrap();
    acked += 1;
    store.writable().unwrap();
    assert!(size_on_disk(&path) <= cap);
    assert_eq!(
        store.read(|r| r.queue_stats()).unwrap().by_state["pending"],
        acked
    );
}

#[test]
fn store_files_and_backups_are_owner_only_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("holdfast.db");
    let store = open(&dir);
    let rt = rt();
    rt.block_on(store.append(Lane::Device, pick(1, 1, 10, "", 1.0)))
        .unwrap();
    let backup_path = dir.path().join("backup.db");
    store.backup(&backup_path).unwrap();
    nix::sys::stat::umask(old);
    let mut shm = path.as_os_str().to_owned();
    shm.push("-shm");
    for file in [
        path.clone(),
        wal_path(&path),
        PathBuf::from(shm),
        backup_path,
    ] {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    // A store made before the rule is tightened when opened.
    rt.block_on(store.shutdown()).unwrap();
    drop(store);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let _store = open(&dir);
    assert_eq!(mode(&path), 0o600);
}

#[test]
fn opening_for_reading_refuses_an_empty_or_foreign_file() {
    let dir = tempfile::tempdir().unwrap();
    // (what the file holds, what the refusal says)
    for (content, said) in [
        (&b""[..], "the file is empty (0 bytes)"),
        (&b"[site]\nid = \"x\"\n"[..], "not an SQLite database"),
        (&b"SQLite"[..], "not an SQLite database"),
    ] {
        let path = dir.path().join("x.db");
        std::fs::write(&path, content).unwrap();
        let err = open_read_only(&path).unwrap_err().to_string();
        assert!(err.contains(said), "{content:?}: {err}");
    }
    // SQLite, but not ours.
    let path = dir.path().join("other.db");
    Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    let err = open_read_only(&path).unwrap_err().to_string();
    assert!(err.contains("without holdfast's schema"), "{err}");
    // A real store opens.
    let store = open(&dir);
    rt().block_on(store.shutdown()).unwrap();
    open_read_only(&dir.path().join("holdfast.db")).unwrap();
}

#[test]
fn read_only_database_refuses_writes_and_keeps_reads() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let rt = rt();
    rt.block_on(store.append(Lane::Device, pick(1, 1, 10, "", 1.0)))
        .unwrap();
    rt.block_on(store.test_sql("PRAGMA query_only = 1"))
        .unwrap();
    let err = rt
        .block_on(store.append(Lane::Device, pick(1, 1, 10, "", 1.0)))
        .unwrap_err();
    assert!(matches!(err, StoreError::ReadOnly), "{err}");
    assert_eq!(store.read(|r| r.on_hand(1, 10, "")).unwrap(), -1.0);
}

#[test]
fn barcode_lookup_finds_every_kind_in_one_query() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let rt = rt();
    let data =
        holdfast_sync::dataset::Dataset::generate(&holdfast_sync::dataset::DatasetSpec::demo());
    rt.block_on(store.apply_mirror(MirrorBatch {
        epoch: None,
        upserts: data.records().collect(),
        deletes: vec![],
    }))
    .unwrap();
    let product = data.products.iter().find(|p| p.barcode.is_some()).unwrap();
    let hits = store
        .read(|r| r.lookup_barcode(product.barcode.as_deref().unwrap()))
        .unwrap();
    assert_eq!(
        hits,
        vec![BarcodeHit::Product {
            id: product.id.0,
            name: product.name.clone()
        }]
    );
    let packaging = &data.packagings[0];
    let hits = store
        .read(|r| r.lookup_barcode(packaging.barcode.as_deref().unwrap()))
        .unwrap();
    assert_eq!(
        hits,
        vec![BarcodeHit::Packaging {
            product_id: packaging.product_id.0,
            qty: 12.0
        }]
    );
    let bin = data.locations.iter().find(|l| l.barcode.is_some()).unwrap();
    assert!(matches!(
        store.read(|r| r.lookup_barcode(bin.barcode.as_deref().unwrap())).unwrap()[..],
        [BarcodeHit::Location { id, .. }] if id == bin.id.0
    ));
    let picking = &data.pickings[0];
    assert!(matches!(
        store.read(|r| r.lookup_barcode(&picking.name)).unwrap()[..],
        [BarcodeHit::Picking { id, .. }] if id == picking.id.0
    ));
    let lot = &data.lots[0];
    assert!(matches!(
        store.read(|r| r.lookup_barcode(&lot.name)).unwrap()[..],
        [BarcodeHit::Lot { id, .. }] if id == lot.id.0
    ));
    assert!(store.read(|r| r.lookup_barcode("NOPE")).unwrap().is_empty());
}

#[test]
fn a_barcode_answered_from_memory_follows_every_pull_of_the_mirror() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let rt = rt();
    let product = |barcode: &str, active: bool| Product {
        id: ProductId(7),
        default_code: None,
        barcode: Some(barcode.into()),
        name: "Widget".into(),
        tracking: Tracking::None,
        uom: "Units".into(),
        uom_rounding: None,
        active,
    };
    let pull = |p: Product| MirrorBatch {
        epoch: None,
        upserts: vec![Record::Product(p)],
        deletes: vec![],
    };
    let widget = vec![BarcodeHit::Product {
        id: 7,
        name: "Widget".into(),
    }];
    let lookup = |code: &str| store.read(|r| r.lookup_barcode(code)).unwrap();
    rt.block_on(store.apply_mirror(pull(product("OLD", true))))
        .unwrap();
    assert_eq!(lookup("OLD"), widget);
    assert!(lookup("NEW").is_empty());
    assert_eq!(lookup("OLD"), widget, "the same answer from memory");
    let (n, held) = store.inner.hot.barcodes_held();
    assert_eq!(held, 2, "both codes are kept, the unknown one too");

    // A pull relabels the product: neither answer may come from memory any more.
    rt.block_on(store.apply_mirror(pull(product("NEW", true))))
        .unwrap();
    assert!(lookup("OLD").is_empty());
    assert_eq!(lookup("NEW"), widget);
    assert!(store.inner.hot.barcodes_held().0 > n);

    // A pull that writes nothing (every record held back or none) keeps the generation.
    let before = store.inner.hot.barcodes_held();
    rt.block_on(store.apply_mirror(MirrorBatch {
        epoch: None,
        upserts: vec![],
        deletes: vec![],
    }))
    .unwrap();
    assert_eq!(lookup("NEW"), widget);
    assert_eq!(store.inner.hot.barcodes_held().0, before.0);

    // Another process writing the mirror (a pull from the command line) is seen as well:
    // the generation is in the database, read in each reader's snapshot.
    {
        let mut other = open_other(&dir);
        let tx = other.transaction().unwrap();
        mirror::apply(&tx, &pull(product("NEW", false))).unwrap();
        tx.commit().unwrap();
    }
    assert!(lookup("NEW").is_empty(), "an archived product is not a hit");
}

#[test]
fn the_mirror_counts_status_shows_follow_every_pull_and_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let rt = rt();
    let quants = || store.read(|r| r.mirror_counts()).unwrap()["quant"];
    let pull = |upserts: Vec<Record>, deletes: Vec<(Model, i64)>| MirrorBatch {
        epoch: None,
        upserts,
        deletes,
    };
    assert_eq!(quants(), 0);
    rt.block_on(store.apply_mirror(pull(
        vec![quant(1, 7, 3, "", 5.0), quant(2, 7, 4, "", 1.0)],
        vec![],
    )))
    .unwrap();
    assert_eq!(quants(), 2);
    assert_eq!(quants(), 2, "the same answer from memory");
    rt.block_on(store.apply_mirror(pull(vec![quant(3, 8, 3, "", 2.0)], vec![])))
        .unwrap();
    assert_eq!(quants(), 3);
    rt.block_on(store.apply_mirror(pull(vec![], vec![(Model::Quant, 1)])))
        .unwrap();
    assert_eq!(quants(), 2);
    // Another process's pull is counted too.
    {
        let mut other = open_other(&dir);
        let tx = other.transaction().unwrap();
        mirror::apply(&tx, &pull(vec![quant(4, 9, 3, "", 1.0)], vec![])).unwrap();
        tx.commit().unwrap();
    }
    assert_eq!(quants(), 3);
}

#[test]
fn a_pull_during_push_never_bounces_the_view_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let rt = rt();
    let seed = MirrorBatch {
        epoch: None,
        upserts: vec![quant(1, 1, 10, "", 10.0), mv(100, 0.0)],
        deletes: vec![],
    };
    rt.block_on(store.apply_mirror(seed)).unwrap();
    let a = rt
        .block_on(store.append(Lane::Device, pick(100, 1, 10, "", 3.0)))
        .unwrap();
    let view = |store: &Store| {
        (
            store.read(|r| r.on_hand(1, 10, "")).unwrap(),
            store.read(|r| r.move_picked(100)).unwrap(),
        )
    };
    assert_eq!(view(&store), (7.0, 3.0));

    // The push sends the pick; a pull begins and reads Odoo after it applied the pick,
    // and Odoo's answer arrives only after the pull began.
    rt.block_on(store.transition(Transition::InFlight { seq: a.seq }))
        .unwrap();
    let epoch = rt.block_on(store.begin_pull()).unwrap();
    rt.block_on(store.transition(Transition::Applied {
        seq: a.seq,
        remote_ref: Some("move.line 5".into()),
    }))
    .unwrap();
    let out = rt
        .block_on(store.apply_mirror(MirrorBatch {
            epoch: Some(epoch),
            upserts: vec![quant(1, 1, 10, "", 7.0), mv(100, 3.0)],
            deletes: vec![],
        }))
        .unwrap();
    assert_eq!(
        out.held_back, 2,
        "cannot tell if the copy includes the pick"
    );
    assert_eq!(view(&store), (7.0, 3.0));
    // Both rows are remembered: held at this pull's epoch, due for a re-read at the next.
    let settled =
        |store: &Store, model, epoch| store.read(|r| r.settled_held_back(model, epoch)).unwrap();
    assert!(settled(&store, Model::Quant, epoch).is_empty());
    assert_eq!(settled(&store, Model::Quant, Epoch(epoch.0 + 1)), vec![1]);
    assert_eq!(settled(&store, Model::Move, Epoch(epoch.0 + 1)), vec![100]);

    // The next pull began after the acknowledgement: its copy includes the pick.
    let epoch = rt.block_on(store.begin_pull()).unwrap();
    let out = rt
        .block_on(store.apply_mirror(MirrorBatch {
            epoch: Some(epoch),
            upserts: vec![quant(1, 1, 10, "", 7.0), mv(100, 3.0)],
            deletes: vec![],
        }))
        .unwrap();
    assert_eq!((out.held_back, out.folded), (0, 2));
    assert_eq!(view(&store), (7.0, 3.0));
    assert_eq!(
        store.read(|r| r.effects(a.seq)).unwrap()[0]["live"],
        serde_json::json!(false)
    );
    // Written: forgotten.
    let later = Epoch(epoch.0 + 1);
    assert!(settled(&store, Model::Quant, later).is_empty());
    assert!(settled(&store, Model::Move, later).is_empty());

    // A deletion held back by a pick in flight is remembered too, and done once it settles.
    let b = rt
        .block_on(store.append(Lane::Device, pick(100, 1, 10, "", 1.0)))
        .unwrap();
    rt.block_on(store.transition(Transition::InFlight { seq: b.seq }))
        .unwrap();
    let epoch = rt.block_on(store.begin_pull()).unwrap();
    let gone = MirrorBatch {
        epoch: Some(epoch),
        upserts: vec![],
        deletes: vec![(Model::Quant, 1)],
    };
    assert_eq!(rt.block_on(store.apply_mirror(gone)).unwrap().held_back, 1);
    rt.block_on(store.transition(Transition::Applied {
        seq: b.seq,
        remote_ref: None,
    }))
    .unwrap();
    let epoch = rt.block_on(store.begin_pull()).unwrap();
    assert_eq!(settled(&store, Model::Quant, epoch), vec![1]);
    let gone = MirrorBatch {
        epoch: Some(epoch),
        upserts: vec![],
        deletes: vec![(Model::Quant, 1)],
    };
    assert_eq!(rt.block_on(store.apply_mirror(gone)).unwrap().deleted, 1);
    assert!(settled(&store, Model::Quant, Epoch(epoch.0 + 1)).is_empty());
}

// ---------------------------------------------------------------------------------------
// Property test: random interleavings of floor operations, pushes, cloud acknowledgements,
// cloud-side edits and pulls, checked step by step against an in-memory model.

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Key {
    Stock(usize),
    Move(usize),
}

const PRODUCTS: [i64; 2] = [1, 2];
const LOCATIONS: [i64; 2] = [10, 11];
const LOTS: [&str; 2] = ["", "L1"];
const MOVES: [i64; 2] = [100, 101];
const N_STOCK: usize = 8;

fn stock_key(i: usize) -> (i64, i64, &'static str) {
    (PRODUCTS[i % 2], LOCATIONS[i / 2 % 2], LOTS[i / 4 % 2])
}

#[derive(Clone, Debug)]
enum Action {
    Pick {
        stock: usize,
        mv: usize,
        qty: u8,
    },
    Receive {
        stock: usize,
        mv: usize,
        qty: u8,
    },
    Count {
        stock: usize,
        counted: u8,
        expected: u8,
    },
    Transfer {
        stock: usize,
        qty: u8,
    },
    StartPush(usize),
    CloudApply(usize),
    Ack(usize),
    Fail(usize),
    Reject(usize),
    Resolve(usize),
    CloudEdit {
        stock: usize,
        delta: i8,
    },
    BeginPull,
    ReadCloud,
    CommitPull {
        full: bool,
        mask: u16,
    },
}

fn action() -> impl Strategy<Value = Action> {
    let s = 0..N_STOCK;
    let m = 0..MOVES.len();
    let q = 1u8..20;
    let i = 0usize..64;
    prop_oneof![
        3 => (s.clone(), m.clone(), q.clone()).prop_map(|(stock, mv, qty)| Action::Pick { stock, mv, qty }),
        2 => (s.clone(), m, q.clone()).prop_map(|(stock, mv, qty)| Action::Receive { stock, mv, qty }),
        2 => (s.clone(), 0u8..30, 0u8..30).prop_map(|(stock, counted, expected)| Action::Count { stock, counted, expected }),
        1 => (s.clone(), q).prop_map(|(stock, qty)| Action::Transfer { stock, qty }),
        4 => i.clone().prop_map(Action::StartPush),
        4 => i.clone().prop_map(Action::CloudApply),
        4 => i.clone().prop_map(Action::Ack),
        1 => i.clone().prop_map(Action::Fail),
        1 => i.clone().prop_map(Action::Reject),
        1 => i.prop_map(Action::Resolve),
        1 => (s, -10i8..10).prop_map(|(stock, delta)| Action::CloudEdit { stock, delta }),
        2 => Just(Action::BeginPull),
        2 => Just(Action::ReadCloud),
        2 => (any::<bool>(), any::<u16>()).prop_map(|(full, mask)| Action::CommitPull { full, mask }),
    ]
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum MState {
    Pending,
    InFlight,
    Applied,
    Rejected,
    Resolved,
}

#[derive(Debug)]
struct MEntry {
    seq: i64,
    effects: Vec<(Key, f64)>,
    state: MState,
    cloud_applied: bool,
    acked_epoch: i64,
}

#[derive(Clone, Debug, Default)]
struct Snapshot {
    value: f64,
    included: HashSet<usize>,
}

#[derive(Debug, Default)]
struct CloudModel {
    cloud: HashMap<Key, f64>,
    entries: Vec<MEntry>,
    mirror: HashMap<Key, Snapshot>,
    epoch: i64,
    pull: Option<(i64, Option<HashMap<Key, Snapshot>>)>,
}

fn all_keys() -> Vec<Key> {
    (0..N_STOCK)
        .map(Key::Stock)
        .chain((0..MOVES.len()).map(Key::Move))
        .collect()
}

fn key_record(key: Key, value: f64) -> Record {
    match key {
        Key::Stock(i) => {
            let (p, l, lot) = stock_key(i);
            quant(i as i64 + 1, p, l, lot, value)
        }
        Key::Move(i) => mv(MOVES[i], value),
    }
}

impl CloudModel {
    fn expected(&self, key: Key) -> f64 {
        let snap = self.mirror.get(&key).cloned().unwrap_or_default();
        snap.value
            + self
                .entries
                .iter()
                .enumerate()
                .filter(|(i, e)| e.state != MState::Resolved && !snap.included.contains(i))
                .flat_map(|(_, e)| e.effects.iter())
                .filter(|(k, _)| *k == key)
                .map(|(_, d)| d)
                .sum::<f64>()
    }

    fn held(&self, key: Key, epoch: i64) -> bool {
        self.entries.iter().any(|e| {
            e.effects.iter().any(|(k, _)| *k == key)
                && (e.state == MState::InFlight
                    || (e.state == MState::Applied && e.acked_epoch >= epoch))
        })
    }
}

fn effects_of(op: &Operation) -> Vec<(Key, f64)> {
    op.effects()
        .into_iter()
        .map(|e| match e {
            holdfast_sync::ops::Effect::Stock {
                product_id,
                location_id,
                lot_name,
                delta,
            } => {
                let i = (0..N_STOCK)
                    .find(|&i| stock_key(i) == (product_id.0, location_id.0, lot_name.as_str()))
                    .unwrap();
                (Key::Stock(i), delta)
            }
            holdfast_sync::ops::Effect::MovePicked { move_id, delta } => (
                Key::Move(MOVES.iter().position(|m| *m == move_id.0).unwrap()),
                delta,
            ),
            holdfast_sync::ops::Effect::LotKnown { .. } => unreachable!("no lot effects here"),
        })
        .collect()
}

fn pick_entry(n: usize, i: usize) -> Option<usize> {
    (n > 0).then(|| i % n)
}

fn run_case(actions: Vec<Action>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let rt = rt();
    let mut model = CloudModel::default();
    // Initial cloud and mirror: every key has a row.
    let mut seed = Vec::new();
    for (n, key) in all_keys().into_iter().enumerate() {
        let value = if matches!(key, Key::Stock(_)) {
            50.0 + n as f64
        } else {
            0.0
        };
        model.cloud.insert(key, value);
        model.mirror.insert(
            key,
            Snapshot {
                value,
                included: HashSet::new(),
            },
        );
        seed.push(key_record(key, value));
    }
    rt.block_on(store.apply_mirror(MirrorBatch {
        epoch: None,
        upserts: seed,
        deletes: vec![],
    }))
    .unwrap();

    for (step, action) in actions.into_iter().enumerate() {
        let op = match &action {
            Action::Pick { stock, mv, qty } => {
                let (p, l, lot) = stock_key(*stock);
                Some(pick(MOVES[*mv], p, l, lot, f64::from(*qty)).op)
            }
            Action::Receive { stock, mv, qty } => {
                let (p, l, lot) = stock_key(*stock);
                Some(Operation::Receive(ReceiveOp {
                    picking_id: 1,
                    move_id: MOVES[*mv],
                    product_id: p,
                    location_dest_id: l,
                    lot_name: None,
                    expiration_date: None,
                    quantity: f64::from(*qty),
                }))
                .filter(|_| lot.is_empty())
            }
            Action::Count {
                stock,
                counted,
                expected,
            } => {
                let (p, l, lot) = stock_key(*stock);
                Some(Operation::Count(CountOp {
                    product_id: p,
                    location_id: l,
                    lot_name: (!lot.is_empty()).then(|| lot.to_owned()),
                    counted: f64::from(*counted),
                    expected: f64::from(*expected),
                }))
            }
            Action::Transfer { stock, qty } => {
                let (p, l, lot) = stock_key(*stock);
                Some(Operation::Transfer(TransferOp {
                    product_id: p,
                    lot_name: (!lot.is_empty()).then(|| lot.to_owned()),
                    from_location_id: l,
                    to_location_id: LOCATIONS.iter().copied().find(|x| *x != l).unwrap(),
                    quantity: f64::from(*qty),
                }))
            }
            _ => None,
        };
        if let Some(op) = op {
            let effects = effects_of(&op);
            let appended = rt
                .block_on(store.append(
                    Lane::Device,
                    NewEntry {
                        id: None,
                        device: "d".into(),
                        operator: None,
                        op,
                    },
                ))
                .unwrap();
            model.entries.push(MEntry {
                seq: appended.seq,
                effects,
                state: MState::Pending,
                cloud_applied: false,
                acked_epoch: 0,
            });
        }
        match action {
            Action::StartPush(i) => {
                if let Some(i) = pick_entry(model.entries.len(), i)
                    .filter(|&i| model.entries[i].state == MState::Pending)
                {
                    rt.block_on(store.transition(Transition::InFlight {
                        seq: model.entries[i].seq,
                    }))
                    .unwrap();
                    model.entries[i].state = MState::InFlight;
                }
            }
            Action::CloudApply(i) => {
                if let Some(i) = pick_entry(model.entries.len(), i).filter(|&i| {
                    model.entries[i].state == MState::InFlight && !model.entries[i].cloud_applied
                }) {
                    model.entries[i].cloud_applied = true;
                    for (k, d) in model.entries[i].effects.clone() {
                        *model.cloud.get_mut(&k).unwrap() += d;
                    }
                }
            }
            Action::Ack(i) => {
                if let Some(i) = pick_entry(model.entries.len(), i).filter(|&i| {
                    model.entries[i].state == MState::InFlight && model.entries[i].cloud_applied
                }) {
                    rt.block_on(store.transition(Transition::Applied {
                        seq: model.entries[i].seq,
                        remote_ref: None,
                    }))
                    .unwrap();
                    model.entries[i].state = MState::Applied;
                    model.entries[i].acked_epoch = model.epoch;
                }
            }
            Action::Fail(i) | Action::Reject(i) => {
                if let Some(i) = pick_entry(model.entries.len(), i).filter(|&i| {
                    model.entries[i].state == MState::InFlight && !model.entries[i].cloud_applied
                }) {
                    let seq = model.entries[i].seq;
                    let (t, s) = if matches!(action, Action::Fail(_)) {
                        (
                            Transition::Retry {
                                seq,
                                error: "timeout".into(),
                                next_attempt_at: 0,
                            },
                            MState::Pending,
                        )
                    } else {
                        (
                            Transition::Rejected {
                                seq,
                                error: "ValidationError".into(),
                            },
                            MState::Rejected,
                        )
                    };
                    rt.block_on(store.transition(t)).unwrap();
                    model.entries[i].state = s;
                }
            }
            Action::Resolve(i) => {
                if let Some(i) = pick_entry(model.entries.len(), i)
                    .filter(|&i| model.entries[i].state == MState::Rejected)
                {
                    rt.block_on(store.transition(Transition::Resolved {
                        seq: model.entries[i].seq,
                        note: "discard".into(),
                    }))
                    .unwrap();
                    model.entries[i].state = MState::Resolved;
                }
            }
            Action::CloudEdit { stock, delta } => {
                *model.cloud.get_mut(&Key::Stock(stock)).unwrap() += f64::from(delta);
            }
            Action::BeginPull if model.pull.is_none() => {
                let epoch = rt.block_on(store.begin_pull()).unwrap();
                model.epoch = epoch.0;
                model.pull = Some((epoch.0, None));
            }
            Action::ReadCloud => {
                let included: HashSet<usize> = model
                    .entries
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| e.cloud_applied)
                    .map(|(i, _)| i)
                    .collect();
                let cloud = model.cloud.clone();
                if let Some((_, snap @ None)) = &mut model.pull {
                    *snap = Some(
                        cloud
                            .into_iter()
                            .map(|(k, value)| {
                                let inc = included
                                    .iter()
                                    .copied()
                                    .filter(|i| {
                                        model.entries[*i].effects.iter().any(|(ek, _)| *ek == k)
                                    })
                                    .collect();
                                (
                                    k,
                                    Snapshot {
                                        value,
                                        included: inc,
                                    },
                                )
                            })
                            .collect(),
                    );
                }
            }
            Action::CommitPull { full, mask } => {
                if let Some((epoch, Some(snap))) = model.pull.take() {
                    let keys: Vec<Key> = all_keys()
                        .into_iter()
                        .enumerate()
                        .filter(|(n, _)| full || mask & (1 << n) != 0)
                        .map(|(_, k)| k)
                        .collect();
                    let upserts = keys.iter().map(|k| key_record(*k, snap[k].value)).collect();
                    rt.block_on(store.apply_mirror(MirrorBatch {
                        epoch: Some(Epoch(epoch)),
                        upserts,
                        deletes: vec![],
                    }))
                    .unwrap();
                    if full {
                        rt.block_on(store.complete_snapshot(Epoch(epoch), Model::Quant))
                            .unwrap();
                        rt.block_on(store.complete_snapshot(Epoch(epoch), Model::Move))
                            .unwrap();
                    }
                    for k in keys {
                        if !model.held(k, epoch) {
                            model.mirror.insert(k, snap[&k].clone());
                        }
                    }
                }
                // A pull committed before it read anything is abandoned, as a failed pull is.
            }
            _ => {}
        }
        for key in all_keys() {
            let got = match key {
                Key::Stock(i) => {
                    let (p, l, lot) = stock_key(i);
                    store.read(|r| r.on_hand(p, l, lot)).unwrap()
                }
                Key::Move(i) => store.read(|r| r.move_picked(MOVES[i])).unwrap(),
            };
            prop_assert_eq!(got, model.expected(key), "step {} key {:?}", step, key);
        }
        // The running totals the view reads are always the sums they replace.
        let drift = store.read(|r| r.effect_total_drift()).unwrap();
        prop_assert!(
            drift.is_empty(),
            "step {}: totals drifted: {:?}",
            step,
            drift
        );
        // So are the queue's counts by state, which status reads instead of counting.
        let queue = store.read(|r| r.queue_stats()).unwrap().by_state;
        for (state, name) in [
            (MState::Pending, "pending"),
            (MState::InFlight, "in_flight"),
            (MState::Applied, "applied"),
            (MState::Rejected, "rejected"),
            (MState::Resolved, "resolved"),
        ] {
            let expected = model.entries.iter().filter(|e| e.state == state).count() as i64;
            prop_assert_eq!(queue[name], expected, "step {} {}", step, name);
        }
        let drift = store.read(|r| r.journal_count_drift()).unwrap();
        prop_assert!(
            drift.is_empty(),
            "step {}: counts drifted: {:?}",
            step,
            drift
        );
    }

    // Quiesce: settle every entry and pull everything; the view is then exactly the cloud
    // plus what the cloud never received (rejected entries).
    for i in 0..model.entries.len() {
        let seq = model.entries[i].seq;
        if model.entries[i].state == MState::Pending {
            rt.block_on(store.transition(Transition::InFlight { seq }))
                .unwrap();
            model.entries[i].state = MState::InFlight;
        }
        if model.entries[i].state == MState::InFlight {
            if !model.entries[i].cloud_applied {
                model.entries[i].cloud_applied = true;
                for (k, d) in model.entries[i].effects.clone() {
                    *model.cloud.get_mut(&k).unwrap() += d;
                }
            }
            rt.block_on(store.transition(Transition::Applied {
                seq,
                remote_ref: None,
            }))
            .unwrap();
            model.entries[i].state = MState::Applied;
        }
    }
    let epoch = rt.block_on(store.begin_pull()).unwrap();
    let upserts = all_keys()
        .into_iter()
        .map(|k| key_record(k, model.cloud[&k]))
        .collect();
    let out = rt
        .block_on(store.apply_mirror(MirrorBatch {
            epoch: Some(epoch),
            upserts,
            deletes: vec![],
        }))
        .unwrap();
    prop_assert_eq!(out.held_back, 0);
    let drift = store.read(|r| r.effect_total_drift()).unwrap();
    prop_assert!(
        drift.is_empty(),
        "after quiesce: totals drifted: {:?}",
        drift
    );
    for key in all_keys() {
        let rejected: f64 = model
            .entries
            .iter()
            .filter(|e| e.state == MState::Rejected)
            .flat_map(|e| e.effects.iter())
            .filter(|(k, _)| *k == key)
            .map(|(_, d)| d)
            .sum();
        let got = match key {
            Key::Stock(i) => {
                let (p, l, lot) = stock_key(i);
                store.read(|r| r.on_hand(p, l, lot)).unwrap()
            }
            Key::Move(i) => store.read(|r| r.move_picked(MOVES[i])).unwrap(),
        };
        prop_assert_eq!(
            got,
            model.cloud[&key] + rejected,
            "after quiesce, key {:?}",
            key
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("HOLDFAST_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64),
        ..ProptestConfig::default()
    })]

    #[test]
    fn view_matches_the_model_under_any_interleaving(actions in proptest::collection::vec(action(), 1..80)) {
        run_case(actions)?;
    }
}

#[test]
fn receipts_make_lots_known_and_progress_counts_the_floor_work() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let rt = rt();
    rt.block_on(store.apply_mirror(MirrorBatch {
        epoch: None,
        upserts: vec![mv(100, 0.0), mv(101, 2.0)],
        deletes: vec![],
    }))
    .unwrap();
    let receive = NewEntry {
        id: None,
        device: "h1".into(),
        operator: None,
        op: Operation::Receive(ReceiveOp {
            picking_id: 1,
            move_id: 100,
            product_id: 1,
            location_dest_id: 10,
            lot_name: Some("LOT-NEW".into()),
            expiration_date: Some("2027-01-31 00:00:00".into()),
            quantity: 4.0,
        }),
    };
    let a = rt.block_on(store.append(Lane::Device, receive)).unwrap();
    assert_eq!(
        store.read(|r| r.lot(1, "LOT-NEW")).unwrap(),
        Some(LotInfo {
            id: None,
            expiration_date: Some("2027-01-31 00:00:00".into())
        })
    );
    assert_eq!(store.read(|r| r.lot(2, "LOT-NEW")).unwrap(), None);
    assert_eq!(store.read(|r| r.on_hand(1, 10, "LOT-NEW")).unwrap(), 4.0);
    let progress = store.read(|r| r.picking_progress(1)).unwrap();
    assert_eq!(
        progress
            .iter()
            .map(|m| (m.move_id, m.demand, m.picked))
            .collect::<Vec<_>>(),
        vec![(100, 100.0, 4.0), (101, 100.0, 2.0)]
    );

    // Odoo confirms and a later pull brings the lot it created: known by id now, once.
    rt.block_on(store.transition(Transition::InFlight { seq: a.seq }))
        .unwrap();
    rt.block_on(store.transition(Transition::Applied {
        seq: a.seq,
        remote_ref: None,
    }))
    .unwrap();
    let epoch = rt.block_on(store.begin_pull()).unwrap();
    rt.block_on(store.apply_mirror(MirrorBatch {
        epoch: Some(epoch),
        upserts: vec![Record::Lot(Lot {
            id: LotId(77),
            product_id: ProductId(1),
            name: "LOT-NEW".into(),
            expiration_date: Some("2027-01-31 00:00:00".into()),
        })],
        deletes: vec![],
    }))
    .unwrap();
    assert_eq!(
        store.read(|r| r.lot(1, "LOT-NEW")).unwrap().unwrap().id,
        Some(77)
    );
    // The quant was not pulled yet: the received stock still shows through the effect.
    assert_eq!(store.read(|r| r.on_hand(1, 10, "LOT-NEW")).unwrap(), 4.0);
}

#[test]
fn resolving_keeps_odoos_message_and_the_decision() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let rt = rt();
    let a = rt
        .block_on(store.append(Lane::Device, pick(1, 1, 10, "", 1.0)))
        .unwrap();
    rt.block_on(store.transition(Transition::InFlight { seq: a.seq }))
        .unwrap();
    rt.block_on(store.transition(Transition::Rejected {
        seq: a.seq,
        error: "ValidationError: lot required".into(),
    }))
    .unwrap();
    assert_eq!(
        store.read(|r| r.on_hand(1, 10, "")).unwrap(),
        -1.0,
        "rejected still counts"
    );
    rt.block_on(store.transition(Transition::Resolved {
        seq: a.seq,
        note: "discarded by manager: miscount".into(),
    }))
    .unwrap();
    let e = store
        .read(|r| r.journal_entry(&a.seq.to_string()))
        .unwrap()
        .unwrap();
    assert_eq!(e.state, OpState::Resolved);
    assert_eq!(
        e.last_error.as_deref(),
        Some("ValidationError: lot required")
    );
    assert_eq!(e.note.as_deref(), Some("discarded by manager: miscount"));
    assert_eq!(
        store.read(|r| r.on_hand(1, 10, "")).unwrap(),
        0.0,
        "resolved leaves the view"
    );
}

#[test]
fn manager_accounts_end_their_sessions_and_every_change_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let audit = |action: &str| NewAudit {
        actor: "cli:test".into(),
        action: action.into(),
        target: Some("manager:anna".into()),
        detail: serde_json::json!({}),
    };
    let session = |token: &str, now: i64| ManagerCmd::OpenSession {
        token_sha256: token.into(),
        manager: "anna".into(),
        now,
        stale_before: now - 1_000,
        born_before: now - 10_000,
        audit: audit("login.success"),
    };
    rt().block_on(async {
        let add = ManagerCmd::Add {
            name: "anna".into(),
            role: "viewer".into(),
            password_hash: "h1".into(),
            audit: audit("manager.add"),
        };
        store.managers(add.clone()).await.unwrap();
        // The name is taken: refused, and nothing more is audited.
        assert!(matches!(
            store.managers(add).await,
            Err(StoreError::Conflict(_))
        ));
        let bad_role = ManagerCmd::Add {
            name: "ben".into(),
            role: "admin".into(),
            password_hash: "h".into(),
            audit: audit("manager.add"),
        };
        assert!(store.managers(bad_role).await.is_err());

        store.managers(session("s1", 100_000)).await.unwrap();
        assert_eq!(
            store
                .read(|r| r.manager_session("s1"))
                .unwrap()
                .unwrap()
                .role,
            "viewer"
        );
        store
            .managers(ManagerCmd::Touch {
                token_sha256: "s1".into(),
                at: 100_500,
            })
            .await
            .unwrap();
        // A sign-in removes sessions idle (last seen before) or old (created before) by then.
        store.managers(session("s2", 101_600)).await.unwrap();
        assert!(store.read(|r| r.manager_session("s1")).unwrap().is_none());
        assert!(store.read(|r| r.manager_session("s2")).unwrap().is_some());

        // A new password ends the sessions; so does removing the account.
        store
            .managers(ManagerCmd::Passwd {
                name: "anna".into(),
                password_hash: "h2".into(),
                audit: audit("manager.passwd"),
            })
            .await
            .unwrap();
        assert!(store.read(|r| r.manager_session("s2")).unwrap().is_none());
        assert_eq!(
            store
                .read(|r| r.manager("anna"))
                .unwrap()
                .unwrap()
                .password_hash,
            "h2"
        );
        store.managers(session("s3", 102_000)).await.unwrap();
        store
            .managers(ManagerCmd::Remove {
                name: "anna".into(),
                audit: audit("manager.remove"),
            })
            .await
            .unwrap();
        assert!(store.read(|r| r.manager_session("s3")).unwrap().is_none());
        assert!(store.read(|r| r.managers()).unwrap().is_empty());
        assert!(matches!(
            store
                .managers(ManagerCmd::Remove {
                    name: "anna".into(),
                    audit: audit("manager.remove"),
                })
                .await,
            Err(StoreError::NotFound(_))
        ));

        let actions: Vec<String> = store
            .read(|r| r.audit(100))
            .unwrap()
            .into_iter()
            .rev()
            .map(|a| a.action)
            .collect();
        assert_eq!(
            actions,
            [
                "manager.add",
                "login.success",
                "login.success",
                "manager.passwd",
                "login.success",
                "manager.remove"
            ]
        );
        store.shutdown().await.unwrap();
    });
}

#[test]
fn journal_pages_walk_back_a_window_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    rt().block_on(async {
        // Entries 1..=30: scanner-1 records all but 3, 4 and 5, which scanner-2 records.
        for n in 1..=30 {
            let mut entry = pick(n, 1, 10, "", 1.0);
            if (3..=5).contains(&n) {
                entry.device = "scanner-2".into();
            }
            store.append(Lane::Device, entry).await.unwrap();
        }
    });
    let page = |before: Option<i64>, device: Option<&str>, limit: usize| {
        store
            .read(|r| {
                r.journal_page(&JournalQuery {
                    device: device.map(str::to_owned),
                    before_seq: before,
                    limit,
                    window: Some(10),
                    ..Default::default()
                })
            })
            .unwrap()
    };
    let seqs = |p: &JournalPage| p.entries.iter().map(|e| e.seq).collect::<Vec<_>>();
    // Unfiltered: a full page ends at its last entry.
    let first = page(None, None, 4);
    assert_eq!(seqs(&first), vec![30, 29, 28, 27]);
    assert_eq!(first.next_before, Some(27));
    // A rare filter looks at 10 entries per page, never the whole journal: two empty
    // windows, then the matches, then nothing older.
    let p1 = page(None, Some("scanner-2"), 50);
    assert!(p1.entries.is_empty());
    assert_eq!((p1.searched_to, p1.next_before), (21, Some(21)));
    let p2 = page(p1.next_before, Some("scanner-2"), 50);
    assert!(p2.entries.is_empty());
    assert_eq!(p2.next_before, Some(11));
    let p3 = page(p2.next_before, Some("scanner-2"), 50);
    assert_eq!(seqs(&p3), vec![5, 4, 3]);
    assert_eq!((p3.searched_to, p3.next_before), (1, None));
    // An empty journal has no page.
    let empty = tempfile::tempdir().unwrap();
    let none = open(&empty)
        .read(|r| {
            r.journal_page(&JournalQuery {
                limit: 5,
                ..Default::default()
            })
        })
        .unwrap();
    assert!(none.entries.is_empty() && none.next_before.is_none());
}

#[test]
fn a_records_audit_trail_is_read_through_its_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    rt().block_on(async {
        for i in 0..300 {
            let target = if i % 100 == 7 {
                "conflict:7"
            } else {
                "addr:10.0.0.9"
            };
            store
                .managers(ManagerCmd::Audit(NewAudit {
                    actor: "anonymous".into(),
                    action: "login.failure".into(),
                    target: Some(target.into()),
                    detail: serde_json::json!({ "i": i }),
                }))
                .await
                .unwrap();
        }
    });
    let rows = store.read(|r| r.audit_of("conflict:7", 10)).unwrap();
    let order: Vec<i64> = rows
        .iter()
        .map(|r| r.detail["i"].as_i64().unwrap())
        .collect();
    assert_eq!(order, [207, 107, 7], "its own rows, newest first");
    let plan: Vec<String> = store
        .read(|r| {
            let mut stmt = r.conn().prepare(
                "EXPLAIN QUERY PLAN SELECT seq FROM audit WHERE target = ?1 ORDER BY seq DESC LIMIT 10",
            )?;
            let rows = stmt.query_map(["conflict:7"], |row| row.get::<_, String>(3))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .unwrap();
    assert!(
        plan.iter().any(|p| p.contains("audit_by_target")),
        "the target's index: {plan:?}"
    );
}

/// The push queue as the query before the key walk chose it: every open entry grouped by key.
fn queue_by_grouping(conn: &rusqlite::Connection, now: i64, limit: usize) -> PushQueue {
    let mut stmt = conn
        .prepare(
            "SELECT j.causal_key, j.seq, j.state, j.next_attempt_at FROM journal j
             WHERE j.seq IN (SELECT MIN(seq) FROM journal WHERE state IN ('pending', 'in_flight')
                             GROUP BY causal_key)
               AND j.causal_key NOT LIKE 'print:%'
               AND NOT EXISTS (SELECT 1 FROM journal b WHERE b.causal_key = j.causal_key
                               AND b.state IN ('conflict', 'rejected') AND b.seq < j.seq)
             ORDER BY COALESCE(j.next_attempt_at, 0), j.seq",
        )
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<i64>>(3)?,
            ))
        })
        .unwrap();
    let mut out = PushQueue::default();
    for row in rows {
        let (causal_key, first_seq, state, next) = row.unwrap();
        if state != "pending" {
            continue;
        }
        match next {
            Some(at) if at > now => out.next_at = Some(out.next_at.map_or(at, |n| n.min(at))),
            _ if out.ready.len() < limit => out.ready.push(ReadyKey {
                causal_key,
                first_seq,
            }),
            _ => {}
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("HOLDFAST_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64),
        ..ProptestConfig::default()
    })]

    /// The push queue walks the open keys one seek at a time; whatever the journal holds, it
    /// chooses what grouping every open entry by key chose.
    #[test]
    fn the_push_queue_chooses_what_grouping_every_open_entry_chose(
        entries in proptest::collection::vec(
            (0usize..6, 0usize..6, proptest::option::of(0i64..4)),
            0..80,
        ),
        now in 0i64..4,
        limit in 1usize..6,
    ) {
        const KEYS: [&str; 6] = ["pick:1", "pick:2", "count:7:3", "print:4", "validate:1", "pick:10"];
        const STATES: [&str; 6] = ["pending", "in_flight", "conflict", "rejected", "applied", "resolved"];
        let dir = tempfile::tempdir().unwrap();
        let mut conn = rusqlite::Connection::open(dir.path().join("q.db")).unwrap();
        schema::migrate(&mut conn, "q.db").unwrap();
        for (i, (key, state, next)) in entries.iter().enumerate() {
            conn.execute(
                "INSERT INTO journal (seq, id, site, device, kind, payload_version, payload,
                     causal_key, created_at, state, next_attempt_at)
                 VALUES (?1, ?1, 's', 'd', 'pick', 1, '{}', ?2, 0, ?3, ?4)",
                rusqlite::params![i as i64 + 1, KEYS[*key], STATES[*state], next],
            )
            .unwrap();
        }
        let walked = push::read::queue(&conn, now, limit).unwrap();
        prop_assert_eq!(walked, queue_by_grouping(&conn, now, limit));
    }
}
