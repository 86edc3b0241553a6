//! The budget cannot be refunded or forged by editing the tables: every budget-relevant edit
//! made outside mlres is refused before anything is spent, and `verify` reports it.

use mlres_ledger::{EvalRecord, FinishRecord, Ledger, LedgerError, Opened, ProblemKind, Usage};
use proptest::prelude::*;

use crate::common::{allow, fresh, kinds, raw, req};

/// Builds a campaign whose experiments reached the given stages:
/// 0 reserved, 1 submitted, 2 finished, 3 evaluated, 4 released.
fn campaign_with(l: &mut Ledger, stages: &[u8]) -> String {
    let c = l.create_campaign("/p", "ph").unwrap().id;
    for (i, &stage) in stages.iter().enumerate() {
        let mut r = req(Some(i as u64));
        r.timeout_secs = 100 + i as u64;
        r.cost_micro = 7_000 + i as u64;
        let e = l.reserve(&c, &r, allow).unwrap();
        if stage == 4 {
            l.release(e.id, "test").unwrap();
            continue;
        }
        if stage >= 1 {
            l.mark_submitted(e.id, 1, &format!("h{i}")).unwrap();
        }
        if stage >= 2 {
            l.mark_finished(
                e.id,
                &FinishRecord {
                    status: "completed".into(),
                    exit_code: Some(0),
                    duration_ms: 12_345 + i as u64,
                    spent_cost_micro: 300 + i as u64,
                    error: None,
                },
            )
            .unwrap();
        }
        if stage >= 3 {
            l.mark_evaluated(
                e.id,
                &EvalRecord {
                    metric: Some(0.5),
                    metrics: serde_json::json!({"score": 0.5}),
                    decision: "keep".into(),
                    reason: "first".into(),
                    best_so_far: Some(0.5),
                    evidence: None,
                },
            )
            .unwrap();
        }
    }
    c
}

/// Asserts that a submit is refused as tampering without recording anything, and that
/// verify reports the edit.
fn assert_refused_and_reported(l: &mut Ledger, campaign: &str, what: &str) {
    let before = l.event_count().unwrap();
    match l.reserve(campaign, &req(None), allow) {
        Err(LedgerError::Tampered(m)) => assert!(!m.is_empty()),
        other => panic!("{what}: a reservation after the edit was not refused: {other:?}"),
    }
    assert_eq!(
        l.event_count().unwrap(),
        before,
        "{what}: something was recorded"
    );
    let r = l.verify().unwrap();
    assert!(!r.is_ok(), "{what}: verify said OK");
}

#[test]
fn one_update_no_longer_refunds_the_budget() {
    let (_t, mut l) = fresh();
    let c = campaign_with(&mut l, &[3, 3, 2, 1, 0]);
    assert_eq!(l.usage(&c).unwrap().jobs, 5);
    assert!(l.verify().unwrap().is_ok());
    raw(&l)
        .execute("UPDATE experiments SET state = 'released'", [])
        .unwrap();
    // The usage the budget reads is sealed: the refund does not show, and spending is refused.
    assert_eq!(l.usage(&c).unwrap().jobs, 5);
    assert_refused_and_reported(&mut l, &c, "refund");
    let r = l.verify().unwrap();
    assert!(r.has(ProblemKind::TableMismatch), "{r:?}");
    assert!(r.has(ProblemKind::BadMac), "{r:?}");
}

#[test]
fn a_forged_metric_is_refused_when_read() {
    let (_t, mut l) = fresh();
    let c = campaign_with(&mut l, &[3, 3]);
    raw(&l)
        .execute("UPDATE experiments SET metric = 0.99 WHERE id = 2", [])
        .unwrap();
    assert!(matches!(l.experiments(&c), Err(LedgerError::Tampered(_))));
    assert!(matches!(l.experiment(2), Err(LedgerError::Tampered(_))));
    assert!(l.experiment(1).is_ok());
    let r = l.verify().unwrap();
    assert!(r.has(ProblemKind::BadMac), "{r:?}");
}

#[test]
fn an_edited_campaign_row_is_refused() {
    for (what, sql) in [
        ("un-stop", "UPDATE campaigns SET stop_requested = 0"),
        (
            "reopen",
            "UPDATE campaigns SET status = 'active', stop_reason = NULL",
        ),
        (
            "forged tally",
            "UPDATE campaigns SET tally = '0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0'",
        ),
    ] {
        let (_t, mut l) = fresh();
        let c = campaign_with(&mut l, &[3, 0]);
        if what == "reopen" {
            l.finish_campaign(&c, "finished", "done").unwrap();
        } else {
            l.request_stop(&c, "enough").unwrap();
        }
        raw(&l).execute(sql, []).unwrap();
        assert_refused_and_reported(&mut l, &c, what);
    }
}

#[test]
fn usage_as_the_events_imply_it_is_checked_by_verify() {
    // Re-sealing with a forged tally needs the key; without it, a row whose usage differs
    // from the events is reported even when the rows and the tally agree with each other.
    let (_t, mut l) = fresh();
    let c = campaign_with(&mut l, &[2, 2]);
    let u = l.usage(&c).unwrap();
    assert_eq!(
        u,
        Usage {
            jobs: 2,
            walltime_secs: 13 + 13,
            cost_micro: 300 + 301,
            in_flight: 0,
            next_iter: 3,
        }
    );
    assert!(l.verify().unwrap().is_ok());
}

#[derive(Debug, Clone)]
enum Edit {
    /// Set a column of experiment `exp` (index into the campaign's rows) to a new value.
    Column {
        exp: usize,
        col: &'static str,
        to: i64,
    },
    /// Move experiment `exp` to another state.
    State {
        exp: usize,
        to: &'static str,
    },
    Delete {
        exp: usize,
    },
    Duplicate {
        exp: usize,
    },
    /// Delete the campaign's last event (and roll the chain head back is not possible without
    /// the key, so only the campaign's span can tell).
    Relabel {
        exp: usize,
    },
}

fn edit() -> impl Strategy<Value = Edit> {
    let col = prop::sample::select(vec![
        "timeout_secs",
        "reserved_cost_micro",
        "duration_ms",
        "spent_walltime_secs",
        "spent_cost_micro",
        "attempt",
        "iter",
    ]);
    let state = prop::sample::select(vec![
        "reserved",
        "submitted",
        "finished",
        "evaluated",
        "released",
    ]);
    prop_oneof![
        (0usize..8, col, 0i64..1_000_000).prop_map(|(exp, col, to)| Edit::Column { exp, col, to }),
        (0usize..8, state).prop_map(|(exp, to)| Edit::State { exp, to }),
        (0usize..8).prop_map(|exp| Edit::Delete { exp }),
        (0usize..8).prop_map(|exp| Edit::Duplicate { exp }),
        (0usize..8).prop_map(|exp| Edit::Relabel { exp }),
    ]
}

/// Applies `e`; returns false when it would not change anything (e.g. same value).
fn apply(l: &Ledger, ids: &[i64], e: &Edit) -> bool {
    let c = raw(l);
    let id = |exp: usize| ids[exp % ids.len()];
    match e {
        Edit::Column { exp, col, to } => c
            .execute(
                &format!("UPDATE experiments SET {col} = ?2 WHERE id = ?1 AND ({col} IS NULL OR {col} <> ?2)"),
                (id(*exp), to),
            )
            .unwrap()
            > 0,
        Edit::State { exp, to } => c
            .execute(
                "UPDATE experiments SET state = ?2 WHERE id = ?1 AND state <> ?2",
                (id(*exp), to),
            )
            .unwrap()
            > 0,
        Edit::Delete { exp } => c
            .execute("DELETE FROM experiments WHERE id = ?1", [id(*exp)])
            .unwrap()
            > 0,
        Edit::Duplicate { exp } => c
            .execute(
                "INSERT INTO experiments (campaign, iter, state, hypothesis, config, source,
                    backend, flavor, timeout_secs, reserved_cost_micro, attempt, created_ms, mac)
                 SELECT campaign, iter + 1000, state, hypothesis, config, source, backend, flavor,
                    timeout_secs, reserved_cost_micro, attempt, created_ms, mac
                 FROM experiments WHERE id = ?1",
                [id(*exp)],
            )
            .unwrap()
            > 0,
        Edit::Relabel { exp } => {
            // Move one of the campaign's events out of it (as if it never happened to it).
            c.execute(
                "UPDATE events SET campaign = NULL WHERE seq = (
                    SELECT MAX(seq) FROM events WHERE kind = 'reserved'
                      AND json_extract(payload, '$.exp_id') = ?1)",
                [id(*exp)],
            )
            .unwrap()
                > 0
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any single budget-relevant edit is refused before spending and reported by verify.
    #[test]
    fn any_budget_edit_is_refused_before_spending(
        stages in prop::collection::vec(0u8..5, 1..6),
        e in edit(),
    ) {
        let (_t, mut l) = fresh();
        let c = campaign_with(&mut l, &stages);
        let ids: Vec<i64> = l.experiments(&c).unwrap().iter().map(|x| x.id).collect();
        prop_assume!(apply(&l, &ids, &e));
        assert_refused_and_reported(&mut l, &c, &format!("{e:?}"));
    }
}

#[test]
fn concurrent_first_opens_share_one_campaign() {
    let (t, mut l) = fresh();
    let a = l.record_approval("/p", "h", "doc", "alice").unwrap();
    let dir = t.path().join("state");
    let n = 16;
    let max_jobs = 3u32;
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let (dir, a, barrier) = (dir.clone(), a.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut l = Ledger::open(&dir).unwrap();
                barrier.wait();
                let c = match l.open_campaign(&a, "h", false).unwrap() {
                    Opened::Resumed(c) | Opened::Created { campaign: c, .. } => c,
                    Opened::NeedsApproval(c) => panic!("needs approval: {c:?}"),
                };
                let ok = l
                    .reserve(&c.id, &req(None), |u| {
                        if u.jobs >= max_jobs {
                            Err(("max_jobs".into(), "full".into()))
                        } else {
                            Ok(())
                        }
                    })
                    .is_ok();
                (c.id, ok)
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let ids: std::collections::BTreeSet<_> = results.iter().map(|r| r.0.clone()).collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(results.iter().filter(|r| r.1).count(), max_jobs as usize);
    assert!(l.verify().unwrap().is_ok());
    // The same approval cannot open another campaign, even asked for a fresh one.
    match l.open_campaign(&a, "h", true).unwrap() {
        Opened::NeedsApproval(_) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn reserve_submitted_is_one_transaction_that_verifies() {
    let (_t, mut l) = fresh();
    let c = l.create_campaign("/p", "ph").unwrap().id;
    let n = l.event_count().unwrap();
    let e = l
        .reserve_submitted(&c, &req(Some(0)), allow, |id| format!("/jobs/e{id}-a1"))
        .unwrap();
    assert_eq!(e.state, "submitted");
    assert_eq!(e.attempt, 1);
    assert_eq!(
        e.handle.as_deref(),
        Some(format!("/jobs/e{}-a1", e.id).as_str())
    );
    assert_eq!(l.event_count().unwrap(), n + 2);
    // The launch's own mark_submitted is then a no-op that records nothing.
    l.mark_submitted(e.id, 1, e.handle.as_deref().unwrap())
        .unwrap();
    assert_eq!(l.event_count().unwrap(), n + 2);
    assert_eq!(l.usage(&c).unwrap().in_flight, 1);
    assert!(l.verify().unwrap().is_ok());
    // A refusal records the refusal only: no experiment, no handle asked for.
    let err = l.reserve_submitted(
        &c,
        &req(Some(1)),
        |_| Err(("max_jobs".into(), "full".into())),
        |_| panic!("no handle for a refused reservation"),
    );
    assert!(matches!(err, Err(LedgerError::Refused { .. })));
    assert_eq!(l.experiments(&c).unwrap().len(), 1);
    assert!(l.verify().unwrap().is_ok());
}

#[test]
fn finish_and_evaluate_is_one_transaction_that_verifies() {
    let (_t, mut l) = fresh();
    let c = l.create_campaign("/p", "ph").unwrap().id;
    let e = l
        .reserve_submitted(&c, &req(Some(0)), allow, |id| format!("/jobs/e{id}-a1"))
        .unwrap();
    let fin = FinishRecord {
        status: "completed".into(),
        exit_code: Some(0),
        duration_ms: 1500,
        spent_cost_micro: 0,
        error: None,
    };
    let ev = EvalRecord {
        metric: Some(0.7),
        metrics: serde_json::json!({"score": 0.7}),
        decision: "keep".into(),
        reason: "first".into(),
        best_so_far: Some(0.7),
        evidence: None,
    };
    let n = l.event_count().unwrap();
    assert!(l.finish_and_evaluate(e.id, &fin, &ev).unwrap());
    assert_eq!(l.event_count().unwrap(), n + 2);
    let got = l.experiment(e.id).unwrap().unwrap();
    assert_eq!(got.state, "evaluated");
    assert_eq!(got.spent_walltime_secs, Some(2));
    assert_eq!(got.metric, Some(0.7));
    assert_eq!(l.usage(&c).unwrap().walltime_secs, 2);
    assert!(l.verify().unwrap().is_ok());
    // Already settled: nothing changes, nothing is recorded.
    assert!(!l.finish_and_evaluate(e.id, &fin, &ev).unwrap());
    assert_eq!(l.event_count().unwrap(), n + 2);
    // A bad decision is refused before anything is written.
    let e2 = l
        .reserve_submitted(&c, &req(Some(1)), allow, |id| format!("/jobs/e{id}-a1"))
        .unwrap();
    let mut bad = ev.clone();
    bad.decision = "maybe".into();
    assert!(matches!(
        l.finish_and_evaluate(e2.id, &fin, &bad),
        Err(LedgerError::Invalid(_))
    ));
    assert_eq!(l.experiment(e2.id).unwrap().unwrap().state, "submitted");
}

/// Opening the campaign and its first reservation are one transaction: under 16 racing first
/// submits, exactly `max_jobs` are accepted into one campaign, and the campaign's opening event
/// is immediately followed by that same transaction's reservation (no other writer can come
/// between them).
#[test]
fn concurrent_open_and_reserve_is_one_transaction() {
    let (t, mut l) = fresh();
    let a = l.record_approval("/p", "h", "doc", "alice").unwrap();
    let dir = t.path().join("state");
    let n = 16;
    let max_jobs = 3u32;
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let (dir, a, barrier) = (dir.clone(), a.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut l = Ledger::open(&dir).unwrap();
                barrier.wait();
                let (opened, exp) = l
                    .open_and_reserve_submitted(
                        &a,
                        "h",
                        &req(None),
                        |u| {
                            if u.jobs >= max_jobs {
                                Err(("max_jobs".into(), "full".into()))
                            } else {
                                Ok(())
                            }
                        },
                        |c, id| format!("/jobs/{c}/e{id}-a1"),
                    )
                    .unwrap();
                let c = match opened {
                    Opened::Resumed(c) | Opened::Created { campaign: c, .. } => c,
                    Opened::NeedsApproval(c) => panic!("needs approval: {c:?}"),
                };
                if let Ok(e) = &exp {
                    assert_eq!(e.state, "submitted");
                    assert_eq!(
                        e.handle.as_deref(),
                        Some(format!("/jobs/{}/e{}-a1", c.id, e.id).as_str())
                    );
                }
                (c.id, exp.is_ok())
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let ids: std::collections::BTreeSet<_> = results.iter().map(|r| r.0.clone()).collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(results.iter().filter(|r| r.1).count(), max_jobs as usize);
    let k = kinds(&l);
    let opened = k
        .iter()
        .position(|k| k == "campaign_created")
        .expect("{k:?}");
    assert_eq!(
        &k[opened + 1..opened + 3],
        ["reserved", "submitted"],
        "the opening transaction reserved: {k:?}"
    );
    assert!(l.verify().unwrap().is_ok());
}

/// A refused first reservation still opens the campaign (and records the refusal in it); an
/// approval whose campaign has ended reserves and records nothing.
#[test]
fn open_and_reserve_refusals() {
    let (_t, mut l) = fresh();
    let a = l.record_approval("/p", "h", "doc", "alice").unwrap();
    let deny = |_: &Usage| Err(("max_jobs".to_string(), "no".to_string()));
    let (opened, exp) = l
        .open_and_reserve_submitted(&a, "h", &req(None), deny, |_, _| "x".into())
        .unwrap();
    let Opened::Created { campaign: c, .. } = opened else {
        panic!("{opened:?}")
    };
    assert!(matches!(exp, Err(LedgerError::Refused { ref code, .. }) if code == "max_jobs"));
    assert_eq!(l.experiments(&c.id).unwrap().len(), 0);
    assert_eq!(kinds(&l).last().map(String::as_str), Some("spend_refused"));
    l.finish_campaign(&c.id, "finished", "done").unwrap();
    let n = l.event_count().unwrap();
    let (opened, exp) = l
        .open_and_reserve_submitted(&a, "h", &req(None), allow, |_, _| "x".into())
        .unwrap();
    assert!(matches!(opened, Opened::NeedsApproval(_)), "{opened:?}");
    assert!(exp.is_err());
    assert_eq!(l.event_count().unwrap(), n, "nothing recorded");
    assert!(l.verify().unwrap().is_ok());
}
