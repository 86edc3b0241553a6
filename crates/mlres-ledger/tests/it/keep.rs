//! The evidence of keep/discard decisions, rung values and prunes: recorded as chained events
//! (no schema change), each at most once, read back per campaign, and verified like any event.

use mlres_ledger::{EvalRecord, FinishRecord, LedgerError};
use serde_json::json;

use crate::common::{allow, fresh, req};

fn fin(status: &str) -> FinishRecord {
    FinishRecord {
        status: status.into(),
        exit_code: None,
        duration_ms: 1500,
        spent_cost_micro: 0,
        error: None,
    }
}

fn eval(decision: &str, evidence: Option<serde_json::Value>) -> EvalRecord {
    EvalRecord {
        metric: None,
        metrics: json!({}),
        decision: decision.into(),
        reason: "test".into(),
        best_so_far: None,
        evidence,
    }
}

#[test]
fn evidence_is_recorded_with_the_evaluation_and_read_back() {
    let (_t, mut l) = fresh();
    let c = l.create_campaign("/p", "h").unwrap();
    let a = l.reserve(&c.id, &req(Some(0)), allow).unwrap();
    let b = l.reserve(&c.id, &req(Some(1)), allow).unwrap();
    for e in [&a, &b] {
        l.mark_submitted(e.id, 1, &format!("/h/{}", e.id)).unwrap();
    }
    let ev = json!({"noise_model": "measured", "p_value": 0.3, "df": 2});
    assert!(
        l.finish_and_evaluate(a.id, &fin("completed"), &eval("discard", Some(ev.clone())))
            .unwrap()
    );
    assert!(
        l.finish_and_evaluate(b.id, &fin("completed"), &eval("keep", None))
            .unwrap()
    );
    let all = l.evidence_of(&c.id).unwrap();
    assert_eq!(
        all.len(),
        1,
        "only evaluations that carried evidence: {all:?}"
    );
    assert_eq!(all[&a.id], ev);
    assert_eq!(l.evidence_from(&c.id, a.id).unwrap().len(), 1);
    assert!(
        l.evidence_from(&c.id, b.id).unwrap().is_empty(),
        "a page from b on"
    );
    assert_eq!(l.evidence(a.id).unwrap(), Some(ev));
    assert_eq!(l.evidence(b.id).unwrap(), None);
    let evaluated: Vec<_> = l
        .events(Some(&c.id), 0, usize::MAX)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "evaluated")
        .collect();
    assert_eq!(evaluated[0].payload["evidence"]["noise_model"], "measured");
    assert!(evaluated[1].payload.get("evidence").is_none());
    assert!(l.verify().unwrap().is_ok());
}

#[test]
fn rungs_and_prunes_are_recorded_once_and_pruned_is_a_finish_status() {
    let (_t, mut l) = fresh();
    let c = l.create_campaign("/p", "h").unwrap();
    let a = l.reserve(&c.id, &req(Some(0)), allow).unwrap();
    l.mark_submitted(a.id, 1, "/h/a").unwrap();
    assert!(l.record_rung(a.id, 1, 0, 1.0, 0.5).unwrap());
    let before = l.event_count().unwrap();
    // Two reconcilers may both see the same line: the second records nothing.
    assert!(!l.record_rung(a.id, 1, 0, 1.0, 0.5).unwrap());
    assert_eq!(l.event_count().unwrap(), before);
    assert!(l.record_rung(a.id, 1, 1, 3.0, f64::NAN).unwrap());
    let r = l.rung_values(&c.id).unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(
        (r[0].exp_id, r[0].attempt, r[0].rung, r[0].step, r[0].value),
        (a.id, 1, 0, 1.0, 0.5)
    );
    assert!(r[1].value.is_nan(), "a diverged value stays NaN");
    assert_eq!(l.pruned(a.id, 1).unwrap(), None);
    assert!(
        l.record_pruned(a.id, 1, &json!({"rung": 1, "reason": "ranked 3 of 3"}))
            .unwrap()
    );
    assert!(!l.record_pruned(a.id, 1, &json!({"rung": 1})).unwrap());
    let p = l.pruned(a.id, 1).unwrap().unwrap();
    assert_eq!(
        (p["exp_id"].as_i64(), p["reason"].as_str()),
        (Some(a.id), Some("ranked 3 of 3"))
    );
    assert_eq!(l.pruned(a.id, 2).unwrap(), None, "per attempt");
    // Settled as pruned, to the walltime it used, not its reservation.
    assert!(
        l.finish_and_evaluate(a.id, &fin("pruned"), &eval("discard", None))
            .unwrap()
    );
    let e = l.experiment(a.id).unwrap().unwrap();
    assert_eq!(
        (e.status.as_deref(), e.spent_walltime_secs),
        (Some("pruned"), Some(2))
    );
    assert_eq!(l.usage(&c.id).unwrap().walltime_secs, 2);
    assert!(l.verify().unwrap().is_ok());
    assert!(matches!(
        l.record_rung(a.id + 100, 1, 0, 1.0, 0.5),
        Err(LedgerError::NotFound(_))
    ));
}
