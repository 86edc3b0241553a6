//! The local backend's protections, observed end to end through the ledger.

use crate::support::{Env, Fast, code, stderr};

fn submit_and_wait(env: &Env, x: i64) -> (i32, serde_json::Value) {
    let e = env.json(&[
        "exp",
        "submit",
        "--config",
        &format!(r#"{{"x": {x}}}"#),
        "--hypothesis",
        "probe",
        "--json",
    ]);
    let id = e["id"].as_i64().unwrap().to_string();
    let out = env.run(&["exp", "wait", &id, "--json", "--timeout", "3m"]);
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", stderr(&out)));
    (code(&out), v)
}

fn logs(env: &Env, id: &serde_json::Value) -> String {
    String::from_utf8_lossy(&env.run(&["exp", "logs", &id.to_string()]).stdout).into_owned()
}

#[test]
fn a_job_cannot_see_the_parents_secrets_unless_granted() {
    let env = Env::new();
    env.write_program(
        &Fast {
            script: "env; echo score={x}",
            extra_job: "secrets: [MLRES_GRANTED]\nenv:\n  PLAIN: visible",
            ..Default::default()
        }
        .program(),
    );
    env.approve();
    let e = env
        .cmd()
        .env("MLRES_TEST_CANARY", "canary-7f3a9c1e-not-granted")
        .env("HF_TOKEN", "hf_canaryCANARYcanary0000")
        .env("MLRES_GRANTED", "granted-value-42")
        .args([
            "exp",
            "submit",
            "--config",
            r#"{"x": 1}"#,
            "--hypothesis",
            "env",
            "--json",
        ])
        .output()
        .unwrap();
    env.record(&["exp", "submit"], &e);
    assert!(e.status.success(), "{}", stderr(&e));
    let v: serde_json::Value = serde_json::from_slice(&e.stdout).unwrap();
    let id = v["id"].as_i64().unwrap().to_string();
    env.ok(&["exp", "wait", &id, "--timeout", "2m"]);
    let out = logs(&env, &v["id"]);
    assert!(out.contains("score=1"), "{out}");
    assert!(out.contains("PLAIN=visible"), "{out}");
    // The job received the granted secret; mlres redacts its value whenever it shows output.
    assert!(
        out.contains("MLRES_GRANTED=[REDACTED:MLRES_GRANTED]"),
        "granted secret missing: {out}"
    );
    assert!(
        !out.contains("granted-value-42"),
        "a granted secret's value was shown: {out}"
    );
    // Nothing mlres wrote anywhere (ledger, job dirs, exports) carries an ungranted secret.
    let mut stack = vec![env.path().to_path_buf()];
    let mut files = 0;
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                files += 1;
                let text = String::from_utf8_lossy(&bytes);
                assert!(
                    !text.contains("canary-7f3a9c1e"),
                    "canary in {}",
                    p.display()
                );
                assert!(
                    !text.contains("hf_canaryCANARY"),
                    "HF token canary in {}",
                    p.display()
                );
            }
        }
    }
    assert!(
        files > 5,
        "the scan must actually see the ledger and job files ({files})"
    );
    assert!(
        !out.contains("canary-7f3a9c1e"),
        "parent canary leaked: {out}"
    );
    assert!(!out.contains("hf_canary"), "HF token leaked: {out}");
}

#[test]
fn a_job_past_its_timeout_is_killed_with_its_children_and_recorded() {
    let env = Env::new();
    let pidfile = env.path().join("child.pid");
    let script = format!(
        "sleep 1000 & echo $! > {}; sleep 1000; echo score={{x}}",
        pidfile.display()
    );
    env.write_program(
        &Fast {
            script: &script,
            timeout: "2s",
            ..Default::default()
        }
        .program(),
    );
    env.approve();
    let (c, v) = submit_and_wait(&env, 1);
    assert_eq!(c, 5, "{v}");
    assert_eq!(v["status"], "timed_out", "{v}");
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let alive = std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z");
    assert!(!alive, "the job's child {pid} survived the timeout");
    let s = env.json(&["loop", "status", "--json"]);
    assert!(s["budget"]["walltime_secs"]["used"].as_u64().unwrap() <= 60);
}

#[test]
fn a_job_over_its_memory_limit_fails_cleanly_and_is_recorded() {
    let env = Env::new();
    env.write_program(
        &Fast {
            script: "python3 -c 'x = bytearray(1024 * 1024 * 1024); print(len(x))'; echo score={x}",
            extra_job: "limits:\n  memory: 256MiB",
            ..Default::default()
        }
        .program()
        // the job must fail when python fails
        .replace("'; echo score={x}", "' && echo score={x}"),
    );
    env.approve();
    let (c, v) = submit_and_wait(&env, 1);
    assert_eq!(c, 5, "{v}");
    assert_eq!(v["status"], "memory_exceeded", "{v}");
    assert_eq!(v["decision"], "discard");
    let v = env.json(&["ledger", "verify", "--json"]);
    assert_eq!(v["problems"].as_array().map(Vec::len), Some(0));
}

#[test]
fn with_isolation_a_job_cannot_open_a_tcp_connection() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let probe = format!(
        "python3 -c 'import socket; socket.create_connection((\\\"127.0.0.1\\\", {port}), timeout=3); print(\\\"connected\\\")' || echo blocked; echo score={{x}}"
    );
    // network: true is the control: the same probe connects.
    for (network, expect) in [
        ("network: false", "blocked"),
        ("network: true", "connected"),
    ] {
        let env = Env::new();
        env.write_program(
            &Fast {
                script: &probe,
                extra_job: network,
                ..Default::default()
            }
            .program(),
        );
        env.approve();
        let (c, v) = submit_and_wait(&env, 1);
        assert_eq!(c, 0, "{v}");
        let out = logs(&env, &v["id"]);
        assert!(out.contains(expect), "{network}: expected {expect}: {out}");
    }
}
