use std::collections::BTreeMap;
use std::ops::ControlFlow;

use mlres_fakehf::FakeConfig;
use mlres_hf::{HfClient, JobInfo, JobStage, ListFilter};

use crate::errors::spec;
use crate::{client, fake, fake_with, no_canary};

fn sh(script: &str) -> mlres_hf::JobSpec {
    let mut s = spec();
    s.command = vec!["/bin/sh".into(), "-c".into(), script.into()];
    s
}

pub fn wait_terminal(c: &HfClient, ns: &str, id: &str) -> JobInfo {
    for _ in 0..2000 {
        let j = c.get_job(ns, id).unwrap();
        if j.is_terminal() {
            return j;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("job {id} did not end");
}

fn logs(c: &HfClient, id: &str) -> (Vec<String>, Option<JobStage>) {
    let mut lines = Vec::new();
    let end = c
        .stream_logs("alice", id, 0, &mut |l| {
            assert_eq!(l.index, lines.len());
            lines.push(l.text);
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(end.lines_seen, lines.len());
    (lines, end.stage)
}

#[test]
fn hardware_has_per_minute_prices_and_an_unpriced_flavor() {
    let f = fake_with(FakeConfig {
        unpriced_flavor: Some("cpu-unpriced".into()),
        ..FakeConfig::default()
    });
    let hw = client(&f).hardware().unwrap();
    let basic = hw.iter().find(|h| h.name == "cpu-basic").unwrap();
    assert_eq!(basic.micro_usd_per_minute(), Some(200));
    assert_eq!(basic.unit_label.as_deref(), Some("minute"));
    let a100 = hw.iter().find(|h| h.name == "a100-large").unwrap();
    assert_eq!(a100.micro_usd_per_minute(), Some(41_700));
    let unpriced = hw.iter().find(|h| h.name == "cpu-unpriced").unwrap();
    assert_eq!(unpriced.micro_usd_per_minute(), None);
}

#[test]
fn job_really_runs_with_only_its_env_and_logs_in_order() {
    let f = fake();
    let c = client(&f);
    let mut s =
        sh("echo one; echo \"v=$PLAIN s=$SECRET home=${HOSTNAME:-none}\"; echo two >&2; exit 0");
    s.environment.insert("PLAIN".into(), "p".into());
    s.secrets.insert("SECRET".into(), "sv".into());
    s.labels.insert("mlres-campaign".into(), "c1".into());
    let job = c.create_job("alice", &s).unwrap();
    assert_eq!(job.labels["mlres-campaign"], "c1");
    let (lines, stage) = logs(&c, &job.id);
    assert_eq!(stage, Some(JobStage::Completed));
    assert_eq!(lines.len(), 3, "{lines:?}");
    // stdout keeps its order; stderr is a separate pipe and may interleave anywhere.
    let out: Vec<&String> = lines.iter().filter(|l| *l != "two").collect();
    assert_eq!(out, vec!["one", "v=p s=sv home=none"], "{lines:?}");
    assert!(lines.contains(&"two".to_string()));
    let done = c.get_job("alice", &job.id).unwrap();
    assert_eq!(done.stage, JobStage::Completed);
    assert!(done.durations.running_secs.unwrap() >= 0.0);
    assert!(done.finished_at.is_some());
    // The fake keeps secret names only.
    let snap = f.state().snapshot();
    assert_eq!(
        snap["jobs"][0]["secretNames"],
        serde_json::json!(["SECRET"])
    );
    assert!(!snap.to_string().contains("\"sv\""));
}

#[test]
fn exit_code_timeout_and_cancel() {
    let f = fake();
    let c = client(&f);
    let failed = c.create_job("alice", &sh("exit 3")).unwrap();
    let j = wait_terminal(&c, "alice", &failed.id);
    assert_eq!(j.stage, JobStage::Error);
    assert!(j.message.unwrap().contains('3'));

    let mut slow = sh("sleep 30");
    slow.timeout_seconds = 1;
    let t = c.create_job("alice", &slow).unwrap();
    assert_eq!(wait_terminal(&c, "alice", &t.id).stage, JobStage::Error);

    let long = c.create_job("alice", &sh("sleep 30")).unwrap();
    c.cancel_job("alice", &long.id).unwrap();
    assert_eq!(
        wait_terminal(&c, "alice", &long.id).stage,
        JobStage::Canceled
    );
}

#[test]
fn list_filters_and_pagination_both_shapes() {
    for page in [2usize, 0] {
        let f = fake_with(FakeConfig {
            jobs_page_size: page,
            ..FakeConfig::default()
        });
        let c = client(&f);
        let mut ids = Vec::new();
        for i in 0..5 {
            let mut s = sh("true");
            s.labels.insert("exp".into(), format!("e{}", i % 2));
            ids.push(c.create_job("alice", &s).unwrap().id);
        }
        for id in &ids {
            wait_terminal(&c, "alice", id);
        }
        let all = c.list_jobs("alice", &ListFilter::default()).unwrap();
        assert_eq!(
            all.iter().map(|j| j.id.clone()).collect::<Vec<_>>(),
            ids,
            "page {page}"
        );
        let mut labels = BTreeMap::new();
        labels.insert("exp".to_string(), "e1".to_string());
        let e1 = c
            .list_jobs(
                "alice",
                &ListFilter {
                    labels,
                    stages: vec![],
                },
            )
            .unwrap();
        assert_eq!(e1.len(), 2);
        let running = c
            .list_jobs(
                "alice",
                &ListFilter {
                    labels: BTreeMap::new(),
                    stages: vec![JobStage::Running],
                },
            )
            .unwrap();
        assert!(running.is_empty());
    }
}

#[test]
fn deleted_ends_the_stream() {
    let f = fake();
    let c = client(&f);
    let job = c.create_job("alice", &sh("echo a; sleep 30")).unwrap();
    let st = f.state().clone();
    let id = job.id.clone();
    let h = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        st.set_stage(&id, "DELETED");
    });
    let (lines, stage) = logs(&c, &job.id);
    h.join().unwrap();
    assert_eq!(stage, Some(JobStage::Deleted));
    assert_eq!(lines, vec!["a".to_string()]);
}

#[test]
fn scheduled_jobs_are_never_called() {
    let f = fake();
    let c = client(&f);
    let j = c.create_job("alice", &sh("true")).unwrap();
    wait_terminal(&c, "alice", &j.id);
    c.list_jobs("alice", &ListFilter::default()).unwrap();
    assert_eq!(f.state().scheduled_calls(), 0);
    no_canary(&f.state().snapshot().to_string());
}

#[test]
fn job_info_decoder_accepts_snake_case_and_unknown_stage() {
    let j = JobInfo::from_json(
        r#"{"id":"x","owner":{"id":"1","name":"alice","type":"user"},"status":{"stage":"WEIRD"},
            "docker_image":"img","durations":{"running_secs":2}}"#,
    )
    .unwrap();
    assert_eq!(j.stage, JobStage::Other("WEIRD".into()));
    assert!(!j.is_terminal());
    assert_eq!(j.docker_image.as_deref(), Some("img"));
    assert_eq!(j.durations.running_secs, Some(2.0));
    assert!(JobInfo::from_json(r#"{"id":"x"}"#).is_err());
}

/// What `huggingface_hub` 1.4 to 1.12 sends for `hf jobs uv run train.py --lr 0.1` (from
/// `HfApi._create_uv_command_env_and_secrets`): the script's bytes in `LOCAL_FILES_ENCODED`
/// (`<name> <base64>`), decoded by a `bash -c` step before the quoted command runs.
#[test]
fn a_local_script_is_shipped_as_run_uv_job_ships_it_and_runs_in_the_fake() {
    use base64::Engine as _;
    let script = b"# /// script\n# requires-python = \">=3.10\"\n# dependencies = []\n# ///\nimport sys\nprint(open(__file__).read().splitlines()[0], sys.argv[1:])\n";
    let argv: Vec<String> = ["uv", "run", "train.py", "--lr", "0.1"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let (command, value) = mlres_hf::ship_local_files(&[("train.py", script)], &argv).unwrap();
    assert_eq!(
        command,
        [
            "bash",
            "-c",
            "echo $LOCAL_FILES_ENCODED | xargs -n 2 bash -c 'echo \"$1\" | base64 -d > \"$0\"' && 'uv' 'run' 'train.py' '--lr' '0.1'"
        ]
    );
    let b64 = base64::engine::general_purpose::STANDARD.encode(script);
    assert_eq!(value, format!("train.py {b64}"));
    // Quotes in a word survive the shell.
    assert_eq!(mlres_hf::shell_quote("it's"), r"'it'\''s'");

    // The fake runs it like a job container would (its `uv run` stand-in runs python3): the
    // decoded file is byte for byte the script, PEP 723 block included.
    let argv: Vec<String> = ["uv", "run", "train.py", "--lr", "it's"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let (command, value) = mlres_hf::ship_local_files(&[("train.py", script)], &argv).unwrap();
    let f = fake();
    let c = client(&f);
    let mut s = spec();
    s.command = command;
    s.environment
        .insert(mlres_hf::LOCAL_FILES_ENV.into(), value);
    let job = c.create_job("alice", &s).unwrap();
    let (lines, stage) = logs(&c, &job.id);
    assert_eq!(stage, Some(JobStage::Completed), "{lines:?}");
    assert_eq!(lines, ["# /// script ['--lr', \"it's\"]"], "{lines:?}");
}

#[test]
fn files_that_cannot_be_shipped_are_refused() {
    let argv = vec!["python3".to_string(), "t.py".to_string()];
    for name in ["", ".", "..", "src/t.py", "my script.py", "a\nb"] {
        let e = mlres_hf::ship_local_files(&[(name, b"x")], &argv).unwrap_err();
        assert!(e.contains("cannot be shipped"), "{name:?}: {e}");
    }
    let big = vec![b'x'; 100 * 1024];
    let e = mlres_hf::ship_local_files(&[("t.py", &big)], &argv).unwrap_err();
    assert!(e.contains("one environment variable may hold"), "{e}");
    assert!(mlres_hf::ship_local_files(&[], &argv).is_err());
}

/// `environment` is `dict[str, Any]` in `huggingface_hub`'s `run_job`: a job another client
/// started with numbers, booleans and nulls in it must not make the namespace's listing fail.
#[test]
fn a_foreign_job_with_non_string_env_values_lists_and_gets() {
    for page in [2usize, 0] {
        let f = fake_with(FakeConfig {
            jobs_page_size: page,
            ..FakeConfig::default()
        });
        let c = client(&f);
        let ours = c.create_job("alice", &sh("true")).unwrap().id;
        let foreign = mlres_fakehf::create_job_as(
            f.state(),
            crate::CANARY_TOKEN_VALUE,
            "alice",
            &serde_json::json!({
                "command": ["/bin/sh", "-c", "echo \"n=$N f=$F b=$B z=${Z-unset} s=$S\""],
                "arguments": [],
                "environment": {"N": 4, "F": 1.5, "B": true, "Z": null, "S": "x"},
                "flavor": "cpu-basic",
                "dockerImage": "python:3.12",
                "labels": {"owner": "someone-else"},
            }),
        )
        .unwrap();
        let foreign = foreign["id"].as_str().unwrap().to_string();
        assert_eq!(
            f.state()
                .lock()
                .jobs
                .iter()
                .find(|j| j.id == foreign)
                .unwrap()
                .environment["N"],
            serde_json::json!(4),
            "the fake keeps the value as sent"
        );
        let all = c.list_jobs("alice", &ListFilter::default()).unwrap();
        assert_eq!(
            all.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(),
            [ours.as_str(), foreign.as_str()],
            "page {page}"
        );
        let j = all.iter().find(|j| j.id == foreign).unwrap();
        assert_eq!(j.environment_names, ["B", "F", "N", "S", "Z"]);
        assert_eq!(j.labels["owner"], "someone-else");
        let done = wait_terminal(&c, "alice", &foreign);
        assert_eq!(done.environment_names.len(), 5);
        let (lines, _) = logs(&c, &foreign);
        assert_eq!(lines, ["n=4 f=1.5 b=true z=unset s=x"]);
    }
}

#[test]
fn job_info_decoder_is_lenient_about_foreign_values() {
    let j = JobInfo::from_json(
        r#"{"id":"j1","status":{"stage":"RUNNING"},"owner":{"name":"alice"},
            "environment":{"N":4,"B":false,"Z":null,"O":{"x":1},"A":[1]},
            "labels":{"n":7,"b":true,"z":null,"s":"v"}}"#,
    )
    .unwrap();
    assert_eq!(j.environment_names, ["A", "B", "N", "O", "Z"]);
    let labels: Vec<(&str, &str)> = j
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(labels, [("b", "true"), ("n", "7"), ("s", "v")]);
    // Still strict where a wrong shape means a different API: a job without an id.
    assert!(JobInfo::from_json(r#"{"status":{"stage":"RUNNING"},"owner":{"name":"a"}}"#).is_err());
}

/// Labels follow huggingface_hub's documented charset (`update_job_labels`: at most 100
/// alphanumerics, dashes and underscores): mlres refuses others before sending, and the fake
/// refuses them too.
#[test]
fn labels_outside_the_documented_charset_are_refused_before_sending() {
    assert!(mlres_hf::label_ok("mlres-campaign"));
    assert!(mlres_hf::label_ok("c-04690678-1"));
    assert!(mlres_hf::label_ok(&"a".repeat(100)));
    for bad in ["v1.2", "a b", "x/y", "é", &"a".repeat(101)] {
        assert!(!mlres_hf::label_ok(bad), "{bad}");
    }
    let f = fake();
    let c = client(&f);
    let before = f.state().snapshot()["requests"].as_array().unwrap().len();
    for (k, v) in [("version", "1.2"), ("", "x"), ("team", "a b")] {
        let mut s = sh("true");
        s.labels.insert(k.into(), v.into());
        let e = c.create_job("alice", &s).unwrap_err();
        assert!(e.to_string().contains("not sent"), "{e}");
    }
    assert_eq!(
        f.state().snapshot()["requests"].as_array().unwrap().len(),
        before,
        "nothing reached the server"
    );
    let refused = mlres_fakehf::create_job_as(
        f.state(),
        crate::CANARY_TOKEN_VALUE,
        "alice",
        &serde_json::json!({
            "command": ["true"], "environment": {}, "flavor": "cpu-basic",
            "dockerImage": "python:3.12", "labels": {"version": "1.2"},
        }),
    )
    .unwrap_err();
    assert_eq!(refused.0, 422, "{refused:?}");
}

fn api_requests(f: &mlres_fakehf::FakeHf) -> usize {
    f.state().snapshot()["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["path"].as_str().unwrap().starts_with("/api/"))
        .count()
}

/// Every API request (pages included) takes a token from the shared budget file; a second
/// client on the same file sees what the first spent; status polls stop at the last quarter
/// without sending anything, while normal requests may still use it.
#[test]
fn the_request_budget_counts_every_page_and_polls_leave_the_last_quarter() {
    use std::sync::Arc;

    use mlres_hf::{Priority, RequestBudget};
    let f = fake_with(FakeConfig {
        jobs_page_size: 2,
        ..FakeConfig::default()
    });
    let plain = client(&f);
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(plain.create_job("alice", &sh("true")).unwrap().id);
    }
    for id in &ids {
        wait_terminal(&plain, "alice", id);
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("budget");
    let budget = || Arc::new(RequestBudget::new(12, Some(file.clone())));
    let c = client(&f).with_request_budget(budget());
    // The bucket refills one token every 5 s: a slow machine may see that many more.
    let t0 = std::time::Instant::now();
    let refilled = || (t0.elapsed().as_secs() / 5) as usize;
    let before = api_requests(&f);
    let (jobs, pages) = c.list_jobs_paged("alice", &ListFilter::default()).unwrap();
    assert_eq!((jobs.len(), pages), (5, 3));
    assert_eq!(api_requests(&f) - before, 3);
    // Another process's view of the same file: 12 - 3 = 9 left.
    let other = budget();
    assert!((9..=9 + refilled()).contains(&(other.available().unwrap() as usize)));
    // Polls take tokens down to the last quarter (3 of 12), then skip without a request.
    let mut polled = 0;
    loop {
        let sent = api_requests(&f);
        match c.poll_job("alice", &ids[0]).unwrap() {
            Some(j) => {
                assert_eq!(j.id, ids[0]);
                assert_eq!(api_requests(&f), sent + 1);
                polled += 1;
            }
            None => {
                assert_eq!(api_requests(&f), sent, "a skipped poll sent a request");
                break;
            }
        }
        assert!(polled <= 6 + refilled(), "polls never stopped");
    }
    assert!((6..=6 + refilled()).contains(&polled), "{polled} polls");
    // Normal requests still get the reserved quarter.
    for id in &ids[..3] {
        c.get_job("alice", id).unwrap();
    }
    if refilled() == 0 {
        assert!(
            other.try_take(Priority::Normal).unwrap().is_err(),
            "the bucket should be empty"
        );
    }
    assert!(c.budget_failure().is_none());
}

/// A budget file that cannot be used never blocks a request (a cancel must go out); the
/// failure is kept for the caller to report.
#[test]
fn an_unusable_budget_file_does_not_block_requests() {
    use std::sync::Arc;

    use mlres_hf::RequestBudget;
    let f = fake();
    let dir = tempfile::tempdir().unwrap();
    // A directory where the file should be.
    let file = dir.path().join("budget");
    std::fs::create_dir(&file).unwrap();
    let c = client(&f).with_request_budget(Arc::new(RequestBudget::new(1, Some(file))));
    let id = c.create_job("alice", &sh("true")).unwrap().id;
    for _ in 0..3 {
        assert!(c.poll_job("alice", &id).unwrap().is_some());
    }
    let why = c.budget_failure().expect("the failure is reported");
    assert!(why.contains("budget"), "{why}");
}
