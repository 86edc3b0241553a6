//! The SQL schema, versioned with `PRAGMA user_version`.

use rusqlite::{Connection, TransactionBehavior};

use crate::LedgerError;
use crate::crypto::KEY_LEN;
use crate::files::Head;

/// Schema version written by this build.
pub const SCHEMA_VERSION: i64 = 2;

const SCHEMA_V1: &str = r#"
CREATE TABLE meta (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    head_seq    INTEGER NOT NULL,
    head_hash   TEXT NOT NULL,
    head_count  INTEGER NOT NULL,
    mac         TEXT NOT NULL
) STRICT;

CREATE TABLE campaigns (
    id              TEXT PRIMARY KEY,
    project_root    TEXT NOT NULL,
    program_hash    TEXT NOT NULL,
    created_ms      INTEGER NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('active', 'finished', 'stopped')),
    stop_requested  INTEGER NOT NULL DEFAULT 0,
    stop_reason     TEXT,
    generation      INTEGER NOT NULL,
    UNIQUE (project_root, generation)
) STRICT;

CREATE TABLE events (
    seq         INTEGER PRIMARY KEY,
    ts_ms       INTEGER NOT NULL,
    campaign    TEXT REFERENCES campaigns(id),
    kind        TEXT NOT NULL,
    payload     TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL,
    mac         TEXT NOT NULL
) STRICT;
CREATE INDEX events_by_campaign ON events (campaign, seq);
CREATE INDEX events_by_kind ON events (kind, seq);

CREATE TABLE approvals (
    id            INTEGER PRIMARY KEY,
    project_root  TEXT NOT NULL,
    hash          TEXT NOT NULL,
    mac           TEXT NOT NULL,
    document      TEXT NOT NULL,
    approver      TEXT NOT NULL,
    created_ms    INTEGER NOT NULL
) STRICT;
CREATE INDEX approvals_by_root ON approvals (project_root, id);

CREATE TABLE experiments (
    id                   INTEGER PRIMARY KEY,
    campaign             TEXT NOT NULL REFERENCES campaigns(id),
    iter                 INTEGER NOT NULL,
    state                TEXT NOT NULL
        CHECK (state IN ('reserved', 'submitted', 'finished', 'evaluated', 'released')),
    hypothesis           TEXT NOT NULL,
    config               TEXT NOT NULL,
    source               TEXT NOT NULL,
    proposal_index       INTEGER,
    backend              TEXT NOT NULL,
    flavor               TEXT NOT NULL,
    timeout_secs         INTEGER NOT NULL,
    reserved_cost_micro  INTEGER NOT NULL,
    attempt              INTEGER NOT NULL DEFAULT 0,
    handle               TEXT,
    status               TEXT,
    exit_code            INTEGER,
    duration_ms          INTEGER,
    spent_walltime_secs  INTEGER,
    spent_cost_micro     INTEGER,
    metric               REAL,
    metric_nan           INTEGER NOT NULL DEFAULT 0,
    metrics              TEXT,
    decision             TEXT,
    decision_reason      TEXT,
    best_so_far          REAL,
    best_so_far_nan      INTEGER NOT NULL DEFAULT 0,
    error                TEXT,
    created_ms           INTEGER NOT NULL,
    submitted_ms         INTEGER,
    finished_ms          INTEGER,
    evaluated_ms         INTEGER,
    UNIQUE (campaign, iter),
    UNIQUE (campaign, proposal_index)
) STRICT;
CREATE INDEX experiments_by_state ON experiments (campaign, state);
"#;

/// Version 2 seals the tables the budget reads (see `integrity.rs`) and ties each campaign to
/// the approval that opened it (one campaign per approval, enforced by a unique index).
const MIGRATE_V2: &str = r#"
ALTER TABLE campaigns ADD COLUMN approval_id INTEGER;
ALTER TABLE campaigns ADD COLUMN tally TEXT NOT NULL DEFAULT '';
ALTER TABLE campaigns ADD COLUMN last_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE campaigns ADD COLUMN events INTEGER NOT NULL DEFAULT 0;
ALTER TABLE campaigns ADD COLUMN mac TEXT NOT NULL DEFAULT '';
ALTER TABLE experiments ADD COLUMN mac TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX campaigns_by_approval ON campaigns (approval_id);
CREATE INDEX experiments_by_decision ON experiments (campaign, decision);
"#;

/// Creates or checks the schema. Runs in one IMMEDIATE transaction so that concurrent first
/// opens cannot both create it.
pub(crate) fn init(conn: &mut Connection, key: &[u8; KEY_LEN]) -> Result<(), LedgerError> {
    // Fast path: an initialised database needs no write lock.
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    match version {
        0 => {
            tx.execute_batch(SCHEMA_V1)?;
            let g = Head::genesis(key);
            tx.execute(
                "INSERT INTO meta (id, head_seq, head_hash, head_count, mac) VALUES (1, 0, ?1, 0, ?2)",
                (&g.hash, &g.mac),
            )?;
            tx.execute_batch(MIGRATE_V2)?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        }
        1 => {
            // Rows written by version 1 are sealed as they stand; `verify` replays the chain
            // against them, so an edit made before the upgrade is still reported.
            tx.execute_batch(MIGRATE_V2)?;
            crate::integrity::seal_all(&tx, key)?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        }
        SCHEMA_VERSION => {}
        found => {
            return Err(LedgerError::SchemaVersion {
                found,
                supported: SCHEMA_VERSION,
            });
        }
    }
    tx.commit()?;
    Ok(())
}
