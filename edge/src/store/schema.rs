//! Numbered schema migrations, tracked by `PRAGMA user_version`.
//!
//! Migration N (1-based) takes a database from version N-1 to N. A shipped migration is never
//! edited: a change is a new migration appended to [`MIGRATIONS`]. A database whose version is
//! newer than this list is refused (an older binary must not write a schema it does not know).

use rusqlite::{Connection, OptionalExtension};

use super::StoreError;

/// Every migration, in order. The index + 1 is the version it produces.
pub const MIGRATIONS: &[&str] = &[
    V1,
    V2,
    V3,
    V4,
    HELD_BACK,
    PUSH_ATTEMPTS,
    UOM_ROUNDING,
    MANAGERS,
    LANGUAGES,
    BACKLOG,
    AUDIT_BY_TARGET,
    EFFECT_TOTALS,
    MIRROR_GENERATION,
    CHECKS_AS_COMPARISONS,
    PULL_INDEXES_AFTER_SEND,
    STORED_ANSWERS_BY_ROWID,
    QUANT_KEY_COVERS_QUANTITIES,
    JOURNAL_COUNTS,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Version 1: mirror, journal, effects, sync cursors and appliance state.
///
/// The mirror has no foreign keys on purpose: it is a cache of Odoo, which keeps its own
/// integrity, and a site mirrors only its own slice (a picking may name a partner or location
/// outside it). Foreign keys guard what the appliance owns: the journal and its effects.
const V1: &str = r#"
CREATE TABLE company (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL
);
CREATE TABLE warehouse (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    code TEXT NOT NULL,
    company_id INTEGER NOT NULL,
    view_location_id INTEGER NOT NULL,
    lot_stock_id INTEGER NOT NULL
);
CREATE TABLE partner (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    street TEXT,
    street2 TEXT,
    zip TEXT,
    city TEXT,
    country TEXT
);
CREATE TABLE product (
    id INTEGER PRIMARY KEY,
    default_code TEXT,
    barcode TEXT,
    name TEXT NOT NULL,
    tracking TEXT NOT NULL CHECK (tracking IN ('none', 'lot', 'serial')),
    uom TEXT NOT NULL,
    active INTEGER NOT NULL
);
CREATE INDEX product_barcode ON product (barcode) WHERE barcode IS NOT NULL;
CREATE INDEX product_default_code ON product (default_code) WHERE default_code IS NOT NULL;
CREATE TABLE packaging (
    id INTEGER PRIMARY KEY,
    product_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    barcode TEXT,
    qty REAL NOT NULL
);
CREATE INDEX packaging_barcode ON packaging (barcode) WHERE barcode IS NOT NULL;
CREATE TABLE lot (
    id INTEGER PRIMARY KEY,
    product_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    expiration_date TEXT
);
CREATE INDEX lot_name ON lot (name, product_id);
CREATE TABLE location (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    complete_name TEXT NOT NULL,
    barcode TEXT,
    usage TEXT NOT NULL,
    parent_id INTEGER,
    warehouse_id INTEGER,
    active INTEGER NOT NULL
);
CREATE INDEX location_barcode ON location (barcode) WHERE barcode IS NOT NULL;
CREATE TABLE package (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    location_id INTEGER
);
CREATE INDEX package_name ON package (name);
CREATE TABLE quant (
    id INTEGER PRIMARY KEY,
    product_id INTEGER NOT NULL,
    location_id INTEGER NOT NULL,
    lot_id INTEGER,
    lot_name TEXT NOT NULL DEFAULT '',
    package_id INTEGER,
    quantity REAL NOT NULL,
    reserved REAL NOT NULL
);
CREATE INDEX quant_key ON quant (product_id, location_id, lot_name);
CREATE INDEX quant_location ON quant (location_id);
CREATE TABLE picking_type (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    code TEXT NOT NULL CHECK (code IN ('incoming', 'outgoing', 'internal')),
    barcode TEXT,
    warehouse_id INTEGER,
    default_location_src_id INTEGER,
    default_location_dest_id INTEGER
);
CREATE INDEX picking_type_barcode ON picking_type (barcode) WHERE barcode IS NOT NULL;
CREATE TABLE picking (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    picking_type_id INTEGER NOT NULL,
    location_id INTEGER NOT NULL,
    location_dest_id INTEGER NOT NULL,
    partner_id INTEGER,
    origin TEXT,
    scheduled_date TEXT,
    backorder_id INTEGER,
    company_id INTEGER NOT NULL
);
CREATE INDEX picking_name ON picking (name);
CREATE INDEX picking_state ON picking (state, picking_type_id);
CREATE TABLE move (
    id INTEGER PRIMARY KEY,
    picking_id INTEGER,
    product_id INTEGER NOT NULL,
    product_uom_qty REAL NOT NULL,
    quantity REAL NOT NULL,
    picked INTEGER NOT NULL,
    state TEXT NOT NULL,
    location_id INTEGER NOT NULL,
    location_dest_id INTEGER NOT NULL
);
CREATE INDEX move_picking ON move (picking_id);
CREATE TABLE move_line (
    id INTEGER PRIMARY KEY,
    move_id INTEGER,
    picking_id INTEGER,
    product_id INTEGER NOT NULL,
    lot_id INTEGER,
    lot_name TEXT,
    package_id INTEGER,
    result_package_id INTEGER,
    location_id INTEGER NOT NULL,
    location_dest_id INTEGER NOT NULL,
    quantity REAL NOT NULL,
    picked INTEGER NOT NULL
);
CREATE INDEX move_line_move ON move_line (move_id);
CREATE INDEX move_line_picking ON move_line (picking_id);

-- Per-model pull cursors: Odoo write_date of the newest record seen, and when the model
-- was last pulled in full and incrementally (unix ms).
-- A full pull interrupted half-way resumes after `resume_after`; `resume_epoch` is the epoch
-- of its first attempt (rows written then include only what was acknowledged before it).
CREATE TABLE sync_cursor (
    model TEXT PRIMARY KEY,
    write_date TEXT,
    full_at INTEGER,
    incremental_at INTEGER,
    resume_after INTEGER,
    resume_epoch INTEGER,
    -- (id, write_date) pairs of records inside the overlap window of `write_date`, as a JSON
    -- array: an incremental pull skips re-reading them as changes.
    window TEXT
);

-- Cloud-side changes to pickings the floor owns (open journal entries on them), seen by a
-- pull: never overwritten silently; reconciliation turns them into conflicts.
CREATE TABLE cloud_change (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    picking_id INTEGER NOT NULL,
    model TEXT NOT NULL,
    record_id INTEGER NOT NULL,
    summary TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    seen_at INTEGER NOT NULL,
    handled INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX cloud_change_open ON cloud_change (picking_id) WHERE handled = 0;

-- One row: the pull epoch counter (see store/mod.rs, "rebase"), connectivity mode and the
-- times of the last pull and push.
CREATE TABLE appliance_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    epoch INTEGER NOT NULL,
    mode TEXT NOT NULL,
    mode_since INTEGER NOT NULL,
    last_pull_at INTEGER,
    last_push_at INTEGER
);
INSERT INTO appliance_state (id, epoch, mode, mode_since)
VALUES (1, 0, 'offline', CAST(unixepoch('subsec') * 1000 AS INTEGER));

-- The journal: append-only. Rows are never deleted and their identity and payload never
-- change; only the delivery columns (state, attempts, errors, acks) move.
CREATE TABLE journal (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    site TEXT NOT NULL,
    device TEXT NOT NULL,
    operator TEXT,
    kind TEXT NOT NULL CHECK (kind IN ('pick', 'receive', 'validate', 'count', 'transfer', 'print')),
    payload_version INTEGER NOT NULL,
    payload TEXT NOT NULL,
    causal_key TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'in_flight', 'applied', 'conflict', 'rejected', 'resolved')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    next_attempt_at INTEGER,
    remote_ref TEXT,
    created_at INTEGER NOT NULL,
    acked_at INTEGER,
    acked_epoch INTEGER,
    -- Who decided a conflict or rejection, and how (kept beside Odoo's last error).
    note TEXT
);
-- "Next open entry per causal key" and the push queue, without touching settled history.
CREATE INDEX journal_open_by_key ON journal (causal_key, seq)
    WHERE state IN ('pending', 'in_flight');
CREATE INDEX journal_by_state ON journal (state, seq);
CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal
BEGIN
    SELECT RAISE(ABORT, 'journal is append-only');
END;
CREATE TRIGGER journal_immutable
BEFORE UPDATE OF seq, id, site, device, operator, kind, payload_version, payload, causal_key, created_at
ON journal
BEGIN
    SELECT RAISE(ABORT, 'journal entries are immutable');
END;

-- What each entry does to the floor's view until the cloud confirmed it and a pull folded
-- it into the mirror. `live` = 1 while the effect still counts.
CREATE TABLE journal_effect (
    seq INTEGER NOT NULL REFERENCES journal (seq),
    target TEXT NOT NULL CHECK (target IN ('stock', 'move', 'lot')),
    product_id INTEGER,
    location_id INTEGER,
    lot_name TEXT NOT NULL DEFAULT '',
    move_id INTEGER,
    delta REAL NOT NULL DEFAULT 0,
    expiration_date TEXT,
    live INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX effect_seq ON journal_effect (seq);
CREATE INDEX effect_stock ON journal_effect (product_id, location_id, lot_name)
    WHERE live = 1 AND target = 'stock';
CREATE INDEX effect_move ON journal_effect (move_id) WHERE live = 1 AND target = 'move';
CREATE INDEX effect_lot ON journal_effect (product_id, lot_name) WHERE live = 1 AND target = 'lot';
"#;

/// Version 2: the floor's own state — devices and operators, who is signed in where,
/// workflow sessions, and the answers already given to device requests (idempotency); effect
/// indexes that cover the view's sums.
const V2: &str = r#"
-- Devices allowed on the device API with a token issued by `holdfast device issue`. Only a
-- SHA-256 digest of the token is kept (tokens are 256-bit random: a plain digest is enough).
-- Devices configured in [[devices]] are not stored here.
CREATE TABLE device (
    id TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL UNIQUE,
    issued_at INTEGER NOT NULL,
    revoked_at INTEGER
);

-- Operators: a badge (scanned) and/or a PIN (argon2 PHC string), managed with
-- `holdfast operator ...`.
CREATE TABLE operator (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    badge TEXT UNIQUE,
    pin_hash TEXT,
    active INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL
);

-- Workflow sessions (one per device + operator + task). `data` is the state machine's
-- persisted state as JSON; `version` increases with every step, and a step is written only
-- if the version it started from is still current.
CREATE TABLE session (
    id TEXT PRIMARY KEY,
    device TEXT NOT NULL,
    operator TEXT NOT NULL,
    workflow TEXT NOT NULL CHECK (workflow IN ('pick', 'receive', 'count', 'transfer')),
    picking_id INTEGER,
    state TEXT NOT NULL CHECK (state IN ('active', 'done', 'cancelled')),
    data TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
-- One open session per picking: two people picking the same picking from two devices would
-- double-count it.
CREATE UNIQUE INDEX session_picking_open ON session (picking_id)
    WHERE state = 'active' AND picking_id IS NOT NULL;
CREATE INDEX session_operator_open ON session (operator) WHERE state = 'active';

-- Who is signed in on each device, and the session its scans go to.
CREATE TABLE device_login (
    device TEXT PRIMARY KEY,
    operator TEXT NOT NULL,
    session_id TEXT,
    signed_in_at INTEGER NOT NULL
);

-- Answers already given to write requests, by (device, Idempotency-Key): a device retrying
-- after a lost answer gets the first answer again instead of a second journal entry.
-- `fingerprint` is a digest of the request, so a key reused for a different request is refused.
CREATE TABLE device_request (
    device TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status INTEGER NOT NULL,
    response TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (device, key)
) WITHOUT ROWID;
CREATE INDEX device_request_age ON device_request (created_at);

-- Pickings the floor has validated (until a pull brings Odoo's "done"): never opened again.
CREATE INDEX journal_validate ON journal (causal_key) WHERE kind = 'validate';

-- The view sums live effects on every scan: carry the delta in the indexes so a sum reads
-- the index alone, not one table page per effect.
DROP INDEX effect_stock;
CREATE INDEX effect_stock ON journal_effect (product_id, location_id, lot_name, delta)
    WHERE live = 1 AND target = 'stock';
DROP INDEX effect_move;
CREATE INDEX effect_move ON journal_effect (move_id, delta) WHERE live = 1 AND target = 'move';
"#;

/// Version 3: reconciliation. Journal entries learn the `resolve` kind (a person's decision on
/// a conflict is a journal entry too) and an `ambiguous` flag (an attempt whose outcome is
/// unknown: the next one looks for its mark before sending anything). SQLite cannot change a
/// CHECK constraint in place, so the journal is rebuilt (the documented 12-step procedure;
/// the migration runner turns foreign keys off around it and checks them before commit).
/// Conflicts get their own table, with both sides' values and who decided.
const V3: &str = r#"
CREATE TABLE journal_v3 (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    site TEXT NOT NULL,
    device TEXT NOT NULL,
    operator TEXT,
    kind TEXT NOT NULL
        CHECK (kind IN ('pick', 'receive', 'validate', 'count', 'transfer', 'print', 'resolve')),
    payload_version INTEGER NOT NULL,
    payload TEXT NOT NULL,
    causal_key TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'in_flight', 'applied', 'conflict', 'rejected', 'resolved')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    next_attempt_at INTEGER,
    remote_ref TEXT,
    created_at INTEGER NOT NULL,
    acked_at INTEGER,
    acked_epoch INTEGER,
    note TEXT,
    ambiguous INTEGER NOT NULL DEFAULT 0
);
INSERT INTO journal_v3 (seq, id, site, device, operator, kind, payload_version, payload,
    causal_key, state, attempts, last_error, next_attempt_at, remote_ref, created_at, acked_at,
    acked_epoch, note)
SELECT seq, id, site, device, operator, kind, payload_version, payload, causal_key, state,
    attempts, last_error, next_attempt_at, remote_ref, created_at, acked_at, acked_epoch, note
FROM journal;
DROP TABLE journal;
ALTER TABLE journal_v3 RENAME TO journal;
CREATE INDEX journal_open_by_key ON journal (causal_key, seq)
    WHERE state IN ('pending', 'in_flight');
CREATE INDEX journal_by_state ON journal (state, seq);
CREATE INDEX journal_validate ON journal (causal_key) WHERE kind = 'validate';
-- Keys blocked by an entry waiting for a decision, found without walking settled history.
CREATE INDEX journal_blocking ON journal (causal_key, seq) WHERE state IN ('conflict', 'rejected');
-- The prior entries of a key that reached Odoo (picks are pushed as absolute sums).
CREATE INDEX journal_applied_by_key ON journal (causal_key, seq) WHERE state = 'applied';
CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal
BEGIN
    SELECT RAISE(ABORT, 'journal is append-only');
END;
CREATE TRIGGER journal_immutable
BEFORE UPDATE OF seq, id, site, device, operator, kind, payload_version, payload, causal_key, created_at
ON journal
BEGIN
    SELECT RAISE(ABORT, 'journal entries are immutable');
END;

-- A disagreement between the floor and the cloud. `open` waits for a person, `flagged` was
-- applied anyway and is shown until acknowledged, `resolved` is history. `seqs` lists the
-- journal entries it holds back (a JSON array); `resolution_seq` is the `resolve` entry that
-- recorded the decision.
CREATE TABLE conflict (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    seq INTEGER NOT NULL REFERENCES journal (seq),
    seqs TEXT NOT NULL,
    causal_key TEXT NOT NULL,
    kind TEXT NOT NULL,
    policy TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'flagged', 'resolved')),
    message TEXT NOT NULL,
    edge TEXT NOT NULL,
    cloud TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    resolution TEXT,
    note TEXT,
    resolved_by TEXT,
    resolved_at INTEGER,
    resolution_seq INTEGER REFERENCES journal (seq)
);
CREATE INDEX conflict_by_status ON conflict (status, id);
CREATE TRIGGER conflict_no_delete BEFORE DELETE ON conflict
BEGIN
    SELECT RAISE(ABORT, 'conflicts are kept as an audit trail');
END;
"#;

/// Version 4: devices on the LAN. The registry keeps what the appliance knows of every
/// scanner, printer and broker link (configured or seen), and the print spool keeps label jobs
/// until a printer took them: jobs survive restarts, and a send whose outcome is unknown is
/// held (`unknown`) for a person instead of being printed twice.
const V4: &str = r#"
CREATE TABLE device_registry (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('scanner', 'printer', 'broker')),
    transport TEXT NOT NULL,
    address TEXT,
    configured INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'unknown',
    first_seen INTEGER,
    last_seen INTEGER,
    last_error TEXT,
    last_error_at INTEGER,
    scans INTEGER NOT NULL DEFAULT 0,
    refused INTEGER NOT NULL DEFAULT 0,
    errors INTEGER NOT NULL DEFAULT 0,
    detail TEXT
);

-- Label jobs. `queued` waits for its printer, `sending` is being written to it, `sent` was
-- taken by it, `unknown` was interrupted mid-send (held: reprint or cancel is a person's call),
-- `cancelled` by a person. `reprint_of` links an explicit reprint to its original.
CREATE TABLE print_job (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    printer TEXT NOT NULL,
    template TEXT NOT NULL,
    label TEXT NOT NULL,
    zpl TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued'
        CHECK (state IN ('queued', 'sending', 'sent', 'unknown', 'cancelled')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    next_attempt_at INTEGER,
    requested_by TEXT NOT NULL,
    source TEXT,
    reprint_of INTEGER REFERENCES print_job (id),
    -- A device's Idempotency-Key: a retried print request spools nothing more.
    request_key TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    sent_at INTEGER
);
CREATE INDEX print_job_queue ON print_job (printer, id) WHERE state IN ('queued', 'sending');
CREATE INDEX print_job_by_state ON print_job (state, id);
CREATE UNIQUE INDEX print_job_request ON print_job (requested_by, request_key)
    WHERE request_key IS NOT NULL;

-- Serial references of SSCCs issued here, per GS1 company prefix (never reused).
CREATE TABLE sscc_counter (
    prefix TEXT PRIMARY KEY,
    next INTEGER NOT NULL
);
"#;

/// Version 5: mirror rows a pull held back. A held-back row keeps its old copy, but its
/// `write_date` still enters the pull's cursor window, so later incremental pulls would take
/// it for unchanged; the store remembers it (with the view key that held it) until a pull
/// writes it, and each pull reads the ones whose entries have settled again by id.
const HELD_BACK: &str = r#"
CREATE TABLE held_back (
    model TEXT NOT NULL,
    record_id INTEGER NOT NULL,
    target TEXT NOT NULL CHECK (target IN ('stock', 'move', 'lot')),
    product_id INTEGER,
    location_id INTEGER,
    lot_name TEXT,
    move_id INTEGER,
    -- The epoch of the pull that last held it back.
    epoch INTEGER NOT NULL,
    PRIMARY KEY (model, record_id)
) WITHOUT ROWID;
"#;

/// Version 6: every push attempt of every entry (the journal keeps only the last error): when
/// it began (written when the entry goes in flight, so a retry knows since when Odoo may hold
/// its work), and how it ended, with the failed call and its error class, written in the same
/// commit as the entry's settle. One cut off by a stop ends `interrupted` at the next start.
const PUSH_ATTEMPTS: &str = r#"
CREATE TABLE push_attempt (
    seq INTEGER NOT NULL REFERENCES journal (seq),
    attempt INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    ended_at INTEGER,
    outcome TEXT CHECK (outcome IN ('applied', 'retry', 'conflict', 'rejected', 'discarded', 'interrupted')),
    call TEXT,
    class TEXT,
    message TEXT,
    PRIMARY KEY (seq, attempt)
) WITHOUT ROWID;
CREATE INDEX push_attempt_open ON push_attempt (seq) WHERE ended_at IS NULL;
"#;

/// A product's unit rounding (`uom.uom.rounding`): quantities are multiples of it. NULL until
/// the product is pulled again (the floor then takes Odoo's default, 0.01); the product
/// cursor is dropped so the next pull reads every product.
const UOM_ROUNDING: &str = r#"
ALTER TABLE product ADD COLUMN uom_rounding REAL CHECK (uom_rounding IS NULL OR uom_rounding > 0);
DELETE FROM sync_cursor WHERE model = 'product.product';
"#;

/// Version 8: the site-manager console. Manager accounts (argon2id password hashes), their
/// sessions (only the SHA-256 of a session token is kept: a copy of the database signs nobody
/// in), and the audit trail of every manager action, sign-ins included.
const MANAGERS: &str = r#"
CREATE TABLE manager (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('viewer', 'manager')),
    password_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE manager_session (
    token_sha256 TEXT PRIMARY KEY,
    manager TEXT NOT NULL REFERENCES manager (name) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    last_seen INTEGER NOT NULL
);
CREATE INDEX manager_session_by_manager ON manager_session (manager);
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    -- JSON object text.
    detail TEXT NOT NULL DEFAULT '{}'
);
"#;

/// Version 9: the language a manager or an operator chose (`en`, `de`, ...), NULL for "as
/// the browser asks" (`Accept-Language`).
const LANGUAGES: &str = r#"
ALTER TABLE manager ADD COLUMN language TEXT CHECK (language IS NULL OR length(language) BETWEEN 2 AND 12);
ALTER TABLE operator ADD COLUMN language TEXT CHECK (language IS NULL OR length(language) BETWEEN 2 AND 12);
"#;

/// Version 10: the backlog's history for the console's chart, one row a minute (`minute` is
/// unix time / 60): the queue as status counts it, the oldest open entry's age, and the
/// journal's applied total (the drain per minute is the difference between rows). Kept for
/// two days; each write prunes older rows.
const BACKLOG: &str = r#"
CREATE TABLE backlog_sample (
    minute INTEGER PRIMARY KEY,
    pending INTEGER NOT NULL CHECK (pending >= 0),
    in_flight INTEGER NOT NULL CHECK (in_flight >= 0),
    conflicts INTEGER NOT NULL CHECK (conflicts >= 0),
    oldest_pending_age_s INTEGER CHECK (oldest_pending_age_s IS NULL OR oldest_pending_age_s >= 0),
    applied_total INTEGER NOT NULL CHECK (applied_total >= 0)
) WITHOUT ROWID;
"#;

/// Version 11: the audit trail by target, for a conflict's (or any record's) own trail on
/// the console without reading the whole trail, which refused sign-ins make long.
const AUDIT_BY_TARGET: &str = r#"
CREATE INDEX audit_by_target ON audit (target, seq) WHERE target IS NOT NULL;
"#;

/// Version 12: running totals of the live effects, so the view's sums (on hand per product,
/// location and lot; picked per move) read one row instead of every unfolded effect. Triggers
/// keep them in the same transaction as the effects, whichever statement adds an effect or
/// folds it (`live` 1 → 0), so no code path can forget them. A key's row goes when its last
/// live effect is folded: the total starts again from an exact 0. Moves have their own table
/// keyed by the move's id (the hot one: every pick adds to it) so that its upsert is an
/// integer-key seek. `lot` effects carry no quantity and are not totalled. Effects are never
/// edited otherwise, which triggers now enforce (an edited delta would leave a total wrong).
const EFFECT_TOTALS: &str = r#"
CREATE TABLE move_total (
    move_id INTEGER PRIMARY KEY,
    total REAL NOT NULL,
    effects INTEGER NOT NULL CHECK (effects > 0)
);
CREATE TABLE stock_total (
    product_id INTEGER NOT NULL,
    location_id INTEGER NOT NULL,
    lot_name TEXT NOT NULL,
    total REAL NOT NULL,
    effects INTEGER NOT NULL CHECK (effects > 0),
    PRIMARY KEY (product_id, location_id, lot_name)
) WITHOUT ROWID;
INSERT INTO move_total (move_id, total, effects)
    SELECT move_id, SUM(delta), COUNT(*) FROM journal_effect
    WHERE live = 1 AND target = 'move' GROUP BY move_id;
INSERT INTO stock_total (product_id, location_id, lot_name, total, effects)
    SELECT product_id, location_id, lot_name, SUM(delta), COUNT(*) FROM journal_effect
    WHERE live = 1 AND target = 'stock' GROUP BY product_id, location_id, lot_name;
CREATE TRIGGER move_total_add AFTER INSERT ON journal_effect
WHEN NEW.live = 1 AND NEW.target = 'move'
BEGIN
    INSERT INTO move_total (move_id, total, effects) VALUES (NEW.move_id, NEW.delta, 1)
    ON CONFLICT DO UPDATE SET total = total + excluded.total, effects = effects + 1;
END;
CREATE TRIGGER stock_total_add AFTER INSERT ON journal_effect
WHEN NEW.live = 1 AND NEW.target = 'stock'
BEGIN
    INSERT INTO stock_total (product_id, location_id, lot_name, total, effects)
    VALUES (NEW.product_id, NEW.location_id, NEW.lot_name, NEW.delta, 1)
    ON CONFLICT DO UPDATE SET total = total + excluded.total, effects = effects + 1;
END;
-- Folding the last live effect of a key deletes its row; otherwise (the DELETE matched
-- nothing) the effect is subtracted.
CREATE TRIGGER move_total_fold AFTER UPDATE OF live ON journal_effect
WHEN OLD.live = 1 AND NEW.live = 0 AND OLD.target = 'move'
BEGIN
    DELETE FROM move_total WHERE move_id = OLD.move_id AND effects = 1;
    UPDATE move_total SET total = total - OLD.delta, effects = effects - 1
    WHERE move_id = OLD.move_id;
END;
CREATE TRIGGER stock_total_fold AFTER UPDATE OF live ON journal_effect
WHEN OLD.live = 1 AND NEW.live = 0 AND OLD.target = 'stock'
BEGIN
    DELETE FROM stock_total
    WHERE product_id = OLD.product_id AND location_id = OLD.location_id
      AND lot_name = OLD.lot_name AND effects = 1;
    UPDATE stock_total SET total = total - OLD.delta, effects = effects - 1
    WHERE product_id = OLD.product_id AND location_id = OLD.location_id
      AND lot_name = OLD.lot_name;
END;
CREATE TRIGGER effect_no_revive BEFORE UPDATE OF live ON journal_effect
WHEN OLD.live = 0 AND NEW.live != 0
BEGIN
    SELECT RAISE(ABORT, 'a folded effect stays folded');
END;
CREATE TRIGGER effect_immutable
BEFORE UPDATE OF seq, target, product_id, location_id, lot_name, move_id, delta ON journal_effect
BEGIN
    SELECT RAISE(ABORT, 'journal effects are immutable');
END;
CREATE TRIGGER effect_no_delete BEFORE DELETE ON journal_effect
BEGIN
    SELECT RAISE(ABORT, 'journal effects are append-only');
END;
"#;

/// Version 13: the mirror's generation, bumped by every pull that writes mirror rows, in the
/// same transaction. Readers keep hot mirror rows in memory tagged with the generation they
/// read them at (see `store/hot.rs`), so an answer from memory is what the reader's own
/// snapshot holds.
const MIRROR_GENERATION: &str = r#"
CREATE TABLE mirror_generation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n INTEGER NOT NULL
);
INSERT INTO mirror_generation (id, n) VALUES (1, 0);
"#;

/// Version 14: CHECK constraints that list three or more allowed values are written as
/// comparisons joined by OR. SQLite evaluates `x IN ('a', 'b', 'c')` by building an ephemeral
/// table for the list every time a statement runs (a B-tree opened, filled and closed), and a
/// CHECK runs with every insert: four of them per journal append. The two forms allow exactly
/// the same values (NULL included), so the definitions are rewritten in place, the documented
/// way for a change that leaves every stored row valid (`writable_schema`; RESET reloads this
/// connection's schema; `migrate_with` bumps the schema cookie for the others). A new CHECK
/// with a list of values is written the same way (`schema::tests` refuses the IN form).
const CHECKS_AS_COMPARISONS: &str = r#"
PRAGMA writable_schema = ON;
UPDATE sqlite_schema SET sql = replace(sql,
    'CHECK (tracking IN (''none'', ''lot'', ''serial''))',
    'CHECK (tracking = ''none'' OR tracking = ''lot'' OR tracking = ''serial'')')
WHERE type = 'table' AND name = 'product';
UPDATE sqlite_schema SET sql = replace(sql,
    'CHECK (code IN (''incoming'', ''outgoing'', ''internal''))',
    'CHECK (code = ''incoming'' OR code = ''outgoing'' OR code = ''internal'')')
WHERE type = 'table' AND name = 'picking_type';
UPDATE sqlite_schema SET sql = replace(sql,
    'CHECK (target IN (''stock'', ''move'', ''lot''))',
    'CHECK (target = ''stock'' OR target = ''move'' OR target = ''lot'')')
WHERE type = 'table' AND (name = 'journal_effect' OR name = 'held_back');
UPDATE sqlite_schema SET sql = replace(sql,
    'CHECK (workflow IN (''pick'', ''receive'', ''count'', ''transfer''))',
    'CHECK (workflow = ''pick'' OR workflow = ''receive'''
        || ' OR workflow = ''count'' OR workflow = ''transfer'')')
WHERE type = 'table' AND name = 'session';
UPDATE sqlite_schema SET sql = replace(sql,
    'CHECK (state IN (''active'', ''done'', ''cancelled''))',
    'CHECK (state = ''active'' OR state = ''done'' OR state = ''cancelled'')')
WHERE type = 'table' AND name = 'session';
UPDATE sqlite_schema SET sql = replace(sql,
    'CHECK (kind IN (''pick'', ''receive'', ''validate'', '
        || '''count'', ''transfer'', ''print'', ''resolve''))',
    'CHECK (kind = ''pick'' OR kind = ''receive'' OR kind = ''validate'''
        || ' OR kind = ''count'' OR kind = ''transfer'' OR kind = ''print'''
        || ' OR kind = ''resolve'')')
WHERE type = 'table' AND name = 'journal';
UPDATE sqlite_schema SET sql = replace(sql,
    'CHECK (state IN (''pending'', ''in_flight'', '
        || '''applied'', ''conflict'', ''rejected'', ''resolved''))',
    'CHECK (state = ''pending'' OR state = ''in_flight'''
        || ' OR state = ''applied'' OR state = ''conflict'''
        || ' OR state = ''rejected'' OR state = ''resolved'')')
WHERE type = 'table' AND name = 'journal';
UPDATE sqlite_schema SET sql = replace(sql,
    'CHECK (status IN (''open'', ''flagged'', ''resolved''))',
    'CHECK (status = ''open'' OR status = ''flagged'' OR status = ''resolved'')')
WHERE type = 'table' AND name = 'conflict';
UPDATE sqlite_schema SET sql = replace(sql,
    'CHECK (kind IN (''scanner'', ''printer'', ''broker''))',
    'CHECK (kind = ''scanner'' OR kind = ''printer'' OR kind = ''broker'')')
WHERE type = 'table' AND name = 'device_registry';
UPDATE sqlite_schema SET sql = replace(sql,
    'CHECK (state IN (''queued'', ''sending'', ''sent'', ''unknown'', ''cancelled''))',
    'CHECK (state = ''queued'' OR state = ''sending'' OR state = ''sent'''
        || ' OR state = ''unknown'' OR state = ''cancelled'')')
WHERE type = 'table' AND name = 'print_job';
UPDATE sqlite_schema SET sql = replace(sql,
    'CHECK (outcome IN (''applied'', ''retry'', '
        || '''conflict'', ''rejected'', ''discarded'', ''interrupted''))',
    'CHECK (outcome = ''applied'' OR outcome = ''retry'''
        || ' OR outcome = ''conflict'' OR outcome = ''rejected'''
        || ' OR outcome = ''discarded'' OR outcome = ''interrupted'')')
WHERE type = 'table' AND name = 'push_attempt';
PRAGMA writable_schema = RESET;
"#;

/// Version 15: the effect indexes the pull uses hold only effects of entries that have left
/// the queue (sent, outcome unknown, or decided), so a journal append writes no leaf of them.
/// The pull asks two questions of a key's live effects, whether an unconfirmed entry holds it
/// back and which confirmed entries to fold (`mirror::EffectKey`), and both only ever match
/// entries that are in flight, ambiguous or applied; the view's sums read the running totals
/// (version 12). `pushed` says the entry got there; a trigger sets it in the transaction that
/// first moves the entry out of `pending` (or marks it ambiguous), whichever code does that,
/// and nothing clears it (no guard trigger on it either: one would make SQLite run the
/// trigger's update in two passes, through an ephemeral table). Before, every append inserted
/// into `effect_stock` or `effect_move` at a random place: one more B-tree leaf written per
/// scan. `effect_lot` stays as it is: the floor reads pending lots' expiry dates through it.
const PULL_INDEXES_AFTER_SEND: &str = r#"
ALTER TABLE journal_effect ADD COLUMN pushed INTEGER NOT NULL DEFAULT 0;
UPDATE journal_effect SET pushed = 1
WHERE seq IN (SELECT seq FROM journal WHERE state != 'pending' OR ambiguous = 1);
DROP INDEX effect_stock;
CREATE INDEX effect_stock ON journal_effect (product_id, location_id, lot_name)
    WHERE live = 1 AND pushed = 1 AND target = 'stock';
DROP INDEX effect_move;
CREATE INDEX effect_move ON journal_effect (move_id)
    WHERE live = 1 AND pushed = 1 AND target = 'move';
CREATE TRIGGER effect_pushed AFTER UPDATE OF state, ambiguous ON journal
WHEN OLD.state = 'pending' AND OLD.ambiguous = 0 AND (NEW.state != 'pending' OR NEW.ambiguous = 1)
BEGIN
    UPDATE journal_effect SET pushed = 1 WHERE seq = NEW.seq AND pushed = 0;
END;
"#;

/// Migration 16: stored answers in a rowid table, found through a unique index on
/// (device, key). As a WITHOUT ROWID table each whole row was a key of its B-tree, the
/// answer's JSON (1–2 KB) included; with 1 KiB pages a row keeps about 230 bytes on its page
/// and the rest on overflow pages, and SQLite reads a key's overflow pages before comparing
/// it, so looking up a new idempotency key read a chain of overflow pages at every step of
/// the search: about 14 page reads per scan, a third of what a scan read (strace of the
/// floor bench at 200 scans/s). The index holds only the two short keys; the row is read only
/// when a request is replayed.
const STORED_ANSWERS_BY_ROWID: &str = r#"
CREATE TABLE device_request_by_rowid (
    device TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status INTEGER NOT NULL,
    response TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (device, key)
);
INSERT INTO device_request_by_rowid (device, key, fingerprint, status, response, created_at)
SELECT device, key, fingerprint, status, response, created_at FROM device_request
ORDER BY created_at;
DROP TABLE device_request;
ALTER TABLE device_request_by_rowid RENAME TO device_request;
CREATE INDEX device_request_age ON device_request (created_at);
"#;

/// Migration 17: the quant index by (product, location, lot) carries the quantities, so the
/// on-hand and reserved sums a scan asks for read the index alone, not each quant's row
/// after it (two page reads a scan fewer; a reader's page cache starts empty after every
/// commit). A pull that changes a quantity rewrites its index entry too.
const QUANT_KEY_COVERS_QUANTITIES: &str = r#"
DROP INDEX quant_key;
CREATE INDEX quant_key ON quant (product_id, location_id, lot_name, quantity, reserved);
"#;

/// Migration 18: the journal's entries counted by state, kept by triggers in the transaction
/// that appends an entry or changes its state, so the queue's figures (status, metrics,
/// telemetry every 2 s, the push loop every second) read a few rows instead of counting the
/// whole journal: `COUNT(*) ... GROUP BY state` walked every entry of `journal_by_state`,
/// history included, 130 ms with 211,000 entries (the floor bench's telemetry runs). The
/// journal refuses deletes (`journal_no_delete`), so inserts and state changes are all there
/// is to count; a migration that rebuilds the journal must create these triggers again.
const JOURNAL_COUNTS: &str = r#"
CREATE TABLE journal_count (
    state TEXT PRIMARY KEY,
    n INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO journal_count (state, n) SELECT state, COUNT(*) FROM journal GROUP BY state;
CREATE TRIGGER journal_count_append AFTER INSERT ON journal
BEGIN
    INSERT INTO journal_count (state, n) VALUES (NEW.state, 1)
        ON CONFLICT (state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER journal_count_state AFTER UPDATE OF state ON journal
WHEN OLD.state != NEW.state
BEGIN
    UPDATE journal_count SET n = n - 1 WHERE state = OLD.state;
    INSERT INTO journal_count (state, n) VALUES (NEW.state, 1)
        ON CONFLICT (state) DO UPDATE SET n = n + 1;
END;
"#;

/// Brings a read-write connection's schema up to [`SCHEMA_VERSION`], all in one transaction.
pub fn migrate(conn: &mut Connection, path: &str) -> Result<i64, StoreError> {
    migrate_with(conn, path, MIGRATIONS)
}

/// [`migrate`] with an explicit migration list (tests use a longer one to exercise upgrades).
pub(super) fn migrate_with(
    conn: &mut Connection,
    path: &str,
    migrations: &[&str],
) -> Result<i64, StoreError> {
    let target = migrations.len() as i64;
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    check_version_against(found, target, path)?;
    if found == target {
        return Ok(found);
    }
    // Table rebuilds (V3) need foreign keys off; the check before commit keeps them honest.
    // The pragma is a no-op inside a transaction, so it is set around it.
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    let result = (|| -> Result<(), StoreError> {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)?;
        for (index, sql) in migrations.iter().enumerate().skip(found as usize) {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", index as i64 + 1)?;
        }
        // A migration may rewrite a definition in place (`writable_schema`, which does not
        // change the schema cookie): bumping it makes every other connection read it again.
        let cookie: i64 = tx.pragma_query_value(None, "schema_version", |r| r.get(0))?;
        tx.pragma_update(None, "schema_version", cookie + 1)?;
        let broken: Option<String> = tx
            .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
            .optional()?;
        if let Some(table) = broken {
            return Err(StoreError::Data(format!(
                "migration left a dangling reference in {table}"
            )));
        }
        tx.commit()?;
        Ok(())
    })();
    conn.pragma_update(None, "foreign_keys", "ON")?;
    result?;
    Ok(target)
}

/// Refuses a database written by a newer build.
pub fn check_version(found: i64, path: &str) -> Result<(), StoreError> {
    check_version_against(found, SCHEMA_VERSION, path)
}

fn check_version_against(found: i64, supported: i64, path: &str) -> Result<(), StoreError> {
    if found > supported {
        return Err(StoreError::TooNew {
            path: path.to_owned(),
            found,
            supported,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn migrated(path: &std::path::Path, migrations: &[&str]) -> Connection {
        let mut conn = Connection::open(path).unwrap();
        migrate_with(&mut conn, "test", migrations).unwrap();
        conn
    }

    /// The database at `path` taken through every migration, and found whole by SQLite.
    fn upgraded(path: &std::path::Path) -> Connection {
        let conn = migrated(path, MIGRATIONS);
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        conn
    }

    /// Whether SQLite compiles `sql` to a program that builds an ephemeral table.
    fn builds_ephemeral_table(conn: &Connection, sql: &str) -> bool {
        let mut stmt = conn.prepare(&format!("EXPLAIN {sql}")).unwrap();
        let mut ops = stmt.query_map([], |r| r.get::<_, String>(1)).unwrap();
        ops.any(|op| op.unwrap() == "OpenEphemeral")
    }

    /// The migrations up to and including `n`: a database as that version left it.
    fn version(n: usize) -> &'static [&'static str] {
        &MIGRATIONS[..n]
    }

    const WRITES: &[&str] = &[
        "INSERT INTO journal (id, site, device, kind, payload_version, payload, causal_key, created_at)
         VALUES ('x', 's', 'd', 'pick', 1, '{}', 'k', 0)",
        "INSERT INTO journal_effect (seq, target, move_id, delta) VALUES (1, 'move', 7, 1.0)",
        "UPDATE journal SET state = 'applied' WHERE seq = 1",
        "UPDATE session SET state = 'done' WHERE id = 'x'",
    ];

    #[test]
    fn no_check_lists_three_or_more_values_with_in() {
        let dir = tempfile::tempdir().unwrap();
        let conn = migrated(&dir.path().join("db"), MIGRATIONS);
        let mut stmt = conn
            .prepare("SELECT name, sql FROM sqlite_schema WHERE type = 'table'")
            .unwrap();
        let tables = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .unwrap();
        for (name, sql) in tables.map(Result::unwrap) {
            for list in sql.split(" IN (").skip(1) {
                let list = &list[..list.find(')').unwrap_or(list.len())];
                assert!(
                    list.matches(',').count() < 2,
                    "{name}: a CHECK lists values with IN ({list}): write it as comparisons \
                     joined by OR (see CHECKS_AS_COMPARISONS)"
                );
            }
        }
        for sql in WRITES {
            assert!(
                !builds_ephemeral_table(&conn, sql),
                "{sql} builds an ephemeral table"
            );
        }
    }

    #[test]
    fn rewritten_checks_keep_the_rows_and_refuse_what_they_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let before = version(13);
        let old = migrated(&path, before);
        old.execute_batch(WRITES[0]).unwrap();
        old.execute_batch(WRITES[1]).unwrap();
        // Another process's connection, its schema read before the upgrade.
        assert!(builds_ephemeral_table(&old, WRITES[1]));

        let new = upgraded(&path);
        let effects: i64 = new
            .query_row(
                "SELECT COUNT(*) FROM journal_effect WHERE move_id = 7",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(effects, 1);
        for (attempt, conn) in [&new, &old].into_iter().enumerate() {
            // Both read the new definitions (the other one when its next statement runs and
            // finds the schema cookie changed)...
            let _: i64 = conn
                .query_row("SELECT COUNT(*) FROM journal", [], |r| r.get(0))
                .unwrap();
            assert!(!builds_ephemeral_table(conn, WRITES[1]));
            // ...which refuse what the old ones refused, and allow what they allowed.
            let bad = conn
                .execute(
                    "INSERT INTO journal_effect (seq, target) VALUES (1, 'bin')",
                    [],
                )
                .unwrap_err();
            assert!(bad.to_string().contains("CHECK constraint failed"), "{bad}");
            let bad = conn
                .execute("UPDATE journal SET state = 'done' WHERE seq = 1", [])
                .unwrap_err();
            assert!(bad.to_string().contains("CHECK constraint failed"), "{bad}");
            conn.execute("UPDATE journal SET state = 'in_flight' WHERE seq = 1", [])
                .unwrap();
            conn.execute(
                "INSERT INTO push_attempt (seq, attempt, started_at, outcome) VALUES (1, ?1, 0, NULL)",
                [attempt as i64],
            )
            .unwrap();
        }
    }

    #[test]
    fn stored_answers_survive_the_move_to_a_rowid_table_and_a_lookup_reads_only_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let old = migrated(&path, version(15));
        let answer = "{\"entries\":[]}".repeat(100);
        old.execute(
            "INSERT INTO device_request (device, key, fingerprint, status, response, created_at)
             VALUES ('d', 'k1', 'f', 200, ?1, 5)",
            [&answer],
        )
        .unwrap();
        drop(old);

        let conn = upgraded(&path);
        let kept: (String, i64, String) = conn
            .query_row(
                "SELECT fingerprint, status, response FROM device_request
                 WHERE device = 'd' AND key = 'k1'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(kept, ("f".into(), 200, answer.clone()));
        // A key is still answered once: the second insert of the same key does nothing.
        let insert =
            "INSERT INTO device_request (device, key, fingerprint, status, response, created_at)
                      VALUES ('d', 'k1', 'g', 409, '{}', 6) ON CONFLICT DO NOTHING";
        assert_eq!(conn.execute(insert, []).unwrap(), 0);
        // A lookup searches the index of the two keys, never the rows themselves.
        let plan: String = conn
            .query_row(
                "EXPLAIN QUERY PLAN SELECT fingerprint, status, response FROM device_request
                 WHERE device = ?1 AND key = ?2",
                ["d", "k2"],
                |r| r.get(3),
            )
            .unwrap();
        assert!(
            plan.contains("USING INDEX sqlite_autoindex_device_request"),
            "{plan}"
        );
        let rows: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM device_request WHERE created_at < 6",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(rows, 1);
    }

    #[test]
    fn the_floors_quant_sums_read_the_index_alone() {
        let dir = tempfile::tempdir().unwrap();
        let conn = migrated(&dir.path().join("db"), MIGRATIONS);
        for sql in [
            "SELECT SUM(quantity) FROM quant WHERE product_id = 1 AND location_id = 2 AND lot_name = ''",
            "SELECT SUM(reserved) FROM quant WHERE product_id = 1 AND location_id = 2 AND lot_name = ''",
        ] {
            let plan: String = conn
                .query_row(&format!("EXPLAIN QUERY PLAN {sql}"), [], |r| r.get(3))
                .unwrap();
            assert!(plan.contains("COVERING INDEX quant_key"), "{sql}: {plan}");
        }
    }

    /// Whether the pull's index on moves holds the effect of entry `seq`.
    fn in_pull_index(conn: &Connection, seq: i64) -> bool {
        conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM journal_effect INDEXED BY effect_move
             WHERE live = 1 AND pushed = 1 AND target = 'move' AND move_id = 7 AND seq = ?1)",
            [seq],
            |r| r.get(0),
        )
        .unwrap()
    }

    #[test]
    fn an_effect_enters_the_pulls_index_when_its_entry_leaves_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let old = migrated(&path, version(14));
        // Four entries as version 14 left them: pending, in flight, pending with an unknown
        // outcome, applied.
        for (seq, state, ambiguous) in [
            (1, "pending", 0),
            (2, "in_flight", 0),
            (3, "pending", 1),
            (4, "applied", 0),
        ] {
            old.execute(
                "INSERT INTO journal (seq, id, site, device, kind, payload_version, payload,
                     causal_key, created_at, state, ambiguous)
                 VALUES (?1, ?1, 's', 'd', 'pick', 1, '{}', 'k', 0, ?2, ?3)",
                rusqlite::params![seq, state, ambiguous],
            )
            .unwrap();
            old.execute(
                "INSERT INTO journal_effect (seq, target, move_id, delta) VALUES (?1, 'move', 7, 1.0)",
                [seq],
            )
            .unwrap();
        }
        drop(old);

        let conn = upgraded(&path);
        let indexed: Vec<bool> = (1..=4).map(|seq| in_pull_index(&conn, seq)).collect();
        assert_eq!(indexed, [false, true, true, true]);

        // A new entry is appended outside the index and enters it with its first send.
        conn.execute_batch(WRITES[0]).unwrap();
        conn.execute(
            "INSERT INTO journal_effect (seq, target, move_id, delta) VALUES (5, 'move', 7, 1.0)",
            [],
        )
        .unwrap();
        assert!(!in_pull_index(&conn, 5));
        conn.execute("UPDATE journal SET state = 'in_flight' WHERE seq = 5", [])
            .unwrap();
        assert!(in_pull_index(&conn, 5));
        // Back to pending after a failed attempt: still counted as sent.
        conn.execute("UPDATE journal SET state = 'pending' WHERE seq = 5", [])
            .unwrap();
        assert!(in_pull_index(&conn, 5));
        // Marking the first entry ambiguous (an attempt whose outcome is unknown) does too.
        conn.execute("UPDATE journal SET ambiguous = 1 WHERE seq = 1", [])
            .unwrap();
        assert!(in_pull_index(&conn, 1));
        // Folding takes an effect out of the index and its quantity out of the total.
        conn.execute("UPDATE journal_effect SET live = 0 WHERE seq = 4", [])
            .unwrap();
        assert!(!in_pull_index(&conn, 4));
        let total: f64 = conn
            .query_row("SELECT total FROM move_total WHERE move_id = 7", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(total, 4.0);
    }

    #[test]
    fn the_counts_by_state_start_from_the_journal_and_follow_every_append_and_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let old = migrated(&path, version(17));
        for (seq, state) in [
            (1, "applied"),
            (2, "applied"),
            (3, "conflict"),
            (4, "pending"),
        ] {
            old.execute(
                "INSERT INTO journal (seq, id, site, device, kind, payload_version, payload,
                     causal_key, created_at, state)
                 VALUES (?1, ?1, 's', 'd', 'pick', 1, '{}', 'k', 0, ?2)",
                rusqlite::params![seq, state],
            )
            .unwrap();
        }
        drop(old);

        let conn = upgraded(&path);
        let counts = |conn: &Connection| -> Vec<(String, i64)> {
            let mut stmt = conn
                .prepare("SELECT state, n FROM journal_count WHERE n != 0 ORDER BY state")
                .unwrap();
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        let expect = |pairs: &[(&str, i64)]| -> Vec<(String, i64)> {
            pairs.iter().map(|(s, n)| (s.to_string(), *n)).collect()
        };
        assert_eq!(
            counts(&conn),
            expect(&[("applied", 2), ("conflict", 1), ("pending", 1)])
        );
        conn.execute_batch(WRITES[0]).unwrap();
        conn.execute("UPDATE journal SET state = 'in_flight' WHERE seq = 4", [])
            .unwrap();
        // Writing the same state again changes no count.
        conn.execute("UPDATE journal SET state = 'applied' WHERE seq <= 2", [])
            .unwrap();
        conn.execute("UPDATE journal SET state = 'resolved' WHERE seq = 3", [])
            .unwrap();
        assert_eq!(
            counts(&conn),
            expect(&[
                ("applied", 2),
                ("in_flight", 1),
                ("pending", 1),
                ("resolved", 1)
            ])
        );
        // An append's insert builds no temporary table for the count.
        assert!(!builds_ephemeral_table(&conn, WRITES[0]));
    }
}
