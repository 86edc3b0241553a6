//! Approvals: recorded, MAC'd, re-verified on read.

use mlres_ledger::LedgerError;

use crate::common::{fresh, raw};

#[test]
fn record_and_latest() {
    let (_t, mut l) = fresh();
    assert_eq!(l.latest_approval("/p").unwrap(), None);
    let a1 = l
        .record_approval("/p", "h1", "envelope v1", "alice")
        .unwrap();
    let a2 = l.record_approval("/p", "h2", "envelope v2", "bob").unwrap();
    l.record_approval("/q", "hq", "other", "carol").unwrap();
    assert_eq!(a1.hash, "h1");
    assert_eq!(l.latest_approval("/p").unwrap().unwrap(), a2);
    assert_eq!(l.latest_approval("/q").unwrap().unwrap().hash, "hq");
    assert_eq!(l.latest_approval("/r").unwrap(), None);
    let ev = &l.events(None, 1, 1).unwrap()[0];
    assert_eq!(ev.kind, "approval_recorded");
    assert_eq!(ev.payload["hash"], "h2");
    assert!(matches!(
        l.record_approval("/p", "", "doc", "x"),
        Err(LedgerError::Invalid(_))
    ));
    assert!(l.verify().unwrap().is_ok());
}

fn tampered(sql: &str) {
    let (_t, mut l) = fresh();
    l.record_approval("/p", "h1", "envelope v1", "alice")
        .unwrap();
    l.record_approval("/p", "h2", "envelope v2", "bob").unwrap();
    assert!(l.latest_approval("/p").unwrap().is_some());
    let n = raw(&l).execute(sql, []).unwrap();
    assert_eq!(n, 1, "{sql}");
    match l.latest_approval("/p") {
        Err(LedgerError::Tampered(_)) => {}
        other => panic!("{sql}: expected Tampered, got {other:?}"),
    }
}

#[test]
fn edited_document_is_detected() {
    tampered("UPDATE approvals SET document = 'envelope v2 (relaxed)' WHERE hash = 'h2'");
}

#[test]
fn edited_hash_is_detected() {
    tampered("UPDATE approvals SET hash = 'h3' WHERE hash = 'h2'");
}

#[test]
fn edited_approver_is_detected() {
    tampered("UPDATE approvals SET approver = 'agent' WHERE hash = 'h2'");
}

#[test]
fn mac_swapped_from_older_row_is_detected() {
    tampered(
        "UPDATE approvals SET mac = (SELECT mac FROM approvals WHERE hash = 'h1') WHERE hash = 'h2'",
    );
}

#[test]
fn deleting_latest_approval_is_detected() {
    tampered("DELETE FROM approvals WHERE hash = 'h2'");
}

#[test]
fn deleting_only_approval_is_detected() {
    let (_t, mut l) = fresh();
    l.record_approval("/p", "h1", "doc", "alice").unwrap();
    raw(&l).execute("DELETE FROM approvals", []).unwrap();
    assert!(matches!(
        l.latest_approval("/p"),
        Err(LedgerError::Tampered(_))
    ));
}

#[test]
fn a_pinned_manifest_belongs_to_its_own_approval_only() {
    let (_t, mut l) = fresh();
    let m1 = serde_json::json!({"entries": [{"name": "d", "sha": "1"}]});
    let a1 = l
        .record_approval_pinned("/p", "h1", "doc", "alice", Some(&m1))
        .unwrap();
    assert_eq!(l.pinned_datasets(&a1).unwrap(), Some(m1.clone()));
    // A later approval without datasets has no pin, and does not inherit the old one.
    let a2 = l.record_approval("/p", "h1", "doc", "alice").unwrap();
    assert_eq!(l.pinned_datasets(&a2).unwrap(), None);
    // Another project's pin never matches.
    let m3 = serde_json::json!({"entries": []});
    l.record_approval_pinned("/q", "h1", "doc", "alice", Some(&m3))
        .unwrap();
    assert_eq!(l.pinned_datasets(&a2).unwrap(), None);
    assert_eq!(l.pinned_datasets(&a1).unwrap(), Some(m1));
    assert!(l.verify().unwrap().is_ok());
}
