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

/// Identity is the approval's id, never its time: with a frozen clock every approval and
/// campaign shares one millisecond, and each still keeps its own pin and its own order.
#[test]
fn approvals_in_the_same_millisecond_keep_their_own_pins() {
    let (_t, mut l) = fresh();
    l.set_clock(|| 1_700_000_000_000);
    let m1 = serde_json::json!({"entries": [{"name": "d", "sha": "1"}]});
    let a1 = l
        .record_approval_pinned("/p", "h1", "doc", "alice", Some(&m1))
        .unwrap();
    let a2 = l.record_approval("/p", "h1", "doc", "alice").unwrap();
    assert_eq!(a1.created_ms, a2.created_ms);
    assert_ne!(a1.id, a2.id);
    assert_eq!(l.pinned_datasets(&a1).unwrap(), Some(m1));
    assert_eq!(l.pinned_datasets(&a2).unwrap(), None);
    assert_eq!(l.latest_approval("/p").unwrap().unwrap().id, a2.id);
}

#[test]
fn only_an_approval_given_after_a_campaign_ended_opens_the_next_one_whatever_the_clock() {
    let (_t, mut l) = fresh();
    l.set_clock(|| 1_700_000_000_000);
    let before = l.record_approval("/p", "h1", "doc", "alice").unwrap();
    let c = l.create_campaign("/p", "h1").unwrap();
    // Given before the campaign began: it authorised this campaign, not the next.
    assert!(!l.approved_after(&before, &c).unwrap());
    let during = l.record_approval("/p", "h1", "doc", "alice").unwrap();
    assert!(
        l.approved_after(&during, &c).unwrap(),
        "newer than the running campaign"
    );
    l.finish_campaign(&c.id, "finished", "budget").unwrap();
    let c = l.campaign(&c.id).unwrap().unwrap();
    // Given while it ran: it did not see the campaign end, so it cannot refill the budget.
    assert!(!l.approved_after(&during, &c).unwrap());
    let after = l.record_approval("/p", "h1", "doc", "alice").unwrap();
    assert!(l.approved_after(&after, &c).unwrap());
    // Another project's approval, or one the chain does not hold, never counts.
    let mut forged = after.clone();
    forged.id += 1000;
    assert!(matches!(
        l.approved_after(&forged, &c),
        Err(LedgerError::Tampered(_))
    ));
}
