//! `mlres-ledger` is the tamper-evident, transactional ledger of mlres: the only crate that
//! knows SQL. It keeps campaigns, human approvals and experiments in one SQLite database in the
//! mlres state directory, and every mutation appends, in the same `BEGIN IMMEDIATE`
//! transaction, at least one event to a SHA-256 hash chain whose links are MAC'd with a
//! secret key (`ledger.key`) and whose head is mirrored to `ledger.head`, so that editing,
//! deleting, reordering, truncating or forging events is detected by [`Ledger::verify`].
//! It must not know about other mlres crates, envelopes, policies or backends: budget
//! decisions are passed in as closures (see [`Ledger::reserve`]) and times come from a clock
//! the caller may replace ([`Ledger::set_clock`]).
//!
//! # Files in the state directory
//! - `ledger.sqlite3`: WAL mode, `busy_timeout` 30 s, foreign keys on, `synchronous=FULL`.
//!   FULL (rather than NORMAL) because in WAL mode NORMAL may lose the last commits on power
//!   loss; a lost reservation would mean a job ran that the ledger does not know about, and
//!   the already-fsynced head file would then be ahead of the database (a false truncation
//!   alarm). The cost is one extra fsync per commit, negligible next to a training job.
//! - `ledger.key`: 32 random bytes, mode 0600, created once with `O_EXCL` and published with
//!   `link(2)` so that concurrent first opens never see a partial key.
//! - `ledger.head`: JSON `{seq, hash, count, mac}` of the chain head, replaced atomically
//!   (temp + fsync + rename) after each commit. It only ever moves forward, and it is written
//!   after the commit, so after a crash it may lag the database by the last transaction but
//!   is never ahead of it; `verify` therefore requires it to be a MAC'd checkpoint *on* the
//!   chain (at or before the head), which is what catches a truncated tail even when the
//!   attacker also rolls back the `meta` row to a saved copy.
//! - `ledger.lock`: an advisory lock serialising first-time initialisation and head-file
//!   updates between processes.
//!
//! # Tamper evidence
//! Event hash: see [`event_hash`]. Event MAC: HMAC-SHA256(key, domain tag || hash). The
//! `meta` row holds the head, MAC'd. Every mutation first checks the head (meta MAC, last
//! event, head file) and refuses with [`LedgerError::Tampered`] rather than build on a
//! tampered tail. All MAC inputs are domain-separated, so [`Ledger::mac_hex`] (for callers)
//! cannot produce an internal MAC.
//!
//! # Non-finite floats
//! SQLite `REAL` holds ±infinity but turns NaN into NULL. `metric` and `best_so_far` are
//! stored as `REAL` plus a `*_nan` flag column, so NaN, +inf and -inf round-trip. In event
//! payloads non-finite numbers are written as the strings `"NaN"`, `"inf"`, `"-inf"`.
//! Serialising an [`Experiment`] with serde_json writes non-finite metrics as `null`.

#![warn(missing_docs)]

mod approver;
mod crypto;
mod domain;
mod error;
mod files;
mod integrity;
mod keep;
mod remote;
mod replay;
mod schema;
mod types;
mod verify;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

pub use crypto::{GENESIS_HASH, KEY_LEN, event_hash};
pub use domain::Opened;
pub use error::LedgerError;
pub use keep::RungValue;
pub use remote::{HubPush, RemoteJob};
pub use schema::SCHEMA_VERSION;
pub use types::{
    Approval, ApprovalPins, Campaign, DECISIONS, EvalRecord, Event, Experiment, FINISH_STATUSES,
    FinishRecord, Problem, ProblemKind, ReserveRequest, SOURCES, Usage, VerifyReport, state,
};

use crypto::TAG_EVENT_MAC;
use files::{DB_FILE, DirLock, Head};

/// How long a connection waits for another process's write transaction.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Milliseconds since the Unix epoch from the system clock.
pub fn system_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A handle on the ledger in one state directory. Each process (or thread) opens its own;
/// they coordinate through SQLite locking: every mutation is one `BEGIN IMMEDIATE`
/// transaction (waiting up to [`BUSY_TIMEOUT`] for other writers), reads see a consistent
/// snapshot and never block writers (WAL). `Send`, not `Sync`.
///
/// Mutations first check the chain head (meta row MAC, last event, head file) and fail with
/// [`LedgerError::Tampered`] instead of building on a tampered tail; a state directory whose
/// database was deleted while its head file was kept is therefore refused too.
pub struct Ledger {
    conn: Connection,
    /// (device, inode) of the database and key files when opened, to notice a state directory
    /// that was deleted, moved or replaced underneath a long-running process.
    identity: Option<[(u64, u64); 2]>,
    key: [u8; KEY_LEN],
    dir: PathBuf,
    clock: Box<dyn Fn() -> u64 + Send>,
    head_file_error: Option<String>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Ledger {
    /// Opens (creating if needed) the ledger in `state_dir`: the directory (mode 0700), the key,
    /// the schema and the head file.
    pub fn open(state_dir: &Path) -> Result<Ledger, LedgerError> {
        files::ensure_dir(state_dir)?;
        let _lock = DirLock::acquire(state_dir)?;
        let key = files::load_or_create_key(state_dir)?;
        let mut conn = Connection::open(state_dir.join(DB_FILE))?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(LedgerError::Invalid(format!(
                "could not switch the database to WAL mode (journal_mode={mode})"
            )));
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        schema::init(&mut conn, &key)?;
        // A fresh ledger gets its head file here. If the file is missing while the chain is
        // not empty it is NOT recreated: that is evidence `verify` reports.
        if let Ok(None) = files::read_head_file(state_dir)
            && let Some(meta) = read_meta(&conn)?
            && meta.seq == 0
            && meta.mac_ok(&key)
        {
            files::write_head_file(state_dir, &meta)?;
        }
        let identity = file_identity(state_dir);
        Ok(Ledger {
            conn,
            identity,
            key,
            dir: state_dir.to_path_buf(),
            clock: Box::new(system_now_ms),
            head_file_error: None,
        })
    }

    /// A stable public identifier of this ledger (derived from its key, so it cannot be
    /// claimed by another ledger): front ends record it next to their exports to notice when a
    /// project's history was written by a ledger that is no longer the one in use.
    pub fn ledger_id(&self) -> String {
        crypto::mac_hex(&self.key, b"mlres-ledger/ledger-id/v1\0", b"")[..16].to_string()
    }

    /// Fails with [`LedgerError::StateGone`] when the state directory's database or key file is
    /// no longer the one this handle opened (deleted, moved or replaced). Long-running callers
    /// check it between steps, so they stop with a clear error instead of writing to a ghost.
    pub fn check_present(&self) -> Result<(), LedgerError> {
        let now = file_identity(&self.dir);
        if now.is_some() && now == self.identity {
            return Ok(());
        }
        let what = if !self.dir.exists() {
            "it was deleted or moved"
        } else if now.is_none() {
            "its ledger files were deleted"
        } else {
            "its ledger files were replaced"
        };
        Err(LedgerError::StateGone(format!(
            "{} ({what}); stop here, and restore it or ask a human",
            self.dir.display()
        )))
    }

    /// Replaces the clock used for event timestamps and `*_ms` columns (milliseconds since the
    /// epoch). For deterministic tests; defaults to [`system_now_ms`].
    pub fn set_clock(&mut self, clock: impl Fn() -> u64 + Send + 'static) {
        self.clock = Box::new(clock);
    }

    /// Path of `ledger.sqlite3`.
    pub fn db_path(&self) -> PathBuf {
        self.dir.join(DB_FILE)
    }

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        &self.dir
    }

    /// Hex HMAC-SHA256 of `data` with the ledger key (domain-separated from the ledger's own
    /// MACs), for callers that pin documents.
    pub fn mac_hex(&self, data: &[u8]) -> String {
        crypto::mac_hex(&self.key, crypto::TAG_CALLER_MAC, data)
    }

    /// Constant-time check of a MAC produced by [`Ledger::mac_hex`].
    pub fn mac_matches(&self, data: &[u8], mac_hex: &str) -> bool {
        crypto::mac_ok(&self.key, crypto::TAG_CALLER_MAC, data, mac_hex.as_bytes())
    }

    /// The error of the last failed head-file update, if the last mutation could not write
    /// `ledger.head` after committing (the commit stands; the next mutation retries).
    pub fn head_file_error(&self) -> Option<&str> {
        self.head_file_error.as_deref()
    }

    /// Appends a generic audit event (e.g. `loop_started`) and returns its seq.
    pub fn append_event(
        &mut self,
        campaign: Option<&str>,
        kind: &str,
        payload: &serde_json::Value,
    ) -> Result<u64, LedgerError> {
        if kind.is_empty() {
            return Err(LedgerError::Invalid("event kind must not be empty".into()));
        }
        self.write(|w| {
            if let Some(c) = campaign {
                domain::write_campaign(w, c)?;
            }
            Ok(Ok(w.append(campaign, kind, payload)?))
        })
    }

    /// The payload of the newest event of `kind` (a ledger-wide event), if any.
    pub(crate) fn latest_event_of_kind(
        &self,
        kind: &str,
    ) -> Result<Option<serde_json::Value>, LedgerError> {
        let payload: Option<String> = self
            .conn
            .query_row(
                "SELECT payload FROM events WHERE kind = ?1 ORDER BY seq DESC LIMIT 1",
                [kind],
                |r| r.get(0),
            )
            .optional()?;
        payload
            .map(|p| serde_json::from_str(&p).map_err(LedgerError::from))
            .transpose()
    }

    /// Events with `seq > after_seq`, oldest first, at most `limit`; only those of `campaign`
    /// when given.
    pub fn events(
        &self,
        campaign: Option<&str>,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<Event>, LedgerError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let after = i64::try_from(after_seq).unwrap_or(i64::MAX);
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, ts_ms, campaign, kind, payload, hash FROM events
             WHERE seq > ?1 AND (?2 IS NULL OR campaign = ?2) ORDER BY seq LIMIT ?3",
        )?;
        let rows = stmt.query_map((after, campaign, limit), |r| {
            Ok((
                r.get::<_, u64>(0)?,
                r.get::<_, u64>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, ts_ms, campaign, kind, payload, hash) = row?;
            out.push(Event {
                seq,
                ts_ms,
                campaign,
                kind,
                payload: serde_json::from_str(&payload)?,
                hash,
            });
        }
        Ok(out)
    }

    /// Number of event rows.
    pub fn event_count(&self) -> Result<u64, LedgerError> {
        Ok(self
            .conn
            .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?)
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction after checking the chain head.
    /// `Err` from `f` rolls back; `Ok(inner)` commits (including any events `f` appended) and
    /// then returns `inner`, which may itself be an error (e.g. a recorded refusal).
    fn write<T>(
        &mut self,
        f: impl FnOnce(&mut Writer<'_>) -> Result<Result<T, LedgerError>, LedgerError>,
    ) -> Result<T, LedgerError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Read the clock once the write lock is held, so timestamps follow commit order.
        let now = (self.clock)();
        let head = checked_head(&tx, &self.key, &self.dir)?;
        let mut w = Writer {
            conn: &tx,
            key: &self.key,
            head,
            now,
            appended: false,
            touched: integrity::Touched::default(),
        };
        let out = f(&mut w)?;
        // Every mutation appends an event: without one nothing changed, and re-sealing would
        // only cost a commit.
        if w.appended {
            w.seal_touched()?;
        }
        let (head, appended) = (w.head, w.appended);
        if appended {
            tx.execute(
                "UPDATE meta SET head_seq = ?1, head_hash = ?2, head_count = ?3, mac = ?4
                 WHERE id = 1",
                (head.seq, &head.hash, head.count, &head.mac),
            )?;
        }
        tx.commit()?;
        if appended {
            // The commit stands even if the mirror cannot be written; the head file may then
            // lag, which verify tolerates, and the next mutation moves it forward.
            self.head_file_error = files::publish_head(&self.dir, &head)
                .err()
                .map(|e| e.to_string());
        }
        out
    }
}

/// State of one write transaction.
pub(crate) struct Writer<'a> {
    pub(crate) conn: &'a Connection,
    key: &'a [u8; KEY_LEN],
    head: Head,
    pub(crate) now: u64,
    appended: bool,
    touched: integrity::Touched,
}

impl Writer<'_> {
    /// The ledger key.
    pub(crate) fn key(&self) -> &[u8; KEY_LEN] {
        self.key
    }

    /// Appends one event to the chain inside the transaction.
    pub(crate) fn append(
        &mut self,
        campaign: Option<&str>,
        kind: &str,
        payload: &serde_json::Value,
    ) -> Result<u64, LedgerError> {
        // An event moves its campaign's sealed span: check the seal first, so that re-sealing
        // at commit never launders an edit made outside mlres.
        if let Some(c) = campaign
            && !self.check_campaign(c)?
        {
            return Err(LedgerError::NotFound(format!("campaign {c}")));
        }
        let seq = self.head.seq + 1;
        let payload = canonical_json(payload)?;
        let hash = event_hash(seq, self.now, campaign, kind, &payload, &self.head.hash);
        let mac = crypto::mac_hex(self.key, TAG_EVENT_MAC, hash.as_bytes());
        self.conn.execute(
            "INSERT INTO events (seq, ts_ms, campaign, kind, payload, prev_hash, hash, mac)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            (
                seq,
                self.now,
                campaign,
                kind,
                &payload,
                &self.head.hash,
                &hash,
                &mac,
            ),
        )?;
        self.head = Head::new(self.key, seq, hash, self.head.count + 1);
        self.appended = true;
        Ok(seq)
    }
}

fn file_identity(dir: &Path) -> Option<[(u64, u64); 2]> {
    use std::os::unix::fs::MetadataExt;
    let id = |name: &str| {
        std::fs::metadata(dir.join(name))
            .ok()
            .map(|m| (m.dev(), m.ino()))
    };
    Some([id(DB_FILE)?, id(files::KEY_FILE)?])
}

/// Serialises `v` with object keys sorted recursively (stable, canonical text).
pub(crate) fn canonical_json(v: &serde_json::Value) -> Result<String, LedgerError> {
    fn sort(v: &serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(m) => {
                let mut entries: Vec<_> = m.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                serde_json::Value::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.clone(), sort(v)))
                        .collect(),
                )
            }
            serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(sort).collect()),
            other => other.clone(),
        }
    }
    Ok(serde_json::to_string(&sort(v))?)
}

/// Reads the `meta` head row.
pub(crate) fn read_meta(conn: &Connection) -> Result<Option<Head>, LedgerError> {
    Ok(conn
        .query_row(
            "SELECT head_seq, head_hash, head_count, mac FROM meta WHERE id = 1",
            [],
            |r| {
                Ok(Head {
                    seq: r.get(0)?,
                    hash: r.get(1)?,
                    count: r.get(2)?,
                    mac: r.get(3)?,
                })
            },
        )
        .optional()?)
}

/// The head to build on, after checking that the meta row is authentic, matches the last
/// event, and that the head file is an authentic checkpoint on the chain at or before it.
fn checked_head(conn: &Connection, key: &[u8; KEY_LEN], dir: &Path) -> Result<Head, LedgerError> {
    let head = read_meta(conn)?
        .ok_or_else(|| LedgerError::Tampered("the meta head row is missing".into()))?;
    if !head.mac_ok(key) {
        return Err(LedgerError::Tampered(
            "the meta head row's MAC does not verify (edited, or wrong key)".into(),
        ));
    }
    let last: Option<(u64, String)> = conn
        .query_row(
            "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let (last_seq, last_hash) = last.unwrap_or((0, GENESIS_HASH.to_string()));
    if last_seq != head.seq || last_hash != head.hash {
        return Err(LedgerError::Tampered(format!(
            "the chain ends at seq {last_seq} but the head row says seq {}",
            head.seq
        )));
    }
    match files::read_head_file(dir) {
        Err(reason) => return Err(LedgerError::Tampered(reason)),
        Ok(None) if head.seq != 0 => {
            return Err(LedgerError::Tampered("the head file is missing".into()));
        }
        Ok(None) => {}
        Ok(Some(file)) => {
            if !file.mac_ok(key) {
                return Err(LedgerError::Tampered(
                    "the head file's MAC does not verify".into(),
                ));
            }
            if file.seq > head.seq {
                return Err(LedgerError::Tampered(format!(
                    "the head file is at seq {} but the chain ends at seq {}: events were removed",
                    file.seq, head.seq
                )));
            }
            let at: Option<String> = if file.seq == 0 {
                Some(GENESIS_HASH.to_string())
            } else {
                conn.query_row("SELECT hash FROM events WHERE seq = ?1", [file.seq], |r| {
                    r.get(0)
                })
                .optional()?
            };
            if at.as_deref() != Some(file.hash.as_str()) {
                return Err(LedgerError::Tampered(format!(
                    "the head file's checkpoint at seq {} is not on the chain",
                    file.seq
                )));
            }
        }
    }
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_recursively() {
        let v = serde_json::json!({"b": 1, "a": {"d": [ {"z": 1, "y": 2} ], "c": null}});
        assert_eq!(
            canonical_json(&v).unwrap(),
            r#"{"a":{"c":null,"d":[{"y":2,"z":1}]},"b":1}"#
        );
    }
}
