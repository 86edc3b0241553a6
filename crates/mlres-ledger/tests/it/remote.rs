//! Remote jobs recorded per experiment attempt (hf-jobs).

use mlres_ledger::LedgerError;

use crate::common::{allow, fresh, req};

#[test]
fn remote_jobs_are_recorded_once_and_found() {
    let (_t, mut l) = fresh();
    let c = l.create_campaign("/p", "h").unwrap();
    let e = l.reserve(&c.id, &req(Some(0)), allow).unwrap();
    let e2 = l.reserve(&c.id, &req(Some(1)), allow).unwrap();
    assert!(l.remote_jobs(&c.id).unwrap().is_empty());
    assert!(l.record_remote_job(e.id, 1, "alice", "job-a").unwrap());
    // The same job again records nothing (concurrent reconcilers may both see it).
    let before = l.event_count().unwrap();
    assert!(!l.record_remote_job(e.id, 1, "alice", "job-a").unwrap());
    assert_eq!(l.event_count().unwrap(), before);
    assert!(l.record_remote_job(e2.id, 2, "alice", "job-b").unwrap());
    let jobs = l.remote_jobs(&c.id).unwrap();
    assert_eq!(jobs.len(), 2);
    assert_eq!((jobs[0].exp_id, jobs[0].attempt), (e.id, 1));
    assert_eq!(jobs[1].job_id, "job-b");
    assert_eq!(jobs[1].namespace, "alice");
    let found = l.find_remote_job("job-b").unwrap().unwrap();
    assert_eq!((found.exp_id, found.attempt), (e2.id, 2));
    assert_eq!(found.campaign, c.id);
    assert!(l.find_remote_job("nope").unwrap().is_none());
    assert!(l.verify().unwrap().is_ok());
}

#[test]
fn bad_remote_job_records_are_refused() {
    let (_t, mut l) = fresh();
    let c = l.create_campaign("/p", "h").unwrap();
    let e = l.reserve(&c.id, &req(None), allow).unwrap();
    let before = l.event_count().unwrap();
    assert!(matches!(
        l.record_remote_job(e.id + 100, 1, "alice", "j"),
        Err(LedgerError::NotFound(_))
    ));
    assert!(matches!(
        l.record_remote_job(e.id, 1, "alice", ""),
        Err(LedgerError::Invalid(_))
    ));
    assert!(matches!(
        l.record_remote_job(e.id, 1, "", "j"),
        Err(LedgerError::Invalid(_))
    ));
    assert_eq!(l.event_count().unwrap(), before);
    assert!(matches!(
        l.remote_jobs("c-unknown"),
        Err(LedgerError::NotFound(_))
    ));
}

#[test]
fn hub_pushes_are_recorded_in_the_experiments_campaign() {
    let (_t, mut l) = fresh();
    let c = l.create_campaign("/p", "h").unwrap();
    let e = l.reserve(&c.id, &req(Some(0)), allow).unwrap();
    assert!(l.hub_pushes(&c.id).unwrap().is_empty());
    let details = serde_json::json!({"files": [{"path": "model.bin", "sha256": "ab"}]});
    l.record_hub_push(
        e.id,
        "alice/m",
        "https://huggingface.co/alice/m",
        "c0ffee",
        &details,
    )
    .unwrap();
    l.record_hub_push(
        e.id,
        "alice/m2",
        "https://huggingface.co/alice/m2",
        "beef",
        &serde_json::Value::Null,
    )
    .unwrap();
    let pushes = l.hub_pushes(&c.id).unwrap();
    assert_eq!(pushes.len(), 2);
    assert_eq!(
        (
            pushes[0].exp_id,
            pushes[0].repo.as_str(),
            pushes[0].commit.as_str()
        ),
        (e.id, "alice/m", "c0ffee")
    );
    assert_eq!(pushes[1].url, "https://huggingface.co/alice/m2");
    let ev = l.events(Some(&c.id), 0, 100).unwrap();
    let push = ev.iter().find(|x| x.kind == "hub_push").unwrap();
    assert_eq!(push.payload["files"][0]["path"], "model.bin");
    // Refused: an unknown experiment, an empty repo, details that are not an object.
    let before = l.event_count().unwrap();
    assert!(matches!(
        l.record_hub_push(e.id + 100, "a/b", "u", "c", &serde_json::Value::Null),
        Err(LedgerError::NotFound(_))
    ));
    assert!(matches!(
        l.record_hub_push(e.id, "", "u", "c", &serde_json::Value::Null),
        Err(LedgerError::Invalid(_))
    ));
    assert!(matches!(
        l.record_hub_push(e.id, "a/b", "u", "c", &serde_json::json!([1])),
        Err(LedgerError::Invalid(_))
    ));
    assert_eq!(l.event_count().unwrap(), before);
    assert!(l.verify().unwrap().is_ok());
}
