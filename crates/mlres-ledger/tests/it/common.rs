//! Shared helpers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use mlres_ledger::{Ledger, ReserveRequest, Usage};
use tempfile::TempDir;

/// A temp dir on tmpfs when available: these tests are about logic, not durability, and
/// every commit fsyncs several times.
pub fn tmp_dir() -> TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(t) = TempDir::new_in(shm)
    {
        return t;
    }
    TempDir::new().unwrap()
}

/// A fresh ledger in a temp dir (the state dir is a subdirectory that `open` creates).
pub fn fresh() -> (TempDir, Ledger) {
    let tmp = tmp_dir();
    let ledger = Ledger::open(&tmp.path().join("state")).unwrap();
    (tmp, ledger)
}

/// Installs a deterministic clock that advances 1000 ms per read; returns its counter.
pub fn fake_clock(ledger: &mut Ledger) -> Arc<AtomicU64> {
    let t = Arc::new(AtomicU64::new(1_700_000_000_000));
    let c = Arc::clone(&t);
    ledger.set_clock(move || c.fetch_add(1000, Ordering::SeqCst));
    t
}

pub fn req(proposal_index: Option<u64>) -> ReserveRequest {
    ReserveRequest {
        hypothesis: "lower lr helps".into(),
        config: serde_json::json!({"lr": 0.001, "layers": 2}),
        source: "loop".into(),
        proposal_index,
        backend: "local".into(),
        flavor: "cpu".into(),
        timeout_secs: 100,
        cost_micro: 5_000,
        code_sha256: None,
    }
}

pub fn allow(_: &Usage) -> Result<(), (String, String)> {
    Ok(())
}

/// A raw connection, as an attacker would use (no foreign-key enforcement).
pub fn raw(ledger: &Ledger) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(ledger.db_path()).unwrap();
    c.pragma_update(None, "foreign_keys", false).unwrap();
    c.busy_timeout(std::time::Duration::from_secs(30)).unwrap();
    c
}

pub fn kinds(ledger: &Ledger) -> Vec<String> {
    ledger
        .events(None, 0, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}
