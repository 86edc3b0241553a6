use std::process::Stdio;

use crate::support::{Env, Fast, code};

/// Many parallel `exp submit` processes against a nearly spent envelope never exceed it.
#[test]
fn parallel_submits_never_exceed_the_envelope() {
    let env = Env::new();
    let values: Vec<String> = (1..=40).map(|i| i.to_string()).collect();
    let values = format!("[{}]", values.join(", "));
    env.write_program(
        &Fast {
            max_jobs: 10,
            max_concurrent: 100,
            values: &values,
            script: "echo score={x}",
            ..Default::default()
        }
        .program(),
    );
    env.approve();
    // Spend most of the envelope first.
    for x in 1..=7 {
        env.ok(&[
            "exp",
            "submit",
            "--config",
            &format!(r#"{{"x": {x}}}"#),
            "--hypothesis",
            "warm-up",
        ]);
    }
    // 24 racing submits for the last 3 slots.
    let children: Vec<_> = (8..32)
        .map(|x| {
            env.cmd()
                .args([
                    "exp",
                    "submit",
                    "--config",
                    &format!(r#"{{"x": {x}}}"#),
                    "--hypothesis",
                    "race",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut ok = 0;
    let mut refused = 0;
    for c in children {
        let out = c.wait_with_output().unwrap();
        match code(&out) {
            0 => ok += 1,
            3 => {
                refused += 1;
                assert!(String::from_utf8_lossy(&out.stderr).contains("max_jobs"));
            }
            other => panic!(
                "unexpected exit {other}: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }
    assert_eq!(ok, 3, "exactly the remaining budget may be spent");
    assert_eq!(refused, 21);
    let status = env.json(&["loop", "status", "--json"]);
    assert_eq!(status["budget"]["jobs"]["used"], 10);
    assert_eq!(status["experiments"].as_array().unwrap().len(), 10);
    let v = env.json(&["ledger", "verify", "--json"]);
    assert_eq!(v["problems"].as_array().map(Vec::len), Some(0), "{v}");
}
