//! API contract: malformed input, render shape, huge inputs.

use mlres_guard::{Verdict, decide, render};

use crate::{bash, ctx};

#[test]
fn malformed_inputs_are_denied() {
    let cases = [
        "",
        "not json",
        "[]",
        "42",
        "null",
        r#"{"tool_input":{"command":"ls"}}"#,
        r#"{"tool_name":"Bash"}"#,
        r#"{"tool_name":"Bash","tool_input":"ls"}"#,
        r#"{"tool_name":"Bash","tool_input":{"command":42}}"#,
        r#"{"tool_name":"Bash","tool_input":{}}"#,
        r#"{"tool_name":7,"tool_input":{}}"#,
        r#"{"tool_name":"Write","tool_input":{"content":"x"}}"#,
        r#"{"tool_name":"Read","tool_input":{"file_path":["a"]}}"#,
        r#"{"tool_name":"WebFetch","tool_input":{}}"#,
        r#"{"tool_name":"Bash","tool_input":{"command":"ls"},"cwd":5}"#,
        r#"{"tool_name":"MultiEdit","tool_input":{"file_path":"/x","edits":"nope"}}"#,
    ];
    for c in cases {
        let v = decide(c, &ctx());
        let Verdict::Deny { reason } = &v else {
            panic!("{c:?} -> {v:?}")
        };
        assert!(
            reason.contains("malformed") || reason.contains("not"),
            "{c:?}: {reason}"
        );
    }
}

#[test]
fn unparseable_shell_is_denied_with_a_parse_reason() {
    for c in [
        "echo 'unterminated",
        "if true; then echo",
        "echo $(",
        "ls | | wc",
        "done",
    ] {
        let Verdict::Deny { reason } = decide(&bash(c), &ctx()) else {
            panic!("{c}")
        };
        assert!(reason.contains("parse"), "{c}: {reason}");
    }
}

#[test]
fn unknown_tools_defer() {
    let j = r#"{"tool_name":"SomeFutureTool","tool_input":{"x":1}}"#;
    assert_eq!(decide(j, &ctx()), Verdict::Defer);
}

#[test]
fn render_deny_has_the_documented_shape() {
    let v = decide(&bash("hf jobs run ubuntu true"), &ctx());
    let (code, out) = render(&v, "PreToolUse");
    assert_eq!(code, 0);
    let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let obj = parsed.as_object().unwrap();
    assert_eq!(obj.len(), 1);
    let hso = parsed["hookSpecificOutput"].as_object().unwrap();
    assert_eq!(hso.len(), 3);
    assert_eq!(hso["hookEventName"], "PreToolUse");
    assert_eq!(hso["permissionDecision"], "deny");
    let reason = hso["permissionDecisionReason"].as_str().unwrap();
    assert!(reason.contains("mlres exp submit"), "{reason}");
}

#[test]
fn render_defer_is_empty_and_allow_is_allow() {
    assert_eq!(render(&Verdict::Defer, "PreToolUse"), (0, String::new()));
    let (code, out) = render(&Verdict::Allow { reason: "r".into() }, "PreToolUse");
    assert_eq!(code, 0);
    let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(parsed["hookSpecificOutput"]["permissionDecision"], "allow");
    assert_eq!(
        parsed["hookSpecificOutput"]["permissionDecisionReason"],
        "r"
    );
}

#[test]
fn only_plain_mlres_reads_are_allowed() {
    assert!(matches!(
        decide(&bash("mlres loop status --json"), &ctx()),
        Verdict::Allow { .. }
    ));
    assert!(matches!(
        decide(&bash("mlres jobs logs j1"), &ctx()),
        Verdict::Allow { .. }
    ));
    // The proposer's suggestions spend nothing: a read, allowed like status.
    assert!(matches!(
        decide(&bash("mlres exp suggest -n 3 --json"), &ctx()),
        Verdict::Allow { .. }
    ));
    for c in [
        "mlres loop status --json && rm -rf build",
        "mlres loop status > out.txt",
        "mlres exp submit --config c.yaml --hypothesis h",
        "X=1 mlres loop status",
        "mlres loop status | tee x",
        "mlres exp status $(cat f)",
    ] {
        let v = decide(&bash(c), &ctx());
        assert_eq!(v, Verdict::Defer, "{c}");
    }
}

#[test]
fn huge_command_returns_a_verdict() {
    let big = format!("echo {}", "a".repeat(1 << 20));
    let v = decide(&bash(&big), &ctx());
    let Verdict::Deny { reason } = v else {
        panic!("huge command not denied")
    };
    assert!(reason.contains("limit"));
    let chain = "true && ".repeat(20_000) + "ls";
    let v = decide(&bash(&chain), &ctx());
    assert_eq!(v, Verdict::Defer);
}

#[test]
fn deep_nesting_is_refused_not_crashed() {
    let deep = format!("echo {}x{}", "$(".repeat(500), ")".repeat(500));
    assert!(decide(&bash(&deep), &ctx()).is_deny());
    let deep2 = format!("{}true{}", "(".repeat(5000), ")".repeat(5000));
    assert!(decide(&bash(&deep2), &ctx()).is_deny());
    let evals = format!("{}ls", "eval ".repeat(40));
    assert!(decide(&bash(&evals), &ctx()).is_deny());
    let subs = format!("echo {}x{}", "$(echo ".repeat(30), ")".repeat(30));
    let Verdict::Deny { reason } = decide(&bash(&subs), &ctx()) else {
        panic!("30 nested substitutions")
    };
    assert!(reason.contains("deep"), "{reason}");
    let ok = format!("echo {}x{}", "$(echo ".repeat(5), ")".repeat(5));
    assert_eq!(decide(&bash(&ok), &ctx()), Verdict::Defer);
}

#[test]
fn empty_state_dir_does_not_protect_the_project() {
    let mut c = ctx();
    c.state_dir = std::path::PathBuf::new();
    assert_eq!(decide(&bash("cat src/model.py"), &c), Verdict::Defer);
    assert!(decide(&bash("cat ~/.local/state/mlres/ledger.db"), &c).is_deny());
}
