//! PostToolUse redaction.

use mlres_guard::post_tool_use_redact;

const TOKEN: &str = "hf_abcdefghijklmnopqrstuvwxyzABCDEFGH";

#[test]
fn redacts_hf_token_in_bash_output() {
    let input = serde_json::json!({
        "hook_event_name": "PostToolUse", "tool_name": "Bash",
        "tool_input": {"command": "cat x"},
        "tool_response": {"stdout": format!("token is {TOKEN}\n"), "stderr": "", "interrupted": false}
    })
    .to_string();
    let out = post_tool_use_redact(&input).expect("secret found");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["decision"], "block");
    assert_eq!(v["hookSpecificOutput"]["hookEventName"], "PostToolUse");
    let stdout = v["hookSpecificOutput"]["updatedToolOutput"]["stdout"]
        .as_str()
        .unwrap();
    assert_eq!(stdout, "token is [REDACTED:hf-token]\n");
    assert!(!out.contains(TOKEN));
    assert_eq!(
        v["hookSpecificOutput"]["updatedToolOutput"]["interrupted"],
        false
    );
}

#[test]
fn finds_other_secret_kinds() {
    for (secret, kind) in [
        (
            "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123",
            "anthropic-key",
        ),
        ("ghp_abcdefghijklmnopqrstuvwxyz0123456789", "github-token"),
        ("github_pat_11ABCDEFG0123456789_abcdefghijkl", "github-pat"),
        ("AKIAIOSFODNN7EXAMPLE", "aws-access-key"),
        (
            "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----",
            "private-key",
        ),
    ] {
        let input = serde_json::json!({"tool_response": format!("x {secret} y")}).to_string();
        let out = post_tool_use_redact(&input).unwrap_or_else(|| panic!("{kind} missed"));
        assert!(out.contains(kind), "{out}");
        assert!(!out.contains(secret), "{out}");
    }
}

#[test]
fn clean_or_malformed_output_gives_none() {
    assert_eq!(
        post_tool_use_redact(r#"{"tool_response":{"stdout":"loss 0.31 hf_hub_download ok"}}"#),
        None
    );
    assert_eq!(post_tool_use_redact("garbage"), None);
    assert_eq!(post_tool_use_redact(r#"{"tool_name":"Bash"}"#), None);
}
