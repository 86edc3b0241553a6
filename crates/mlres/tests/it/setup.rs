use crate::support::{Env, code, stderr};

#[test]
fn setup_claude_adds_the_recommended_rules_once_and_keeps_user_settings() {
    let env = Env::new();
    let settings = env.project.join(".claude/settings.json");
    std::fs::create_dir_all(settings.parent().unwrap()).unwrap();
    std::fs::write(
        &settings,
        r#"{"permissions": {"deny": ["Bash(rm -rf *)"]}, "model": "opus"}"#,
    )
    .unwrap();

    let dry = env.json(&["setup", "claude", "--dry-run", "--json"]);
    assert_eq!(dry["files"][0]["written"], false);
    assert!(
        !std::fs::read_to_string(&settings)
            .unwrap()
            .contains("hf jobs"),
        "dry run wrote"
    );

    let out = env.ok(&["setup", "claude"]);
    assert!(
        out.contains("+ permissions.deny[] \"Bash(hf jobs *)\""),
        "{out}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&settings).unwrap()).unwrap();
    assert_eq!(v["model"], "opus", "existing settings are kept");
    let deny: Vec<&str> = v["permissions"]["deny"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert_eq!(deny[0], "Bash(rm -rf *)");
    for rule in [
        "Bash(mlres approve*)",
        "Bash(hf jobs *)",
        "Read(~/.cache/huggingface/**)",
        "Edit(/.claude/**)",
    ] {
        assert!(deny.contains(&rule), "missing {rule}: {deny:?}");
    }
    let state_rule = format!("Read(/{}/**)", env.state.display());
    assert!(
        deny.iter().any(|r| *r == state_rule),
        "the state dir must be unreadable: {deny:?}"
    );

    // Idempotent: a second run changes nothing.
    let again = env.json(&["setup", "claude", "--json"]);
    assert_eq!(
        again["files"][0]["changes"].as_array().unwrap().len(),
        0,
        "{again}"
    );

    // --user writes the sandbox block to the user settings (HOME is the test's temp dir).
    env.ok(&["setup", "claude", "--user"]);
    let user: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(env.path().join(".claude/settings.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(user["sandbox"]["enabled"], true);
    assert_eq!(user["sandbox"]["allowUnsandboxedCommands"], false);
    assert!(
        user["sandbox"]["credentials"]["envVars"]
            .to_string()
            .contains("HF_TOKEN")
    );
}

#[test]
fn setup_claude_refuses_to_overwrite_invalid_settings() {
    let env = Env::new();
    let settings = env.project.join(".claude/settings.json");
    std::fs::create_dir_all(settings.parent().unwrap()).unwrap();
    std::fs::write(&settings, "{ not json").unwrap();
    let out = env.run(&["setup", "claude"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("not valid JSON"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&settings).unwrap(), "{ not json");
}
