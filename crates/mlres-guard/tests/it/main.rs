//! Integration tests for `mlres-guard`: corpus replay, API contract, robustness.

mod api;
mod corpus;
mod props;
mod redact;
mod rules;

use std::path::PathBuf;

use mlres_guard::GuardContext;

/// The context every corpus line is decided under (matches the corpus' paths).
pub fn ctx() -> GuardContext {
    GuardContext {
        project_dir: Some(PathBuf::from("/home/user/proj")),
        home: Some(PathBuf::from("/home/user")),
        state_dir: PathBuf::from("/home/user/.local/state/mlres"),
        plugin_dir: Some(PathBuf::from("/home/user/.claude/plugins/cache/mlres")),
        claude_config_dir: Some(PathBuf::from("/home/user/.claude")),
    }
}

/// A Bash hook input for `cmd` with the corpus' cwd.
pub fn bash(cmd: &str) -> String {
    serde_json::json!({
        "session_id": "s", "cwd": "/home/user/proj", "hook_event_name": "PreToolUse",
        "permission_mode": "default", "tool_name": "Bash",
        "tool_input": {"command": cmd}
    })
    .to_string()
}
