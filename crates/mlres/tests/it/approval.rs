use crate::support::{CommandExt2, Env, Fast, code, stderr};

#[test]
fn submit_needs_approval_and_a_changed_envelope_is_refused_until_reapproved() {
    let env = Env::new();
    env.write_program(&Fast::default().program());

    // Never approved: refused, nothing reserved.
    let out = env.run(&[
        "exp",
        "submit",
        "--config",
        r#"{"x": 1}"#,
        "--hypothesis",
        "h",
    ]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("never been approved"),
        "{}",
        stderr(&out)
    );

    env.approve();
    let e = env.json(&[
        "exp",
        "submit",
        "--config",
        r#"{"x": 1}"#,
        "--hypothesis",
        "first",
        "--json",
    ]);
    let id = e["id"].as_i64().unwrap();
    let done = env.json(&["exp", "wait", &id.to_string(), "--json", "--timeout", "2m"]);
    assert_eq!(done["metric"].as_f64(), Some(1.0));

    // Widen the envelope behind the human's back.
    let widened = Fast {
        max_jobs: 60,
        ..Default::default()
    }
    .program();
    env.write_program(&widened);
    let out = env.run(&[
        "exp",
        "submit",
        "--config",
        r#"{"x": 2}"#,
        "--hypothesis",
        "second",
    ]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("changed since it was approved"), "{err}");
    assert!(
        err.contains("60"),
        "the diff must show the new value: {err}"
    );
    let status = env.json(&["loop", "status", "--json"]);
    assert_eq!(
        status["budget"]["jobs"]["used"], 1,
        "a refused submit must not reserve"
    );
    assert_eq!(status["approval"], "changed since approval");

    // The loop is refused too.
    let out = env.run(&["loop", "run"]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));

    // A human approves again: submitting works.
    env.approve();
    let e = env.json(&[
        "exp",
        "submit",
        "--config",
        r#"{"x": 2}"#,
        "--hypothesis",
        "second",
        "--json",
    ]);
    assert_eq!(e["state"], "submitted");
}

#[test]
fn changing_the_job_template_or_search_space_also_needs_reapproval() {
    let env = Env::new();
    env.write_program(&Fast::default().program());
    env.approve();
    for changed in [
        Fast {
            script: "echo score={x}; echo extra",
            ..Default::default()
        }
        .program(),
        Fast {
            values: "[1, 2, 3, 4, 5, 6, 7]",
            ..Default::default()
        }
        .program(),
        Fast {
            timeout: "2m",
            ..Default::default()
        }
        .program(),
    ] {
        env.write_program(&changed);
        let out = env.run(&[
            "exp",
            "submit",
            "--config",
            r#"{"x": 1}"#,
            "--hypothesis",
            "h",
        ]);
        assert_eq!(code(&out), 3, "{}", stderr(&out));
    }
    // Prose outside the authorised parts does not need re-approval.
    env.write_program(
        &Fast::default()
            .program()
            .replace("Maximise score.", "Maximise the score, please."),
    );
    let out = env.run(&[
        "exp",
        "submit",
        "--config",
        r#"{"x": 1}"#,
        "--hypothesis",
        "h",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

/// Approvals are human-only: without the approval secret nothing is approved, whatever the
/// flags, the terminal or the way the secret is guessed; with it, the approval records who,
/// how, from which uid and what changed.
#[test]
fn approval_needs_the_human_secret() {
    let env = Env::new();
    env.write_program(&Fast::default().program());
    let not_approved = |env: &Env| {
        let status = env.json(&["loop", "status", "--json"]);
        assert_eq!(status["approval"], "not approved", "{status}");
    };
    // No secret set yet: nothing approves, and the refusal says how a human sets one.
    let out = env.run(&["approve", "--secret-file", &env.secret_file()]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains("setup approver"), "{}", stderr(&out));
    // `--operator` alone is not enough (it used to be).
    let out = env.run(&["approve", "--operator"]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains("approval secret"), "{}", stderr(&out));
    env.set_secret();
    // No terminal and no secret source: refused (stdin is not read, even if it says so).
    let mut child = env
        .cmd()
        .arg("approve")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .setsid_if_possible()
        .spawn()
        .unwrap();
    use std::io::Write as _;
    let _ = child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("approve\n{}\n", crate::support::SECRET).as_bytes());
    let out = child.wait_with_output().unwrap();
    env.record(&["approve", "stdin"], &out);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains("needs a human"), "{}", stderr(&out));
    not_approved(&env);
    // A faked terminal (`script` gives the command a pty) with the old answer typed in, and a
    // guess: refused like any wrong secret.
    let cmdline = format!(
        "{} -C {} approve",
        crate::support::BIN,
        env.project.display()
    );
    let mut faker = std::process::Command::new("script");
    faker
        .args(["-qec", &cmdline, "/dev/null"])
        .env("MLRES_STATE_DIR", &env.state)
        .env("HOME", env.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .setsid_if_possible();
    let mut child = faker.spawn().expect("script(1) from util-linux");
    let _ = child
        .stdin
        .take()
        .unwrap()
        .write_all(b"approve\nguessed-secret-1\n");
    let out = child.wait_with_output().unwrap();
    env.record(&["approve", "script"], &out);
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert_ne!(code(&out), 0, "{all}");
    assert!(
        all.contains("Approval secret"),
        "it asked on the (fake) terminal: {all}"
    );
    assert!(all.contains("did not match"), "{all}");
    not_approved(&env);
    // A wrong secret, from a file and from a descriptor: refused and recorded.
    let wrong = env.path().join("wrong");
    std::fs::write(&wrong, "not-the-secret-123\n").unwrap();
    std::fs::set_permissions(&wrong, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let out = env.run(&["approve", "--secret-file", wrong.to_str().unwrap()]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains("did not match"), "{}", stderr(&out));
    let out = env
        .cmd()
        .args(["approve", "--secret-fd", "3"])
        .fd3_from(&wrong)
        .output()
        .unwrap();
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    not_approved(&env);
    // A secret file others can read is refused before it is read.
    let loose = env.path().join("loose");
    std::fs::write(&loose, format!("{}\n", crate::support::SECRET)).unwrap();
    std::fs::set_permissions(&loose, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let out = env.run(&["approve", "--secret-file", loose.to_str().unwrap()]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains("chmod 600"), "{}", stderr(&out));
    not_approved(&env);
    // The right secret through a descriptor approves, and the record says who and how.
    let right = std::path::PathBuf::from(env.secret_file());
    let out = env
        .cmd()
        .args(["approve", "--secret-fd", "3", "--json"])
        .fd3_from(&right)
        .output()
        .unwrap();
    env.record(&["approve", "fd"], &out);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(j["approver"].as_str().unwrap().contains("(fd, uid "), "{j}");
    let events = env.json(&["ledger", "events", "--json"]);
    let events = events.as_array().unwrap();
    let refused = events
        .iter()
        .filter(|e| e["kind"] == "approval_refused")
        .count();
    assert_eq!(refused, 3, "every wrong secret is on record");
    let ctx = events
        .iter()
        .find(|e| e["kind"] == "approval_context")
        .expect("approval context");
    assert_eq!(ctx["payload"]["method"], "fd", "{ctx}");
    assert!(ctx["payload"]["uid"].is_u64(), "{ctx}");
    assert!(
        ctx["payload"]["diff"]
            .as_str()
            .unwrap()
            .contains("first approval"),
        "{ctx}"
    );
    // The secret itself is nowhere in the state dir or the events.
    let dump = serde_json::to_string(events).unwrap();
    assert!(!dump.contains(crate::support::SECRET));
    for entry in std::fs::read_dir(&env.state).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            let bytes = std::fs::read(&p).unwrap();
            assert!(
                !String::from_utf8_lossy(&bytes).contains(crate::support::SECRET),
                "{}",
                p.display()
            );
        }
    }
    // A changed program's approval records the diff that was approved.
    env.write_program(
        &Fast {
            max_jobs: 5,
            ..Default::default()
        }
        .program(),
    );
    env.approve();
    let events = env.json(&["ledger", "events", "--json"]);
    let last_ctx = events
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|e| e["kind"] == "approval_context")
        .unwrap()
        .clone();
    assert!(
        last_ctx["payload"]["diff"]
            .as_str()
            .unwrap()
            .contains("max_jobs"),
        "{last_ctx}"
    );
}

/// Changing the secret needs the current one; the old one stops working.
#[test]
fn changing_the_approval_secret_needs_the_current_one() {
    let env = Env::new();
    env.write_program(&Fast::default().program());
    env.set_secret();
    let new = env.path().join("new-secret");
    std::fs::write(&new, "a-brand-new-secret-99\n").unwrap();
    std::fs::set_permissions(&new, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let wrong = env.path().join("wrong");
    std::fs::write(&wrong, "not-the-secret-123\n").unwrap();
    std::fs::set_permissions(&wrong, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let new_s = new.to_str().unwrap();
    let out = env.run(&[
        "setup",
        "approver",
        "--secret-file",
        new_s,
        "--current-secret-file",
        wrong.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    // Without a current secret (and no terminal): refused too.
    let out = env.run(&["setup", "approver", "--secret-file", new_s]);
    assert_ne!(code(&out), 0, "{}", stderr(&out));
    // Too short a secret is refused.
    let short = env.path().join("short");
    std::fs::write(&short, "abc\n").unwrap();
    std::fs::set_permissions(&short, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let out = env.run(&[
        "setup",
        "approver",
        "--secret-file",
        short.to_str().unwrap(),
        "--current-secret-file",
        &env.secret_file(),
    ]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains("at least 8"), "{}", stderr(&out));
    env.ok(&[
        "setup",
        "approver",
        "--secret-file",
        new_s,
        "--current-secret-file",
        &env.secret_file(),
    ]);
    let out = env.run(&["approve", "--secret-file", &env.secret_file()]);
    assert_eq!(
        code(&out),
        3,
        "the old secret no longer approves: {}",
        stderr(&out)
    );
    env.ok(&["approve", "--secret-file", new_s]);
    // Replacing the hash file behind the ledger's back is noticed, not trusted.
    std::fs::write(
        env.state.join("approver.phc"),
        "$argon2id$v=19$m=8,t=1,p=1$AAAA$BBBB\n",
    )
    .unwrap();
    let out = env.run(&["approve", "--secret-file", new_s]);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
}

#[test]
fn a_finished_campaign_is_not_refilled_without_a_new_approval() {
    let env = Env::new();
    env.write_program(
        &Fast {
            max_jobs: 2,
            values: "[1, 2]",
            ..Default::default()
        }
        .program(),
    );
    env.approve();
    env.ok(&["loop", "run"]);
    // The budget is spent; an agent cannot get a new one by submitting again.
    let out = env.run(&[
        "exp",
        "submit",
        "--config",
        r#"{"x": 1}"#,
        "--hypothesis",
        "again",
    ]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let out = env.run(&["loop", "run", "--fresh"]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    // A human approval opens the next campaign.
    env.approve();
    env.ok(&["loop", "run", "--fresh"]);
}
