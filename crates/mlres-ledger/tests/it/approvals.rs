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

#[test]
fn a_code_manifest_is_pinned_with_its_approval_and_submits_record_the_code_they_run() {
    let (_t, mut l) = fresh();
    let code = serde_json::json!({"sha256": "c1", "files": [{"path": "train.py"}]});
    let data = serde_json::json!({"entries": []});
    let pins = mlres_ledger::ApprovalPins {
        datasets: Some(&data),
        code: Some(&code),
        context: None,
    };
    let a1 = l
        .record_approval_with("/p", "h1", "doc", "alice", &pins)
        .unwrap();
    assert_eq!(l.pinned_code(&a1).unwrap(), Some(code.clone()));
    assert_eq!(l.pinned_datasets(&a1).unwrap(), Some(data.clone()));
    // A later approval without code pins none, and another project's pin never matches.
    let a2 = l.record_approval("/p", "h1", "doc", "alice").unwrap();
    assert_eq!(l.pinned_code(&a2).unwrap(), None);
    l.record_approval_with("/q", "h1", "doc", "alice", &pins)
        .unwrap();
    assert_eq!(l.pinned_code(&a2).unwrap(), None);
    let events = l.events(None, 0, 100).unwrap();
    let pinned = events
        .iter()
        .find(|e| e.kind == "code_manifest")
        .expect("a code_manifest event");
    assert_eq!(pinned.payload["approval_id"], a1.id);
    assert_eq!(pinned.payload["sha256"], "c1");

    // The reservation and every submission of the experiment name the code it runs.
    let c = l.create_campaign("/p", "h1").unwrap().id;
    let mut r = crate::common::req(Some(0));
    r.code_sha256 = Some("c1".into());
    let e = l
        .reserve_submitted(&c, &r, crate::common::allow, |id| format!("/jobs/e{id}-a1"))
        .unwrap();
    l.void_attempt(e.id, 1, "never started").unwrap();
    l.mark_submitted_code(e.id, 2, "/jobs/e-a2", Some("c2"))
        .unwrap();
    let events = l.events(Some(&c), 0, 100).unwrap();
    let by_kind = |k: &str| -> Vec<&serde_json::Value> {
        events
            .iter()
            .filter(|e| e.kind == k)
            .map(|e| &e.payload)
            .collect()
    };
    assert_eq!(by_kind("reserved")[0]["request"]["code_sha256"], "c1");
    let submitted = by_kind("submitted");
    assert_eq!(submitted[0]["code_sha256"], "c1");
    assert_eq!(submitted[1]["code_sha256"], "c2");
    assert!(l.verify().unwrap().is_ok());
    // Without code, the payloads are what they always were.
    let e2 = l
        .reserve_submitted(
            &c,
            &crate::common::req(Some(1)),
            crate::common::allow,
            |id| format!("/jobs/e{id}-a1"),
        )
        .unwrap();
    let last = l.events(Some(&c), 0, 100).unwrap();
    let p = &last.last().unwrap().payload;
    assert_eq!(p["exp_id"], e2.id);
    assert!(p.get("code_sha256").is_none(), "{p}");
}
