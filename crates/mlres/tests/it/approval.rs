use crate::support::{Env, Fast, code, stderr};

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

#[test]
fn approval_without_a_terminal_needs_the_operator_flag() {
    let env = Env::new();
    env.write_program(&Fast::default().program());
    let out = env.run(&["approve"]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains("--operator"));
    let status = env.json(&["loop", "status", "--json"]);
    assert_eq!(status["approval"], "not approved");
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
