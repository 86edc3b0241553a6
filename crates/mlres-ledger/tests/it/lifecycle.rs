//! Campaign and experiment lifecycle, usage accounting, transitions, bad input, reopen.

use std::cell::Cell;

use mlres_ledger::{EvalRecord, FinishRecord, Ledger, LedgerError, Usage};
use sha2::{Digest, Sha256};

use crate::common::{allow, fake_clock, fresh, kinds, req};

fn fin(duration_ms: u64, cost: u64) -> FinishRecord {
    FinishRecord {
        status: "completed".into(),
        exit_code: Some(0),
        duration_ms,
        spent_cost_micro: cost,
        error: None,
    }
}

fn eval(metric: Option<f64>) -> EvalRecord {
    EvalRecord {
        metric,
        metrics: serde_json::json!({"loss": 0.5, "acc": 0.9}),
        decision: "keep".into(),
        reason: "best so far".into(),
        best_so_far: metric,
        evidence: None,
    }
}

#[test]
fn campaign_ids_generations_and_status() {
    let (_t, mut l) = fresh();
    let start = fake_clock(&mut l).load(std::sync::atomic::Ordering::SeqCst);
    let h = Sha256::digest(b"/p/one");
    let prefix: String = h[..4].iter().map(|b| format!("{b:02x}")).collect();

    let c1 = l.create_campaign("/p/one", "ph1").unwrap();
    assert_eq!(c1.id, format!("c-{prefix}-1"));
    assert_eq!((c1.generation, c1.status.as_str()), (1, "active"));
    assert_eq!(c1.created_ms, start);
    assert!(!c1.stop_requested);
    let other = l.create_campaign("/p/two", "ph").unwrap();
    assert_eq!(other.generation, 1);
    let c2 = l.create_campaign("/p/one", "ph2").unwrap();
    assert_eq!(c2.id, format!("c-{prefix}-2"));
    assert_eq!(l.current_campaign("/p/one").unwrap().unwrap(), c2);
    assert_eq!(l.current_campaign("/nope").unwrap(), None);
    assert_eq!(l.campaign(&c1.id).unwrap().unwrap(), c1);
    assert_eq!(l.campaign("c-missing").unwrap(), None);

    l.request_stop(&c2.id, "operator").unwrap();
    let c = l.campaign(&c2.id).unwrap().unwrap();
    assert!(c.stop_requested);
    assert_eq!(c.stop_reason.as_deref(), Some("operator"));
    assert_eq!(c.status, "active");

    l.finish_campaign(&c2.id, "stopped", "operator stop")
        .unwrap();
    let c = l.campaign(&c2.id).unwrap().unwrap();
    assert_eq!(c.status, "stopped");
    assert_eq!(c.stop_reason.as_deref(), Some("operator stop"));
    assert!(matches!(
        l.finish_campaign(&c2.id, "finished", "again"),
        Err(LedgerError::InvalidCampaignTransition { ref from, .. }) if from == "stopped"
    ));
    // An ended campaign's stop reason is history: a later stop request changes nothing.
    assert!(matches!(
        l.request_stop(&c2.id, "changed my mind"),
        Err(LedgerError::InvalidCampaignTransition { ref from, .. }) if from == "stopped"
    ));
    let c = l.campaign(&c2.id).unwrap().unwrap();
    assert_eq!(c.stop_reason.as_deref(), Some("operator stop"));
    assert!(matches!(
        l.finish_campaign(&c1.id, "paused", "x"),
        Err(LedgerError::Invalid(_))
    ));
    assert!(matches!(
        l.request_stop("c-missing", "x"),
        Err(LedgerError::NotFound(_))
    ));
    assert_eq!(
        kinds(&l),
        [
            "campaign_created",
            "campaign_created",
            "campaign_created",
            "stop_requested",
            "campaign_finished"
        ]
    );
    let evs = l.events(Some(&c2.id), 0, 10).unwrap();
    assert_eq!(evs.len(), 3);
    assert!(
        evs.iter()
            .all(|e| e.campaign.as_deref() == Some(c2.id.as_str()))
    );
    assert_eq!(evs[0].payload["program_hash"], "ph2");
    // Timestamps come from the installed clock, one read per transaction.
    let all = l.events(None, 0, 10).unwrap();
    assert_eq!(all[0].ts_ms, start);
    assert_eq!(all[1].ts_ms, start + 1000);
    assert_eq!(evs[0].ts_ms, c2.created_ms);
    assert!(l.verify().unwrap().is_ok());
}

#[test]
fn full_lifecycle_with_usage_at_each_step() {
    let (_t, mut l) = fresh();
    fake_clock(&mut l);
    let c = l.create_campaign("/p", "ph").unwrap();
    assert_eq!(
        l.usage(&c.id).unwrap(),
        Usage {
            jobs: 0,
            walltime_secs: 0,
            cost_micro: 0,
            in_flight: 0,
            next_iter: 1
        }
    );

    let seen = Cell::new(None);
    let e = l
        .reserve(&c.id, &req(Some(0)), |u| {
            seen.set(Some(*u));
            Ok(())
        })
        .unwrap();
    assert_eq!(seen.get().unwrap().next_iter, 1);
    assert_eq!(seen.get().unwrap().jobs, 0);
    assert_eq!((e.iter, e.state.as_str(), e.attempt), (1, "reserved", 0));
    assert_eq!(e.config, serde_json::json!({"layers": 2, "lr": 0.001}));
    assert_eq!((e.timeout_secs, e.reserved_cost_micro), (100, 5_000));
    assert_eq!(e.proposal_index, Some(0));
    let reserved = Usage {
        jobs: 1,
        walltime_secs: 100,
        cost_micro: 5_000,
        in_flight: 1,
        next_iter: 2,
    };
    assert_eq!(l.usage(&c.id).unwrap(), reserved);

    l.mark_submitted(e.id, 1, "job-1").unwrap();
    let s = l.experiment(e.id).unwrap().unwrap();
    assert_eq!(
        (s.state.as_str(), s.attempt, s.handle.as_deref()),
        ("submitted", 1, Some("job-1"))
    );
    assert!(s.submitted_ms.is_some());
    assert_eq!(l.usage(&c.id).unwrap(), reserved);

    // Finishing settles walltime to ceil(actual) and cost to the actual spend.
    assert!(l.mark_finished(e.id, &fin(1_500, 1_200)).unwrap());
    let f = l.experiment(e.id).unwrap().unwrap();
    assert_eq!(f.state, "finished");
    assert_eq!(f.spent_walltime_secs, Some(2));
    assert_eq!(f.spent_cost_micro, Some(1_200));
    assert_eq!(f.duration_ms, Some(1_500));
    assert_eq!(f.status.as_deref(), Some("completed"));
    assert_eq!(f.exit_code, Some(0));
    let settled = Usage {
        jobs: 1,
        walltime_secs: 2,
        cost_micro: 1_200,
        in_flight: 0,
        next_iter: 2,
    };
    assert_eq!(l.usage(&c.id).unwrap(), settled);

    let n = l.event_count().unwrap();
    assert!(!l.mark_finished(e.id, &fin(9_000, 9)).unwrap());
    assert_eq!(l.event_count().unwrap(), n);
    assert_eq!(
        l.experiment(e.id).unwrap().unwrap().spent_cost_micro,
        Some(1_200)
    );

    assert!(l.mark_evaluated(e.id, &eval(Some(0.25))).unwrap());
    let v = l.experiment(e.id).unwrap().unwrap();
    assert_eq!(v.state, "evaluated");
    assert_eq!(v.metric, Some(0.25));
    assert_eq!(v.metrics.as_ref().unwrap()["acc"], 0.9);
    assert_eq!(v.decision.as_deref(), Some("keep"));
    assert!(v.evaluated_ms.unwrap() > v.finished_ms.unwrap());
    assert_eq!(l.usage(&c.id).unwrap(), settled);
    let n = l.event_count().unwrap();
    assert!(!l.mark_evaluated(e.id, &eval(Some(0.1))).unwrap());
    assert!(!l.mark_finished(e.id, &fin(1, 1)).unwrap());
    assert_eq!(l.event_count().unwrap(), n);
    assert_eq!(l.experiment(e.id).unwrap().unwrap().metric, Some(0.25));

    // A second experiment that is reserved then released no longer counts.
    let e2 = l.reserve(&c.id, &req(Some(1)), allow).unwrap();
    assert_eq!(e2.iter, 2);
    assert_eq!(l.usage(&c.id).unwrap().walltime_secs, 102);
    l.release(e2.id, "not needed").unwrap();
    assert_eq!(
        l.usage(&c.id).unwrap(),
        Usage {
            next_iter: 3,
            ..settled
        }
    );

    let all = l.experiments(&c.id).unwrap();
    assert_eq!(all.iter().map(|e| e.iter).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(
        kinds(&l),
        [
            "campaign_created",
            "reserved",
            "submitted",
            "finished",
            "evaluated",
            "reserved",
            "released"
        ]
    );
    let fin_ev = &l.events(None, 3, 1).unwrap()[0];
    assert_eq!(fin_ev.kind, "finished");
    assert_eq!(fin_ev.payload["spent_walltime_secs"], 2);
    assert!(l.verify().unwrap().is_ok());
}

#[test]
fn invalid_transitions_and_attempts() {
    let (_t, mut l) = fresh();
    let c = l.create_campaign("/p", "ph").unwrap();
    let e = l.reserve(&c.id, &req(None), allow).unwrap();
    let bad_for = |id: i64, r: Result<_, LedgerError>, from: &str, to: &str| match r {
        Err(LedgerError::InvalidTransition {
            exp_id,
            from: f,
            to: t,
        }) => {
            assert_eq!((exp_id, f.as_str(), t.as_str()), (id, from, to));
        }
        other => panic!("expected InvalidTransition {from}->{to}, got {other:?}"),
    };
    let bad = |r, from, to| bad_for(e.id, r, from, to);
    let before = l.event_count().unwrap();
    bad(
        l.mark_finished(e.id, &fin(1, 1)).map(|_| ()),
        "reserved",
        "finished",
    );
    bad(
        l.mark_evaluated(e.id, &eval(None)).map(|_| ()),
        "reserved",
        "evaluated",
    );
    bad(l.void_attempt(e.id, 0, "x"), "reserved", "reserved");
    assert!(matches!(
        l.mark_submitted(e.id, 0, "h"),
        Err(LedgerError::StaleAttempt {
            current: 0,
            given: 0,
            ..
        })
    ));
    assert_eq!(l.event_count().unwrap(), before);

    l.mark_submitted(e.id, 1, "h1").unwrap();
    // Exact repeat is an idempotent no-op; a different handle is not.
    let n = l.event_count().unwrap();
    l.mark_submitted(e.id, 1, "h1").unwrap();
    assert_eq!(l.event_count().unwrap(), n);
    bad(l.mark_submitted(e.id, 2, "h2"), "submitted", "submitted");
    bad(l.release(e.id, "x"), "submitted", "released");
    bad(
        l.mark_evaluated(e.id, &eval(None)).map(|_| ()),
        "submitted",
        "evaluated",
    );
    assert!(matches!(
        l.void_attempt(e.id, 2, "x"),
        Err(LedgerError::StaleAttempt {
            current: 1,
            given: 2,
            ..
        })
    ));

    // Void the attempt: back to reserved, handle cleared; the next attempt must be higher.
    l.void_attempt(e.id, 1, "never started").unwrap();
    let v = l.experiment(e.id).unwrap().unwrap();
    assert_eq!(
        (v.state.as_str(), v.attempt, v.handle),
        ("reserved", 1, None)
    );
    assert!(matches!(
        l.mark_submitted(e.id, 1, "h1"),
        Err(LedgerError::StaleAttempt {
            current: 1,
            given: 1,
            ..
        })
    ));
    l.mark_submitted(e.id, 2, "h2").unwrap();
    assert_eq!(l.experiment(e.id).unwrap().unwrap().attempt, 2);
    assert!(l.mark_finished(e.id, &fin(0, 0)).unwrap());
    assert_eq!(
        l.experiment(e.id).unwrap().unwrap().spent_walltime_secs,
        Some(0)
    );

    let r = l.reserve(&c.id, &req(None), allow).unwrap();
    l.release(r.id, "x").unwrap();
    bad_for(r.id, l.release(r.id, "x"), "released", "released");
    bad_for(
        r.id,
        l.mark_submitted(r.id, 1, "h"),
        "released",
        "submitted",
    );

    assert!(matches!(
        l.mark_submitted(9_999, 1, "h"),
        Err(LedgerError::NotFound(_))
    ));
    assert!(matches!(
        l.release(9_999, "x"),
        Err(LedgerError::NotFound(_))
    ));
    assert_eq!(l.experiment(9_999).unwrap(), None);
    assert_eq!(
        kinds(&l)[1..],
        [
            "reserved",
            "submitted",
            "attempt_voided",
            "submitted",
            "finished",
            "reserved",
            "released"
        ]
    );
    assert!(l.verify().unwrap().is_ok());
}

#[test]
fn refusal_is_recorded_and_reserves_nothing() {
    let (_t, mut l) = fresh();
    let c = l.create_campaign("/p", "ph").unwrap();
    let err = l
        .reserve(&c.id, &req(Some(7)), |u| {
            Err(("max_jobs".to_string(), format!("{} jobs already", u.jobs)))
        })
        .unwrap_err();
    match err {
        LedgerError::Refused { code, message } => {
            assert_eq!(code, "max_jobs");
            assert_eq!(message, "0 jobs already");
        }
        other => panic!("expected Refused, got {other:?}"),
    }
    assert!(l.experiments(&c.id).unwrap().is_empty());
    assert_eq!(l.usage(&c.id).unwrap().jobs, 0);
    let last = l.events(None, 1, 10).unwrap();
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].kind, "spend_refused");
    assert_eq!(last[0].payload["code"], "max_jobs");
    assert_eq!(last[0].payload["request"]["proposal_index"], 7);
    // The refused proposal index is still free.
    l.reserve(&c.id, &req(Some(7)), allow).unwrap();

    // A stop request refuses without asking the closure.
    l.request_stop(&c.id, "operator").unwrap();
    let asked = Cell::new(false);
    let err = l
        .reserve(&c.id, &req(None), |_| {
            asked.set(true);
            Ok(())
        })
        .unwrap_err();
    assert!(matches!(err, LedgerError::Refused { ref code, .. } if code == "stop_requested"));
    assert!(!asked.get());
    l.finish_campaign(&c.id, "stopped", "operator").unwrap();
    let err = l.reserve(&c.id, &req(None), allow).unwrap_err();
    assert!(matches!(err, LedgerError::Refused { ref code, .. } if code == "campaign_not_active"));
    assert_eq!(l.experiments(&c.id).unwrap().len(), 1);
    assert_eq!(
        kinds(&l).iter().filter(|k| *k == "spend_refused").count(),
        3
    );
    assert!(l.verify().unwrap().is_ok());
}

#[test]
fn duplicate_proposal_index_is_refused() {
    let (_t, mut l) = fresh();
    let c = l.create_campaign("/p", "ph").unwrap();
    let other = l.create_campaign("/q", "ph").unwrap();
    let e = l.reserve(&c.id, &req(Some(3)), allow).unwrap();
    let n = l.event_count().unwrap();
    match l.reserve(&c.id, &req(Some(3)), allow) {
        Err(LedgerError::DuplicateProposal { existing }) => assert_eq!(existing, e.id),
        other => panic!("expected DuplicateProposal, got {other:?}"),
    }
    assert_eq!(l.event_count().unwrap(), n);
    assert_eq!(l.experiments(&c.id).unwrap().len(), 1);
    // Still a duplicate after release: the proposal was consumed.
    l.release(e.id, "x").unwrap();
    assert!(matches!(
        l.reserve(&c.id, &req(Some(3)), allow),
        Err(LedgerError::DuplicateProposal { .. })
    ));
    // Same index in another campaign, and no index at all, are fine.
    l.reserve(&other.id, &req(Some(3)), allow).unwrap();
    l.reserve(&c.id, &req(None), allow).unwrap();
    l.reserve(&c.id, &req(None), allow).unwrap();
    assert_eq!(l.experiments(&c.id).unwrap().len(), 3);
}

#[test]
fn config_and_metrics_keep_the_callers_key_order() {
    let (_t, mut l) = fresh();
    let c = l.create_campaign("/p", "ph").unwrap();
    let mut r = req(None);
    r.config = serde_json::json!({"zeta": 1, "alpha": {"y": 1, "b": 2}});
    let e = l.reserve(&c.id, &r, allow).unwrap();
    let got = l.experiment(e.id).unwrap().unwrap();
    assert_eq!(
        serde_json::to_string(&got.config).unwrap(),
        r#"{"zeta":1,"alpha":{"y":1,"b":2}}"#
    );
    // Event payloads, in contrast, are canonical (sorted keys).
    let ev = l.events(None, 1, 1).unwrap().remove(0);
    assert_eq!(
        serde_json::to_string(&ev.payload["request"]["config"]).unwrap(),
        r#"{"alpha":{"b":2,"y":1},"zeta":1}"#
    );
}

#[test]
fn non_finite_metrics_round_trip() {
    let (_t, mut l) = fresh();
    let c = l.create_campaign("/p", "ph").unwrap();
    for (metric, best) in [
        (f64::NAN, f64::INFINITY),
        (f64::NEG_INFINITY, f64::NAN),
        (-0.5, 1e300),
    ] {
        let e = l.reserve(&c.id, &req(None), allow).unwrap();
        l.mark_submitted(e.id, 1, "h").unwrap();
        l.mark_finished(e.id, &fin(10, 1)).unwrap();
        let mut ev = eval(Some(metric));
        ev.best_so_far = Some(best);
        ev.decision = "anomalous".into();
        l.mark_evaluated(e.id, &ev).unwrap();
        let got = l.experiment(e.id).unwrap().unwrap();
        let same = |a: Option<f64>, b: f64| {
            let a = a.unwrap();
            (a.is_nan() && b.is_nan()) || a == b
        };
        assert!(same(got.metric, metric), "{:?} vs {metric}", got.metric);
        assert!(
            same(got.best_so_far, best),
            "{:?} vs {best}",
            got.best_so_far
        );
        // Serialisable even when non-finite.
        serde_json::to_string(&got).unwrap();
    }
    let evaluated: Vec<_> = l
        .events(Some(&c.id), 0, 100)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "evaluated")
        .collect();
    assert_eq!(evaluated[0].payload["metric"], "NaN");
    assert_eq!(evaluated[0].payload["best_so_far"], "inf");
    assert_eq!(evaluated[1].payload["metric"], "-inf");
    assert_eq!(evaluated[2].payload["metric"], -0.5);
    assert!(l.verify().unwrap().is_ok());
}

#[test]
fn bad_input_is_a_clear_error() {
    let (_t, mut l) = fresh();
    let c = l.create_campaign("/p", "ph").unwrap();
    let mut r = req(None);
    r.source = "robot".into();
    assert!(matches!(
        l.reserve(&c.id, &r, allow),
        Err(LedgerError::Invalid(_))
    ));
    let mut r = req(None);
    r.timeout_secs = u64::MAX;
    assert!(matches!(
        l.reserve(&c.id, &r, allow),
        Err(LedgerError::Invalid(_))
    ));
    let mut r = req(None);
    r.proposal_index = Some(u64::MAX);
    assert!(matches!(
        l.reserve(&c.id, &r, allow),
        Err(LedgerError::Invalid(_))
    ));
    assert!(matches!(
        l.reserve("c-nope", &req(None), allow),
        Err(LedgerError::NotFound(_))
    ));
    let e = l.reserve(&c.id, &req(None), allow).unwrap();
    assert!(matches!(
        l.mark_submitted(e.id, 1, ""),
        Err(LedgerError::Invalid(_))
    ));
    l.mark_submitted(e.id, 1, "h").unwrap();
    let mut f = fin(1, 1);
    f.status = "exploded".into();
    assert!(matches!(
        l.mark_finished(e.id, &f),
        Err(LedgerError::Invalid(_))
    ));
    l.mark_finished(e.id, &fin(1, 1)).unwrap();
    let mut ev = eval(None);
    ev.decision = "maybe".into();
    assert!(matches!(
        l.mark_evaluated(e.id, &ev),
        Err(LedgerError::Invalid(_))
    ));
    assert!(matches!(
        l.create_campaign("", "x"),
        Err(LedgerError::Invalid(_))
    ));
    assert!(matches!(
        l.append_event(Some("c-nope"), "x", &serde_json::json!({})),
        Err(LedgerError::NotFound(_))
    ));
    assert!(matches!(
        l.append_event(None, "", &serde_json::json!({})),
        Err(LedgerError::Invalid(_))
    ));
    assert!(matches!(l.usage("c-nope"), Err(LedgerError::NotFound(_))));
    // None of the failures above recorded anything.
    assert_eq!(
        kinds(&l),
        ["campaign_created", "reserved", "submitted", "finished"]
    );
    assert!(l.verify().unwrap().is_ok());
}

#[test]
fn events_paging_and_generic_events() {
    let (_t, mut l) = fresh();
    let c = l.create_campaign("/p", "ph").unwrap();
    let s1 = l
        .append_event(
            Some(&c.id),
            "loop_started",
            &serde_json::json!({"b": 1, "a": [1, 2]}),
        )
        .unwrap();
    let s2 = l
        .append_event(None, "note", &serde_json::json!("free text"))
        .unwrap();
    assert_eq!((s1, s2), (2, 3));
    assert_eq!(l.event_count().unwrap(), 3);
    let page = l.events(None, 1, 1).unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].seq, 2);
    assert_eq!(page[0].payload, serde_json::json!({"a": [1, 2], "b": 1}));
    assert_eq!(page[0].hash.len(), 64);
    assert_eq!(l.events(None, 3, 10).unwrap().len(), 0);
    assert_eq!(l.events(Some(&c.id), 0, 10).unwrap().len(), 2);
    assert_eq!(l.events(None, 0, 0).unwrap().len(), 0);
    let report = l.verify().unwrap();
    assert!(report.is_ok());
    assert_eq!((report.events, report.head_seq), (3, 3));
}

#[test]
fn state_persists_across_reopen() {
    let tmp = tempfile::TempDir::new().unwrap();
    let dir = tmp.path().join("state");
    let (cid, eid) = {
        let mut l = Ledger::open(&dir).unwrap();
        let c = l.create_campaign("/p", "ph").unwrap();
        let e = l.reserve(&c.id, &req(Some(1)), allow).unwrap();
        l.mark_submitted(e.id, 1, "h").unwrap();
        l.record_approval("/p", "abc", "doc", "alice").unwrap();
        (c.id, e.id)
    };
    let mut l = Ledger::open(&dir).unwrap();
    assert!(l.verify().unwrap().is_ok());
    assert_eq!(l.current_campaign("/p").unwrap().unwrap().id, cid);
    let e = l.experiment(eid).unwrap().unwrap();
    assert_eq!(
        (e.state.as_str(), e.handle.as_deref()),
        ("submitted", Some("h"))
    );
    assert_eq!(l.latest_approval("/p").unwrap().unwrap().approver, "alice");
    assert_eq!(l.event_count().unwrap(), 4);
    // The chain continues where it stopped.
    l.mark_finished(eid, &fin(10, 1)).unwrap();
    let r = l.verify().unwrap();
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(r.head_seq, 5);
}

#[test]
fn ledger_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Ledger>();
    let (_t, l) = fresh();
    let h = std::thread::spawn(move || l.event_count().unwrap());
    assert_eq!(h.join().unwrap(), 0);
}

/// The retention rule's candidates: settled (evaluated or released), not kept, older than the
/// `keep` most recent settled ones, above the cursor; never anything in flight.
#[test]
fn retention_candidates_skip_kept_in_flight_and_recent() {
    let (_t, mut l) = crate::common::fresh();
    let c = l.create_campaign("/p", "ph").unwrap().id;
    // 0: kept, 1..=8: discarded, 9: released, 10: in flight (submitted), 11..=13: discarded.
    let mut ids = Vec::new();
    for i in 0..14u64 {
        let e = l
            .reserve(&c, &crate::common::req(Some(i)), crate::common::allow)
            .unwrap();
        ids.push(e.id);
        if i == 9 {
            l.release(e.id, "never ran").unwrap();
            continue;
        }
        l.mark_submitted(e.id, 1, &format!("h{i}")).unwrap();
        if i == 10 {
            continue;
        }
        l.mark_finished(
            e.id,
            &mlres_ledger::FinishRecord {
                status: "completed".into(),
                exit_code: Some(0),
                duration_ms: 10,
                spent_cost_micro: 0,
                error: None,
            },
        )
        .unwrap();
        l.mark_evaluated(
            e.id,
            &mlres_ledger::EvalRecord {
                metric: Some(i as f64),
                metrics: serde_json::json!({}),
                decision: if i == 0 { "keep" } else { "discard" }.into(),
                reason: "test".into(),
                best_so_far: Some(0.0),
                evidence: None,
            },
        )
        .unwrap();
    }
    let cand = |after: i64, keep: usize, limit: usize| -> Vec<i64> {
        l.retention_candidates(&c, after, keep, limit)
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect()
    };
    // 13 settled (0..=9, 11..=13); the 4 newest are 9 (released), 11, 12, 13 (10 is in
    // flight, not settled), which leaves 0..=8 older, and 0 is kept.
    assert_eq!(cand(0, 4, 100), ids[1..=8].to_vec());
    assert_eq!(cand(0, 4, 3), ids[1..=3].to_vec(), "limit");
    assert_eq!(cand(ids[5], 4, 100), ids[6..=8].to_vec(), "cursor");
    assert_eq!(
        cand(0, 13, 100),
        Vec::<i64>::new(),
        "fewer settled than keep"
    );
    assert_eq!(cand(0, 1, 100), [&ids[1..=9], &ids[11..=12]].concat());
    assert_eq!(l.oldest_open_experiment(&c).unwrap(), Some(ids[10]));
}
