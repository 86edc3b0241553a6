//! Integration tests for `mlres-guard`: corpus replay, API contract, robustness.

mod api;
mod corpus;
mod props;
mod redact;
mod rules;

use std::path::PathBuf;

use std::collections::HashMap;

use mlres_guard::{FileView, GuardContext, Machine};

/// The context every corpus line is decided under (matches the corpus' paths).
pub fn ctx() -> GuardContext {
    GuardContext {
        project_dir: Some(PathBuf::from("/home/user/proj")),
        home: Some(PathBuf::from("/home/user")),
        state_dir: PathBuf::from("/home/user/.local/state/mlres"),
        plugin_dir: Some(PathBuf::from("/home/user/.claude/plugins/cache/mlres")),
        claude_config_dir: Some(PathBuf::from("/home/user/.claude")),
        broker_exe: Some(PathBuf::from("/home/user/.cargo/bin/mlres")),
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

/// A [`Machine`] answering from a map: what a corpus line's `files` say is on disk (text, or
/// `{"binary": "broker"|"other"}`) and which pids its `broker_pids` say are mlres.
#[derive(Debug, Default)]
pub struct MapMachine {
    pub files: HashMap<String, FileView>,
    pub broker_pids: Vec<u32>,
}

impl MapMachine {
    /// The files and processes a corpus line (or any hook JSON with those fields) describes.
    pub fn from_line(v: &serde_json::Value) -> Self {
        let mut m = MapMachine::default();
        if let Some(files) = v["files"].as_object() {
            for (path, f) in files {
                let view = match f {
                    serde_json::Value::String(s) => FileView::Text(s.clone()),
                    other => FileView::Binary {
                        broker: other["binary"] == "broker",
                    },
                };
                m.files.insert(path.clone(), view);
            }
        }
        if let Some(pids) = v["broker_pids"].as_array() {
            m.broker_pids = pids
                .iter()
                .filter_map(|p| p.as_u64())
                .map(|p| p as u32)
                .collect();
        }
        m
    }

    /// One text file.
    pub fn with_file(mut self, path: &str, text: &str) -> Self {
        self.files.insert(path.into(), FileView::Text(text.into()));
        self
    }
}

impl Machine for MapMachine {
    fn file(&self, path: &str) -> FileView {
        self.files.get(path).cloned().unwrap_or(FileView::Missing)
    }
    fn is_broker_process(&self, pid: u32) -> bool {
        self.broker_pids.contains(&pid)
    }
}
