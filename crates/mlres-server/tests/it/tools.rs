use serde_json::{Value, json};

use crate::support::{Harness, program};

#[tokio::test]
async fn lists_every_tool_with_a_schema_and_no_approval_tool() {
    let h = Harness::start(Some(&program("[1, 2, 3]")), false).await;
    let tools = h.client.list_all_tools().await.expect("tools/list");
    let mut names: Vec<String> = tools.iter().map(|t| t.name.to_string()).collect();
    names.sort();
    let mut want: Vec<String> = mlres_server::tool_names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    want.sort();
    assert_eq!(names, want);
    for t in &tools {
        let lower = t.name.to_lowercase();
        assert!(
            !lower.contains("approv") && !lower.contains("authori"),
            "approval is human-only, but the server offers {}",
            t.name
        );
        let d = t.description.as_deref().unwrap_or("");
        assert!(
            d.len() > 40,
            "{} needs a description that teaches the workflow",
            t.name
        );
        assert_eq!(
            t.input_schema.get("type"),
            Some(&json!("object")),
            "{}",
            t.name
        );
    }
    let schema = |name: &str| -> Value {
        let t = tools.iter().find(|t| t.name == name).unwrap();
        Value::Object((*t.input_schema).clone())
    };
    let submit = schema("exp_submit");
    assert_eq!(submit["properties"]["config"]["type"], "object", "{submit}");
    assert_eq!(submit["properties"]["hypothesis"]["type"], "string");
    let required: Vec<&str> = submit["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(required.contains(&"config") && required.contains(&"hypothesis"));
    let logs = schema("exp_logs");
    let stream = serde_json::to_string(&logs).unwrap();
    assert!(
        stream.contains("stdout") && stream.contains("stderr"),
        "{logs}"
    );
    assert!(
        stream.contains("262144"),
        "tail_bytes cap in the schema: {logs}"
    );
    let wait = schema("exp_wait");
    assert!(
        serde_json::to_string(&wait).unwrap().contains("3600"),
        "{wait}"
    );
    assert_eq!(schema("loop_status")["properties"], json!({}));

    let info = h.client.peer_info().expect("server info");
    assert_eq!(
        info.server_info.as_ref().map(|i| i.name.as_str()),
        Some("mlres")
    );
    let instructions = info.instructions.clone().unwrap_or_default();
    assert!(instructions.contains("broker"), "{instructions}");
    assert!(instructions.contains("human-only"), "{instructions}");
    assert!(instructions.contains("enforced"), "{instructions}");
    h.close().await;
}

#[tokio::test]
async fn unapproved_program_refuses_submit_as_a_tool_error() {
    let h = Harness::start(Some(&program("[1, 2, 3]")), false).await;
    let msg = h
        .tool_error("exp_submit", json!({"config": {"x": 1}, "hypothesis": "h"}))
        .await;
    assert!(msg.contains("never been approved"), "{msg}");
    assert!(msg.contains("mlres approve"), "{msg}");
    let status = h.json("loop_status", json!({})).await;
    assert_eq!(status["approval"], "not approved");
    assert_eq!(status["experiments"], json!([]));
    h.close().await;
}

#[tokio::test]
async fn changed_program_refuses_with_the_diff() {
    let h = Harness::start(Some(&program("[1, 2, 3]")), true).await;
    std::fs::write(h.project.join("program.md"), program("[1, 2, 3, 1000]")).unwrap();
    let msg = h
        .tool_error(
            "exp_submit",
            json!({"config": {"x": 1000}, "hypothesis": "sneaky"}),
        )
        .await;
    assert!(msg.contains("changed since it was approved"), "{msg}");
    assert!(msg.contains("1000"), "the diff names the change: {msg}");
    h.close().await;
}

#[tokio::test]
async fn invalid_config_is_a_tool_error_and_spends_nothing() {
    let h = Harness::start(Some(&program("[1, 2, 3]")), true).await;
    let msg = h
        .tool_error(
            "exp_submit",
            json!({"config": {"x": 99}, "hypothesis": "outside"}),
        )
        .await;
    assert!(msg.starts_with("invalid config"), "{msg}");
    assert!(msg.contains("Nothing was spent"), "{msg}");
    let msg = h
        .tool_error(
            "exp_submit",
            json!({"config": {"x": 1, "y": 2}, "hypothesis": "extra"}),
        )
        .await;
    assert!(msg.contains("invalid config"), "{msg}");
    let status = h.json("loop_status", json!({})).await;
    assert_eq!(status["approval"], "approved");
    assert_eq!(status["budget"]["jobs"]["used"], 0, "{status}");
    assert_eq!(status["experiments"], json!([]));
    let verify = h.json("ledger_verify", json!({})).await;
    assert_eq!(verify["ok"], true, "{verify}");
    assert!(
        verify["events"].as_u64().unwrap() >= 1,
        "the approval is an event: {verify}"
    );
    h.close().await;
}

#[tokio::test]
async fn unknown_experiment_is_a_tool_error_for_every_experiment_tool() {
    let h = Harness::start(Some(&program("[1, 2, 3]")), true).await;
    for tool in ["exp_status", "exp_evaluate", "exp_wait", "exp_logs"] {
        let msg = h.tool_error(tool, json!({"id": 424242})).await;
        assert!(msg.contains("no experiment 424242"), "{tool}: {msg}");
    }
    h.close().await;
}

#[tokio::test]
async fn out_of_range_limits_are_tool_errors() {
    let h = Harness::start(Some(&program("[1, 2, 3]")), true).await;
    let msg = h
        .tool_error("exp_wait", json!({"id": 1, "timeout_secs": 3601}))
        .await;
    assert!(
        msg.contains("timeout_secs") && msg.contains("3600"),
        "{msg}"
    );
    let msg = h
        .tool_error("exp_wait", json!({"id": 1, "timeout_secs": 0}))
        .await;
    assert!(msg.contains("timeout_secs"), "{msg}");
    let msg = h
        .tool_error("exp_logs", json!({"id": 1, "tail_bytes": 262145}))
        .await;
    assert!(msg.contains("tail_bytes"), "{msg}");
    h.close().await;
}

#[tokio::test]
async fn malformed_arguments_and_unknown_tools_are_rejected() {
    let h = Harness::start(Some(&program("[1, 2, 3]")), true).await;
    // Wrong shapes never reach the engine: config must be an object, hypothesis is required,
    // unknown fields are refused, the stream is an enum.
    for (tool, args) in [
        (
            "exp_submit",
            json!({"config": "{\"x\": 1}", "hypothesis": "h"}),
        ),
        ("exp_submit", json!({"config": {"x": 1}})),
        ("exp_status", json!({"id": 1, "extra": true})),
        ("exp_logs", json!({"id": 1, "stream": "stdin"})),
        ("approve", json!({})),
    ] {
        let r = h.try_call(tool, args.clone()).await;
        let rejected = match &r {
            Err(_) => true,
            Ok(res) => res.is_error == Some(true),
        };
        assert!(rejected, "{tool} {args} was accepted: {r:?}");
    }
    let status = h.json("loop_status", json!({})).await;
    assert_eq!(status["budget"]["jobs"]["used"], 0);
    h.close().await;
}

#[tokio::test]
async fn check_program_returns_the_pinned_document() {
    let h = Harness::start(Some(&program("[1, 2, 3]")), false).await;
    let v = h.json("check_program", json!({})).await;
    let project = mlres_engine::Project::load(&h.project).unwrap();
    assert_eq!(v["hash"], project.hash);
    assert_eq!(v["grid_size"], 3);
    assert!(v["program"].as_str().unwrap().ends_with("program.md"));
    let doc = serde_json::to_string(&v["campaign"]).unwrap();
    assert!(doc.contains("max_jobs"), "{doc}");
    h.close().await;
}

#[tokio::test]
async fn missing_or_broken_program_is_a_tool_error() {
    let h = Harness::start(None, false).await;
    for tool in ["loop_status", "check_program"] {
        let msg = h.tool_error(tool, json!({})).await;
        assert!(msg.contains("no program.md"), "{tool}: {msg}");
    }
    std::fs::write(
        h.project.join("program.md"),
        "## Budget envelope\n```yaml\nmax_jobs: [\n```\n",
    )
    .unwrap();
    let msg = h.tool_error("check_program", json!({})).await;
    assert!(msg.contains("program.md"), "{msg}");
    // The ledger itself is fine and can still be verified.
    let v = h.json("ledger_verify", json!({})).await;
    assert_eq!(v["ok"], true);
    h.close().await;
}

#[tokio::test]
async fn loop_stop_without_a_campaign_is_a_tool_error_and_with_one_stops_it() {
    let h = Harness::start(Some(&program("[1, 2, 3]")), true).await;
    let msg = h
        .tool_error("loop_stop", json!({"drain": false, "reason": "done"}))
        .await;
    assert!(msg.contains("no campaign"), "{msg}");
    // A submit refused for its config opens nothing: the campaign is opened in the same
    // transaction as the first reservation.
    h.tool_error(
        "exp_submit",
        json!({"config": {"x": 99}, "hypothesis": "h"}),
    )
    .await;
    let msg = h
        .tool_error("loop_stop", json!({"drain": false, "reason": "done"}))
        .await;
    assert!(msg.contains("no campaign"), "{msg}");
    // A valid first submit opens it and reserves (this harness has no supervisor binary, so
    // the launch itself fails after the reservation); then stop it.
    let msg = h
        .tool_error(
            "exp_submit",
            json!({"config": {"x": 1}, "hypothesis": "opens the campaign"}),
        )
        .await;
    assert!(msg.contains("supervisor"), "{msg}");
    let v = h
        .json(
            "loop_stop",
            json!({"drain": true, "reason": "agent: objective met"}),
        )
        .await;
    assert_eq!(v["stop_requested"], true);
    assert_eq!(v["cancelled"], 0);
    let msg = h
        .tool_error(
            "exp_submit",
            json!({"config": {"x": 1}, "hypothesis": "after stop"}),
        )
        .await;
    assert!(msg.contains("campaign"), "{msg}");
    let status = h.json("loop_status", json!({})).await;
    assert_eq!(status["budget"]["jobs"]["used"], 1);
    h.close().await;
}

#[tokio::test]
async fn a_tampered_ledger_is_reported_as_a_tool_error() {
    let h = Harness::start(Some(&program("[1, 2, 3]")), true).await;
    let ok = h.json("ledger_verify", json!({})).await;
    assert_eq!(ok["ok"], true);
    // Change the HMAC key behind the ledger's back: every recorded event's HMAC then fails.
    let key = h.cfg.state_dir.join("ledger.key");
    let mut k = std::fs::read(&key).unwrap();
    k.iter_mut().for_each(|b| *b ^= 0x5a);
    std::fs::write(&key, k).unwrap();
    let r = h.call("ledger_verify", json!({})).await;
    assert_eq!(r.is_error, Some(true), "{}", crate::support::text(&r));
    let v: Value = serde_json::from_str(&crate::support::text(&r)).unwrap();
    assert_eq!(v["ok"], false);
    assert!(!v["problems"].as_array().unwrap().is_empty());
    h.close().await;
}

#[tokio::test]
async fn exp_suggest_proposes_without_submitting() {
    let h = Harness::start(Some(&program("[1, 2, 3]")), false).await;
    let msg = h.tool_error("exp_suggest", json!({})).await;
    assert!(msg.contains("never been approved"), "{msg}");
    h.close().await;

    let h = Harness::start(Some(&program("[1, 2, 3]")), true).await;
    let out = h.json("exp_suggest", json!({"n": 2})).await;
    let s = out["suggestions"].as_array().expect("list");
    assert_eq!(s.len(), 2, "{out}");
    assert_eq!(s[0]["config"], json!({"x": 1}));
    assert_eq!(s[1]["config"], json!({"x": 2}));
    assert_eq!(s[0]["method"], "grid");
    assert!(
        s[0]["hypothesis"]
            .as_str()
            .unwrap()
            .starts_with("grid point 1/3"),
        "{out}"
    );
    // Nothing was reserved or spent.
    let status = h.json("loop_status", json!({})).await;
    assert_eq!(status["budget"]["jobs"]["used"], 0, "{status}");
    assert_eq!(status["experiments"], json!([]));
    let msg = h.tool_error("exp_suggest", json!({"n": 0})).await;
    assert!(msg.contains("between 1 and 100"), "{msg}");
    let msg = h.tool_error("exp_suggest", json!({"count": 2})).await;
    assert!(msg.contains("count"), "{msg}");
    h.close().await;

    // tpe over a list: the suggestions are distinct members of it.
    let tpe = program("[1, 2, 3, 4, 5]").replace("method: grid", "method: tpe");
    let h = Harness::start(Some(&tpe), true).await;
    let out = h.json("exp_suggest", json!({"n": 5})).await;
    let mut xs: Vec<i64> = out["suggestions"]
        .as_array()
        .expect("list")
        .iter()
        .map(|s| s["config"]["x"].as_i64().expect("x"))
        .collect();
    xs.sort();
    assert_eq!(xs, vec![1, 2, 3, 4, 5], "{out}");
    assert_eq!(out["suggestions"][0]["method"], "tpe");
    h.close().await;
}
