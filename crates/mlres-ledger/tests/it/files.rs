//! The key file, the state directory and the head file.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use mlres_ledger::{Ledger, LedgerError, ProblemKind};

use crate::common::{allow, fresh, req};

fn mode(p: &std::path::Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn key_and_dir_are_created_private() {
    let (t, l) = fresh();
    let dir = t.path().join("state");
    assert_eq!(mode(&dir), 0o700);
    let key = dir.join("ledger.key");
    assert_eq!(mode(&key), 0o600);
    assert_eq!(fs::read(&key).unwrap().len(), 32);
    assert!(dir.join("ledger.head").exists());
    assert_eq!(l.db_path(), dir.join("ledger.sqlite3"));
    // Two ledgers never share a key.
    let (_t2, l2) = fresh();
    assert_ne!(l.mac_hex(b"x"), l2.mac_hex(b"x"));
}

#[test]
fn mac_hex_is_keyed_and_stable_across_reopen() {
    let (t, l) = fresh();
    let m = l.mac_hex(b"document");
    assert_eq!(m.len(), 64);
    assert!(m.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(m, l.mac_hex(b"document2"));
    assert!(l.mac_matches(b"document", &m));
    assert!(!l.mac_matches(b"documenT", &m));
    drop(l);
    let l = Ledger::open(&t.path().join("state")).unwrap();
    assert_eq!(l.mac_hex(b"document"), m);
}

#[test]
fn group_readable_key_is_refused() {
    let (t, l) = fresh();
    drop(l);
    let dir = t.path().join("state");
    let key = dir.join("ledger.key");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    match Ledger::open(&dir) {
        Err(LedgerError::KeyFile { path, reason }) => {
            assert_eq!(path, key);
            assert!(reason.contains("644"), "{reason}");
        }
        other => panic!("expected KeyFile, got {other:?}"),
    }
    fs::set_permissions(&key, fs::Permissions::from_mode(0o640)).unwrap();
    assert!(matches!(
        Ledger::open(&dir),
        Err(LedgerError::KeyFile { .. })
    ));
    fs::set_permissions(&key, fs::Permissions::from_mode(0o400)).unwrap();
    Ledger::open(&dir).unwrap();
}

#[test]
fn key_of_wrong_length_is_refused() {
    for len in [0usize, 16, 33] {
        let (t, l) = fresh();
        drop(l);
        let dir = t.path().join("state");
        fs::write(dir.join("ledger.key"), vec![1u8; len]).unwrap();
        match Ledger::open(&dir) {
            Err(LedgerError::KeyFile { reason, .. }) => {
                assert!(reason.contains(&len.to_string()), "{reason}");
            }
            other => panic!("len {len}: expected KeyFile, got {other:?}"),
        }
    }
}

#[test]
fn key_that_is_a_directory_is_refused() {
    let tmp = tempfile::TempDir::new().unwrap();
    let dir = tmp.path().join("state");
    fs::create_dir_all(dir.join("ledger.key")).unwrap();
    fs::set_permissions(dir.join("ledger.key"), fs::Permissions::from_mode(0o700)).unwrap();
    assert!(matches!(
        Ledger::open(&dir),
        Err(LedgerError::KeyFile { .. })
    ));
}

#[test]
fn wrong_key_makes_verify_report_bad_mac_and_writes_refuse() {
    let (t, mut l) = fresh();
    let c = l.create_campaign("/p", "ph").unwrap();
    l.reserve(&c.id, &req(None), allow).unwrap();
    drop(l);
    let dir = t.path().join("state");
    let key = dir.join("ledger.key");
    fs::write(&key, [0x5au8; 32]).unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    let mut l = Ledger::open(&dir).unwrap();
    let r = l.verify().unwrap();
    assert!(!r.is_ok());
    let bad: Vec<_> = r
        .problems
        .iter()
        .filter(|p| p.kind == ProblemKind::BadMac)
        .collect();
    // Both events, the meta row, the head file, the campaign's and the experiment's rows.
    assert_eq!(bad.len(), 6, "{r:?}");
    assert!(!r.has(ProblemKind::Edited));
    assert!(matches!(
        l.append_event(None, "x", &serde_json::json!({})),
        Err(LedgerError::Tampered(_))
    ));
    assert_eq!(l.event_count().unwrap(), 2);
}

#[test]
fn lagging_head_file_is_tolerated_and_caught_up() {
    // A crash between a commit and the head-file update leaves the file one step behind.
    let (t, mut l) = fresh();
    let head = t.path().join("state").join("ledger.head");
    l.append_event(None, "a", &serde_json::json!(1)).unwrap();
    let old = fs::read(&head).unwrap();
    l.append_event(None, "b", &serde_json::json!(2)).unwrap();
    assert_ne!(fs::read(&head).unwrap(), old);
    fs::write(&head, &old).unwrap();
    let r = l.verify().unwrap();
    assert!(r.is_ok(), "{r:?}");
    l.append_event(None, "c", &serde_json::json!(3)).unwrap();
    let now: serde_json::Value = serde_json::from_slice(&fs::read(&head).unwrap()).unwrap();
    assert_eq!(now["seq"], 3);
    assert!(l.verify().unwrap().is_ok());
}

#[test]
fn missing_head_file_is_reported_and_not_recreated() {
    let (t, mut l) = fresh();
    let dir = t.path().join("state");
    l.append_event(None, "a", &serde_json::json!(1)).unwrap();
    fs::remove_file(dir.join("ledger.head")).unwrap();
    let r = l.verify().unwrap();
    assert!(r.has(ProblemKind::HeadMismatch), "{r:?}");
    drop(l);
    let mut l = Ledger::open(&dir).unwrap();
    assert!(!dir.join("ledger.head").exists());
    assert!(matches!(
        l.append_event(None, "b", &serde_json::json!(2)),
        Err(LedgerError::Tampered(_))
    ));
    assert!(!l.verify().unwrap().is_ok());
}

#[test]
fn newer_schema_version_is_refused() {
    let (t, l) = fresh();
    let c = rusqlite::Connection::open(l.db_path()).unwrap();
    c.pragma_update(None, "user_version", 99).unwrap();
    drop(c);
    drop(l);
    assert!(matches!(
        Ledger::open(&t.path().join("state")),
        Err(LedgerError::SchemaVersion { found: 99, .. })
    ));
}
