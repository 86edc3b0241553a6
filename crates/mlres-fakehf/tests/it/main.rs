//! Tests of the fake itself, over raw HTTP: strict job validation, billing, the binary's
//! first line, and that no token value reaches its state.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use mlres_fakehf::{CANARY_TOKEN, FakeConfig, FakeHf};

mod lfs;
mod research_papers;

struct Reply {
    status: u16,
    headers: String,
    body: String,
}

fn raw(url: &str, method: &str, path: &str, token: Option<&str>, body: &str) -> Reply {
    let addr = url.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    Reply {
        status,
        headers: head.to_string(),
        body: body.to_string(),
    }
}

fn fake() -> FakeHf {
    FakeHf::start(FakeConfig {
        work_root: Some(env!("CARGO_TARGET_TMPDIR").into()),
        scheduling_delay_ms: 1,
        ..FakeConfig::default()
    })
    .unwrap()
}

const OK: &str = r#"{"command":["true"],"arguments":[],"environment":{},"flavor":"cpu-basic","dockerImage":"python:3.12","timeoutSeconds":60,"labels":{"a":"b"}}"#;

#[test]
fn create_validates_like_a_server() {
    let f = fake();
    let post = |b: &str| raw(&f.url(), "POST", "/api/jobs/alice", Some(CANARY_TOKEN), b);
    assert_eq!(post(OK).status, 200);
    assert_eq!(post("{not json").status, 400);
    let bad = [
        OK.replace("60", "60.0"),
        OK.replace("60", "\"60\""),
        OK.replace("60", "-1"),
        OK.replace("cpu-basic", "cpu-nonexistent"),
        OK.replace(
            r#""dockerImage":"python:3.12""#,
            r#""dockerImage":"python:3.12","spaceId":"a/b""#,
        ),
        OK.replace(r#","dockerImage":"python:3.12""#, ""),
        OK.replace(r#""environment":{},"#, ""),
        OK.replace(r#""command":["true"]"#, r#""command":[]"#),
        OK.replace(r#"{"a":"b"}"#, r#"{"a b":"c"}"#),
        OK.replace(r#"{"a":"b"}"#, &format!(r#"{{"a":"{}"}}"#, "x".repeat(101))),
        OK.replace(r#""arguments":[]"#, r#""schedule":"@hourly""#),
    ];
    for b in &bad {
        let r = post(b);
        assert_eq!(r.status, 422, "{b}: {}", r.body);
    }
    let jobs = f.state().snapshot()["jobs"].as_array().unwrap().len();
    assert_eq!(jobs, 1, "only the valid body created a job");
}

#[test]
fn auth_errors_and_namespace_rights() {
    let f = fake();
    let r = raw(
        &f.url(),
        "GET",
        "/api/whoami-v2",
        Some("hf_mlresCANARYwrong"),
        "",
    );
    assert_eq!(r.status, 401);
    assert!(
        r.headers
            .contains("X-Error-Message: Invalid credentials in Authorization header")
    );
    let r = raw(&f.url(), "POST", "/api/jobs/bob", Some(CANARY_TOKEN), OK);
    assert_eq!(r.status, 403);
    let r = raw(
        &f.url(),
        "POST",
        "/api/jobs/acme-ml",
        Some(CANARY_TOKEN),
        OK,
    );
    assert_eq!(r.status, 200, "orgs of the user are writable");
    let r = raw(&f.url(), "GET", "/api/jobs/hardware", None, "");
    assert_eq!(r.status, 200);
    let snap = f.state().snapshot().to_string();
    assert!(!snap.contains("mlresCANARY"), "token in state: {snap}");
    assert!(snap.contains("authSha256"));
}

#[test]
fn billing_accrues_and_402_when_exhausted() {
    let f = fake();
    f.state().set_credits("alice", 1);
    let body = OK
        .replace(r#"["true"]"#, r#"["/bin/sh","-c","sleep 0.3"]"#)
        .replace("cpu-basic", "a100x8");
    let r = raw(
        &f.url(),
        "POST",
        "/api/jobs/alice",
        Some(CANARY_TOKEN),
        &body,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    for _ in 0..500 {
        if f.state().snapshot()["jobs"][0]["stage"] == "COMPLETED" {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let snap = f.state().snapshot();
    assert_eq!(snap["jobs"][0]["stage"], "COMPLETED");
    let cost = snap["jobs"][0]["costMicroUSD"].as_u64().unwrap();
    let running = snap["jobs"][0]["durations"]["runningSecs"]
        .as_f64()
        .unwrap();
    assert_eq!(cost, (running * 333_300.0 / 60.0).ceil() as u64);
    assert!(cost > 1);
    let r = raw(&f.url(), "POST", "/api/jobs/alice", Some(CANARY_TOKEN), OK);
    assert_eq!(r.status, 402);
    assert!(r.body.contains("credits"));
    assert_eq!(f.state().snapshot()["jobs"].as_array().unwrap().len(), 1);
}

#[test]
fn sse_tail_and_keepalive() {
    let f = FakeHf::start(FakeConfig {
        work_root: Some(env!("CARGO_TARGET_TMPDIR").into()),
        keepalive_ms: 20,
        scheduling_delay_ms: 1,
        ..FakeConfig::default()
    })
    .unwrap();
    let body = OK.replace(
        r#"["true"]"#,
        r#"["/bin/sh","-c","echo a; echo b; echo c; sleep 0.2"]"#,
    );
    let r = raw(
        &f.url(),
        "POST",
        "/api/jobs/alice",
        Some(CANARY_TOKEN),
        &body,
    );
    let id = serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    std::thread::sleep(Duration::from_millis(100));
    let r = raw(
        &f.url(),
        "GET",
        &format!("/api/jobs/alice/{id}/logs?tail=2"),
        Some(CANARY_TOKEN),
        "",
    );
    assert_eq!(r.status, 200);
    assert!(r.headers.contains("text/event-stream"));
    assert!(r.body.contains(": keep-alive"), "{}", r.body);
    let datas: Vec<&str> = r.body.lines().filter(|l| l.starts_with("data: ")).collect();
    assert_eq!(datas.len(), 2, "{datas:?}");
    assert!(datas[0].contains("\"b\"") && datas[1].contains("\"c\""));
}

#[test]
fn binary_prints_its_url_first() {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mlres-fakehf"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    assert!(url.starts_with("http://127.0.0.1:"));
    let r = raw(&url, "GET", "/api/jobs/hardware", None, "");
    child.kill().unwrap();
    let _ = child.wait();
    assert_eq!(r.status, 200);
    assert!(r.body.contains("unitCostMicroUSD"));
}

/// The body `huggingface_hub` 1.4 to 1.12 posts for `hf jobs uv run --secrets HF_TOKEN
/// train.py --lr 0.1` (`HfApi.run_uv_job` → `_create_uv_command_env_and_secrets` →
/// `_create_job_spec`): the local script travels base64-encoded in `LOCAL_FILES_ENCODED` and a
/// `bash -c` step decodes it before `uv run`. The fake accepts exactly that and runs it (its
/// `uv` stand-in runs the script with python3).
#[test]
fn a_run_uv_job_local_script_body_is_accepted_and_runs() {
    let f = fake();
    // base64 of: # /// script\n# dependencies = ["cowsay"]\n# ///\nprint("hi")\n
    let body = r#"{"command":["bash","-c","echo $LOCAL_FILES_ENCODED | xargs -n 2 bash -c 'echo \"$1\" | base64 -d > \"$0\"' && uv run 'train.py' '--lr' '0.1'"],"arguments":[],"environment":{"LOCAL_FILES_ENCODED":"train.py IyAvLy8gc2NyaXB0CiMgZGVwZW5kZW5jaWVzID0gWyJjb3dzYXkiXQojIC8vLwpwcmludCgiaGkiKQo="},"flavor":"cpu-basic","secrets":{"HF_TOKEN":"hf_notarealtoken"},"timeoutSeconds":1800,"dockerImage":"ghcr.io/astral-sh/uv:python3.12-bookworm"}"#;
    let r = raw(
        &f.url(),
        "POST",
        "/api/jobs/alice",
        Some(CANARY_TOKEN),
        body,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let id = serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut stage = String::new();
    for _ in 0..2000 {
        let j = f.state().snapshot()["jobs"][0].clone();
        stage = j["stage"].as_str().unwrap_or_default().to_string();
        if ["COMPLETED", "ERROR"].contains(&stage.as_str()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let logs = raw(
        &f.url(),
        "GET",
        &format!("/api/jobs/alice/{id}/logs"),
        Some(CANARY_TOKEN),
        "",
    );
    assert_eq!(stage, "COMPLETED", "{}", logs.body);
    assert!(logs.body.contains("hi"), "{}", logs.body);
}
