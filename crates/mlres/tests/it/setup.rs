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

fn user_settings(env: &Env) -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(env.path().join(".claude/settings.json")).unwrap(),
    )
    .unwrap()
}

/// A Claude Code `excludedCommands` entry (Bash permission-rule syntax: exact, or a prefix
/// followed by ` *`) matches a command line.
fn excluded_by(pattern: &str, command: &str) -> bool {
    match pattern.strip_suffix(" *") {
        Some(prefix) => command == prefix || command.starts_with(&format!("{prefix} ")),
        None if pattern.ends_with('*') => command.starts_with(pattern.trim_end_matches('*')),
        None => command == pattern,
    }
}

#[test]
fn setup_claude_user_lets_only_the_broker_commands_out_of_the_sandbox() {
    let env = Env::new();
    env.cmd()
        .env_remove("CLAUDE_CONFIG_DIR")
        .args(["setup", "claude", "--user"])
        .output()
        .unwrap();
    let user = user_settings(&env);
    let sandbox = &user["sandbox"];
    let excluded: Vec<&str> = sandbox["excludedCommands"]
        .as_array()
        .unwrap_or_else(|| panic!("no sandbox.excludedCommands: {user}"))
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    let out = |c: &str| excluded.iter().any(|p| excluded_by(p, c));
    // What the skills run through Bash must reach the real state dir ...
    for command in [
        "mlres loop status --json",
        r#"mlres exp submit --config '{"x": 1}' --hypothesis 'h' --json"#,
        "mlres exp wait 1 --json --timeout 2m",
        "mlres exp logs 1 --stderr",
        "mlres loop run --json",
        "mlres loop stop --reason done",
        "mlres check",
        "mlres ledger verify --json",
    ] {
        assert!(out(command), "{command} stays sandboxed: {excluded:?}");
    }
    // ... and nothing else leaves the sandbox: approval and every other command stay inside it.
    for command in [
        "mlres approve",
        "mlres approve --operator",
        "mlres --state-dir /tmp/x approve --operator",
        "mlres hub files upload a b",
        "mlres",
        "python3 -c 'import mlres'",
        "sqlite3 ledger.sqlite3",
        "mlresx exp submit",
    ] {
        assert!(!out(command), "{command} leaves the sandbox: {excluded:?}");
    }
    // The sandbox still denies the state dir to every sandboxed command.
    let state = env.state.to_string_lossy().into_owned();
    assert!(
        sandbox["filesystem"]["denyWrite"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(state)),
        "{sandbox}"
    );
    assert_eq!(sandbox["failIfUnavailable"], true);
    // The env scrub would force every Bash command into the sandbox, excluded or not; the
    // credentials it strips are denied by name instead.
    assert!(
        user["env"]["CLAUDE_CODE_SUBPROCESS_ENV_SCRUB"].is_null(),
        "{user}"
    );
    let denied_env = sandbox["credentials"]["envVars"].to_string();
    for name in ["HF_TOKEN", "ANTHROPIC_API_KEY", "AWS_SECRET_ACCESS_KEY"] {
        assert!(denied_env.contains(name), "{name}: {denied_env}");
    }
}

#[test]
fn setup_claude_warns_about_a_leftover_env_scrub_and_keeps_it() {
    let env = Env::new();
    let user_file = env.path().join(".claude/settings.json");
    std::fs::create_dir_all(user_file.parent().unwrap()).unwrap();
    std::fs::write(
        &user_file,
        r#"{"env": {"CLAUDE_CODE_SUBPROCESS_ENV_SCRUB": "1"}}"#,
    )
    .unwrap();
    let out = env
        .cmd()
        .env_remove("CLAUDE_CONFIG_DIR")
        .args(["setup", "claude", "--user"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("warning:")
            && stderr(&out).contains("CLAUDE_CODE_SUBPROCESS_ENV_SCRUB is set"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        user_settings(&env)["env"]["CLAUDE_CODE_SUBPROCESS_ENV_SCRUB"],
        "1",
        "setup never removes a user's setting"
    );
    let v = env.json(&["setup", "claude", "--user", "--json"]);
    let conflicts = v["conflicts"].as_array().unwrap();
    assert_eq!(conflicts.len(), 1, "{v}");
}

#[cfg(target_os = "linux")]
#[test]
fn setup_claude_names_what_the_linux_sandbox_needs_and_detects_what_is_missing() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let bin = env.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let run = |path: &std::path::Path, json: bool| {
        let mut c = env.cmd();
        c.env("PATH", path).args(["setup", "claude", "--user"]);
        if json {
            c.arg("--json");
        }
        c.output().unwrap()
    };

    // Neither is on PATH: both are named, with the Debian/Ubuntu packages.
    let out = run(&bin, true);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let needs = &v["requirements"];
    assert_eq!(needs["ready"], false, "{needs}");
    assert_eq!(needs["missing"], serde_json::json!(["bubblewrap", "socat"]));
    assert_eq!(needs["install"], "sudo apt-get install -y bubblewrap socat");
    let human = run(&bin, false);
    assert_eq!(code(&human), 0, "{}", stderr(&human));
    let warn = stderr(&human);
    assert!(warn.contains("warning: bubblewrap"), "{warn}");
    assert!(warn.contains("warning: socat"), "{warn}");
    assert!(
        warn.contains("sudo apt-get install -y bubblewrap socat"),
        "{warn}"
    );

    // Installed, but bubblewrap cannot build a sandbox here: its own error is reported.
    let script = |name: &str, body: &str| {
        let p = bin.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    script("socat", "exit 0");
    script(
        "bwrap",
        "echo 'bwrap: setting up uid map: Permission denied' >&2; exit 1",
    );
    let v: serde_json::Value = serde_json::from_slice(&run(&bin, true).stdout).unwrap();
    let needs = &v["requirements"];
    assert_eq!(needs["ready"], false, "{needs}");
    assert_eq!(needs["missing"], serde_json::json!([]), "{needs}");
    let bwrap = &needs["needed"][0];
    assert_eq!(
        bwrap["found"],
        serde_json::json!(bin.join("bwrap")),
        "{bwrap}"
    );
    assert!(
        bwrap["problem"]
            .as_str()
            .is_some_and(|p| p.contains("setting up uid map: Permission denied")),
        "{bwrap}"
    );

    // Both work: ready, nothing to warn about.
    script("bwrap", "exit 0");
    let human = run(&bin, false);
    assert!(!stderr(&human).contains("warning"), "{}", stderr(&human));
    let v: serde_json::Value = serde_json::from_slice(&run(&bin, true).stdout).unwrap();
    assert_eq!(v["requirements"]["ready"], true, "{v}");
}

/// `mlres setup claude --user` as the human sees it, and the two files it wrote, with the
/// temp dir shown as `[TMP]` and the lists that are the same in every mode (research hosts,
/// denied credential variables) left out. `broker`: the `MLRES_BROKER_SOCKET` to set.
#[cfg(target_os = "linux")]
fn setup_claude_shown(env: &Env, broker: Option<&std::path::Path>) -> String {
    use std::os::unix::fs::PermissionsExt;
    // Stand-ins for what the Linux sandbox needs, so the output does not depend on the host.
    let bin = env.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for name in ["bwrap", "socat"] {
        let p = bin.join(name);
        std::fs::write(&p, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut c = env.cmd();
    c.env_remove("CLAUDE_CONFIG_DIR")
        .env_remove("MLRES_BROKER_SOCKET")
        .env("PATH", &bin)
        .args(["setup", "claude", "--user"]);
    if let Some(socket) = broker {
        c.env("MLRES_BROKER_SOCKET", socket);
    }
    let out = c.output().unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stderr(&out), "", "no warnings expected");
    let read = |p: std::path::PathBuf| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    let project = read(env.project.join(".claude/settings.json"));
    let mut user = user_settings(env);
    user["sandbox"]["network"]["allowedDomains"] = serde_json::json!("(research hosts)");
    user["sandbox"]["credentials"]["envVars"] = serde_json::json!("(denied credentials)");
    let stdout = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| match l.split_once("+ sandbox = ") {
            Some((indent, _)) => format!("{indent}+ sandbox = (as written, below)"),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    format!(
        "{stdout}\n\n## {{project}}/.claude/settings.json\n{}\n\n## ~/.claude/settings.json\n{}\n",
        serde_json::to_string_pretty(&project).unwrap(),
        serde_json::to_string_pretty(&user).unwrap()
    )
    .replace(&env.path().to_string_lossy().into_owned(), "[TMP]")
}

#[cfg(target_os = "linux")]
#[test]
fn setup_claude_in_broker_mode_reaches_the_socket_and_names_no_state_dir_of_its_own() {
    // Single-user mode: the user's state dir is denied, the mlres commands leave the sandbox.
    let single = Env::new();
    let shown = setup_claude_shown(&single, None);
    insta::assert_snapshot!("setup_claude_single_user", shown);

    // Broker mode from MLRES_BROKER_SOCKET alone: the socket is allowed, the user's own
    // (single-user) state dir is not what needs denying, and the broker's is not known here,
    // which the output says.
    let brokered = Env::new();
    let socket = brokered.path().join("run/broker.sock");
    let shown = setup_claude_shown(&brokered, Some(&socket));
    insta::assert_snapshot!("setup_claude_broker_socket_only", shown);
    assert!(shown.contains("\"allowUnixSockets\""), "{shown}");
    assert!(!shown.contains("[TMP]/state"), "{shown}");
    assert!(shown.contains("state dir is unknown here"), "{shown}");

    let v: serde_json::Value = serde_json::from_slice(
        &brokered
            .cmd()
            .env("MLRES_BROKER_SOCKET", &socket)
            .args(["setup", "claude", "--user", "--json", "--dry-run"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(v["mode"]["kind"], "broker", "{v}");
    assert_eq!(v["mode"]["state_dir_known"], false, "{v}");
    assert_eq!(v["mode"]["socket"], serde_json::json!(socket), "{v}");
}
