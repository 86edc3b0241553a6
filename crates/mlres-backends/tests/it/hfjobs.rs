//! The hf-jobs supervisor against the in-process fake Jobs API: the typed job it creates, logs
//! through dropped SSE connections, cancel, DELETED, 402, and the claim protocol.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use mlres_backends::{
    AttemptState, HfJobFile, Outcome, Status, claim_void, log_paths, poll, prepare_hf_attempt,
    read_remote_job,
};
use mlres_fakehf::{CANARY_TOKEN, FakeConfig, FakeHf};

use crate::{LONG, SUP, attempt_dir, read, sh};

fn fake() -> FakeHf {
    FakeHf::start(FakeConfig {
        work_root: Some(env!("CARGO_TARGET_TMPDIR").into()),
        scheduling_delay_ms: 5,
        ..FakeConfig::default()
    })
    .unwrap()
}

fn job(fake: &FakeHf, script: &str) -> HfJobFile {
    HfJobFile {
        endpoint: fake.url(),
        namespace: "alice".into(),
        flavor: "cpu-basic".into(),
        image: "python:3.12".into(),
        command: vec!["/bin/sh".into(), "-c".into(), script.into()],
        environment: BTreeMap::from([("A".to_string(), "1".to_string())]),
        secret_names: vec![],
        labels: BTreeMap::from([
            ("mlres-campaign".to_string(), "c-test-1".to_string()),
            ("mlres-exp".to_string(), "7".to_string()),
            ("mlres-attempt".to_string(), "1".to_string()),
        ]),
        timeout_secs: 60,
        micro_usd_per_minute: 200,
        log_cap_bytes: 1 << 20,
        poll_ms: 50,
        requests_per_minute: None,
        budget_file: None,
    }
}

fn sup(dir: &Path) -> Command {
    let mut c = Command::new(SUP);
    c.arg("supervise-hf")
        .arg(dir)
        .env("MLRES_TEST_HF_TOKEN", CANARY_TOKEN)
        .stdout(std::process::Stdio::null());
    c
}

fn finished(dir: &Path) -> Status {
    match poll(dir).unwrap() {
        AttemptState::Finished(s) => s,
        other => panic!("expected Finished, got {other:?}"),
    }
}

#[test]
fn creates_the_typed_job_streams_logs_and_records_the_billed_time() {
    let f = fake();
    let (_t, dir) = attempt_dir();
    let j = job(&f, "echo one; echo two >&2; echo score=3");
    prepare_hf_attempt(&dir, &sh("exit 99"), &j).unwrap();
    assert_eq!(sup(&dir).status().unwrap().code(), Some(0));
    let s = finished(&dir);
    assert_eq!(s.outcome, Outcome::Completed, "{}", s.detail);
    assert_eq!(s.exit_code, Some(0));
    let r = s.remote.as_ref().unwrap();
    assert_eq!(r.stage.as_deref(), Some("COMPLETED"));
    assert!(r.running_secs.is_some_and(|x| x >= 0.0));
    assert_eq!(r.micro_usd_per_minute, 200);
    assert_eq!(
        s.duration_ms,
        (r.running_secs.unwrap() * 1000.0).ceil() as u64
    );
    let rj = read_remote_job(&dir).unwrap().unwrap();
    assert_eq!(Some(rj.id.clone()), r.job_id);
    let log = read(&log_paths(&dir).stdout);
    for l in ["one", "two", "score=3"] {
        assert_eq!(log.lines().filter(|x| *x == l).count(), 1, "{log}");
    }
    assert_eq!(read(&log_paths(&dir).stdout_tail), log);
    // What the fake got: exactly our labels, flavor, image, integer timeout, env; nothing else.
    let snap = f.state().snapshot();
    let jobs = snap["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["id"], rj.id.as_str());
    assert_eq!(jobs[0]["labels"]["mlres-exp"], "7");
    assert_eq!(jobs[0]["timeoutSeconds"], 60);
    assert_eq!(jobs[0]["environmentNames"], serde_json::json!(["A"]));
    assert!(jobs[0]["secretNames"].as_array().unwrap().is_empty());
    assert_eq!(f.state().scheduled_calls(), 0);
    // Nothing in the attempt dir has the token.
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let b = std::fs::read(e.path()).unwrap_or_default();
        assert!(
            !b.windows(11).any(|w| w == b"mlresCANARY"),
            "{:?}",
            e.path()
        );
    }
}

#[test]
fn dropped_streams_deliver_every_line_once_and_secrets_are_redacted() {
    let f = fake();
    f.state().drop_sse_after(&[2, 0, 5, 1, 9]);
    let (_t, dir) = attempt_dir();
    let mut j = job(
        &f,
        "for i in $(seq 1 30); do echo l$i; done; echo tok=$HF_TOKEN",
    );
    j.secret_names = vec!["HF_TOKEN".into()];
    prepare_hf_attempt(&dir, &sh("true"), &j).unwrap();
    let st = sup(&dir)
        .env(
            "MLRES_TEST_HF_SECRETS",
            r#"{"HF_TOKEN":"hf_jobTOKENsecret42"}"#,
        )
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(0));
    let s = finished(&dir);
    assert_eq!(s.outcome, Outcome::Completed, "{}", s.detail);
    let log = read(&log_paths(&dir).stdout);
    let lines: Vec<&str> = log.lines().filter(|l| l.starts_with('l')).collect();
    let want: Vec<String> = (1..=30).map(|i| format!("l{i}")).collect();
    assert_eq!(lines, want);
    assert!(log.contains("tok=[REDACTED:HF_TOKEN]"), "{log}");
    assert!(!log.contains("jobTOKENsecret"));
    assert!(s.remote.unwrap().log_reconnects >= 1);
    let snap = f.state().snapshot();
    assert_eq!(
        snap["jobs"][0]["secretNames"],
        serde_json::json!(["HF_TOKEN"])
    );
}

fn wait_running(f: &FakeHf) -> String {
    let t = Instant::now();
    loop {
        let snap = f.state().snapshot();
        if let Some(j) = snap["jobs"].as_array().unwrap().first()
            && j["stage"] == "RUNNING"
        {
            return j["id"].as_str().unwrap().to_string();
        }
        assert!(t.elapsed() < LONG, "job never ran");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn cancel_is_forwarded_to_the_api() {
    let f = fake();
    let (_t, dir) = attempt_dir();
    prepare_hf_attempt(&dir, &sh("true"), &job(&f, "echo started; sleep 60")).unwrap();
    let mut child = sup(&dir).spawn().unwrap();
    let id = wait_running(&f);
    mlres_backends::cancel(&dir).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let s = finished(&dir);
    assert_eq!(s.outcome, Outcome::Cancelled, "{}", s.detail);
    let snap = f.state().snapshot();
    assert_eq!(snap["jobs"][0]["id"], id.as_str());
    assert_eq!(snap["jobs"][0]["stage"], "CANCELED");
}

#[test]
fn a_deleted_job_is_terminal() {
    let f = fake();
    let (_t, dir) = attempt_dir();
    prepare_hf_attempt(&dir, &sh("true"), &job(&f, "echo hi; sleep 60")).unwrap();
    let mut child = sup(&dir).spawn().unwrap();
    let id = wait_running(&f);
    f.state().set_stage(&id, "DELETED");
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let s = finished(&dir);
    assert_eq!(s.outcome, Outcome::Failed);
    assert!(s.detail.contains("deleted"), "{}", s.detail);
    assert_eq!(s.remote.unwrap().stage.as_deref(), Some("DELETED"));
}

#[test]
fn payment_required_is_a_start_failure_with_its_code() {
    let f = fake();
    f.state().set_credits("alice", 0);
    let (_t, dir) = attempt_dir();
    prepare_hf_attempt(&dir, &sh("true"), &job(&f, "echo hi")).unwrap();
    assert_eq!(sup(&dir).status().unwrap().code(), Some(0));
    let s = finished(&dir);
    assert_eq!(s.outcome, Outcome::StartFailed);
    assert!(s.detail.contains("402"), "{}", s.detail);
    let r = s.remote.unwrap();
    assert_eq!(r.error_code.as_deref(), Some("payment_required"));
    assert!(r.job_id.is_none());
    assert!(read_remote_job(&dir).unwrap().is_none());
    assert!(f.state().snapshot()["jobs"].as_array().unwrap().is_empty());
}

#[test]
fn claim_protocol_and_no_local_run() {
    let f = fake();
    // A voided attempt is never created remotely.
    let (_t, dir) = attempt_dir();
    prepare_hf_attempt(&dir, &sh("true"), &job(&f, "echo hi")).unwrap();
    assert!(claim_void(&dir).unwrap());
    assert_eq!(sup(&dir).status().unwrap().code(), Some(3));
    assert!(f.state().snapshot()["jobs"].as_array().unwrap().is_empty());
    // The local supervisor refuses an hf attempt (it would run the command on this machine).
    let (_t2, dir2) = attempt_dir();
    let marker = dir2.with_file_name("ran-locally");
    let j = job(&f, "true");
    prepare_hf_attempt(&dir2, &sh(&format!("touch {}", marker.display())), &j).unwrap();
    assert_eq!(crate::supervise_sync(&dir2), 2);
    assert!(!marker.exists());
    assert_eq!(poll(&dir2).unwrap(), AttemptState::NotClaimed);
    // Without a token the hf supervisor does nothing.
    let st = Command::new(SUP)
        .arg("supervise-hf")
        .arg(&dir2)
        .env_remove("MLRES_TEST_HF_TOKEN")
        .output()
        .unwrap();
    assert_eq!(st.status.code(), Some(2));
    assert!(f.state().snapshot()["jobs"].as_array().unwrap().is_empty());
}

#[test]
fn invalid_hf_specs_are_refused_before_anything_exists() {
    let f = fake();
    for bad in [
        HfJobFile {
            command: vec![],
            ..job(&f, "x")
        },
        HfJobFile {
            timeout_secs: 0,
            ..job(&f, "x")
        },
        HfJobFile {
            namespace: String::new(),
            ..job(&f, "x")
        },
        HfJobFile {
            endpoint: "ftp://nope".into(),
            ..job(&f, "x")
        },
    ] {
        let (_t, dir) = attempt_dir();
        assert!(matches!(
            prepare_hf_attempt(&dir, &sh("true"), &bad),
            Err(mlres_backends::BackendError::InvalidSpec(_))
        ));
        assert!(!dir.join("spec.json").exists());
    }
}
