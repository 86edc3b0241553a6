//! `mlres setup claude`: writes the recommended Claude Code permission (project) and sandbox
//! (user) settings so that the broker is the only reachable path to spend, and prints exactly
//! what it added. Existing settings are kept; entries are only ever added, never removed.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use serde_json::{Map, Value, json};

use crate::cli::{Cli, SetupClaudeArgs};
use crate::{Failure, exit, fail};

/// Permission rules for the project's `.claude/settings.json`.
fn project_rules(state_dir: &Path) -> (Vec<String>, Vec<String>) {
    let state = state_dir
        .to_string_lossy()
        .trim_end_matches('/')
        .to_string();
    let allow = vec![
        "Bash(mlres check*)".to_string(),
        "Bash(mlres loop status*)".to_string(),
        "Bash(mlres exp *)".to_string(),
        "Bash(mlres ledger verify*)".to_string(),
        "mcp__mlres".to_string(),
    ];
    let deny = vec![
        // Approval is human-only; deny rules hold even in bypassPermissions mode.
        "Bash(mlres approve*)".to_string(),
        "Bash(*mlres approve*)".to_string(),
        // Direct Hub spend and writes: the broker is the only path.
        "Bash(hf jobs *)".to_string(),
        "Bash(hf upload *)".to_string(),
        "Bash(hf repo *)".to_string(),
        "Bash(hf repos *)".to_string(),
        "Bash(huggingface-cli upload *)".to_string(),
        "Bash(huggingface-cli repo *)".to_string(),
        "Bash(huggingface-cli jobs *)".to_string(),
        // Credential stores and mlres' own state.
        "Read(~/.cache/huggingface/**)".to_string(),
        "Read(~/.huggingface/**)".to_string(),
        "Read(~/.claude/.credentials.json)".to_string(),
        "Read(~/.netrc)".to_string(),
        "Read(~/.git-credentials)".to_string(),
        "Read(~/.config/gh/**)".to_string(),
        "Read(./.env)".to_string(),
        format!("Read(/{state}/**)"),
        format!("Edit(/{state}/**)"),
        "Edit(/.claude/**)".to_string(),
    ];
    (allow, deny)
}

/// Sandbox and environment settings for the user's `~/.claude/settings.json` (keys a project's
/// settings cannot set).
fn user_settings(state_dir: &Path) -> Value {
    json!({
        "sandbox": {
            "enabled": true,
            "failIfUnavailable": true,
            "allowUnsandboxedCommands": false,
            "network": {
                "strictAllowlist": true,
                "allowedDomains": ["pypi.org", "files.pythonhosted.org", "arxiv.org", "api.semanticscholar.org"]
            },
            "filesystem": { "denyRead": [state_dir.to_string_lossy()], "denyWrite": [state_dir.to_string_lossy()] },
            "credentials": {
                "files": [
                    {"path": "~/.cache/huggingface", "mode": "deny"},
                    {"path": "~/.claude/.credentials.json", "mode": "deny"},
                    {"path": state_dir.to_string_lossy(), "mode": "deny"}
                ],
                "envVars": [
                    {"name": "HF_TOKEN", "mode": "deny"},
                    {"name": "HUGGING_FACE_HUB_TOKEN", "mode": "deny"},
                    {"name": "ANTHROPIC_API_KEY", "mode": "deny"}
                ]
            }
        },
        "env": { "CLAUDE_CODE_SUBPROCESS_ENV_SCRUB": "1" }
    })
}

/// Adds `add` into `base` without removing anything: objects merge recursively, arrays gain the
/// entries they lack, scalars are set only where absent. Returns the dotted paths it changed.
fn merge(
    base: &mut Map<String, Value>,
    add: &Map<String, Value>,
    prefix: &str,
    changes: &mut Vec<String>,
) {
    for (k, v) in add {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match (base.get_mut(k), v) {
            (None, _) => {
                base.insert(k.clone(), v.clone());
                changes.push(format!("+ {path} = {v}"));
            }
            (Some(Value::Object(b)), Value::Object(a)) => merge(b, a, &path, changes),
            (Some(Value::Array(b)), Value::Array(a)) => {
                for item in a {
                    if !b.contains(item) {
                        b.push(item.clone());
                        changes.push(format!("+ {path}[] {item}"));
                    }
                }
            }
            (Some(existing), _) => {
                if existing != v {
                    changes.push(format!("! {path} kept as {existing} (recommended {v})"));
                }
            }
        }
    }
}

fn update_file(path: &Path, add: &Value, dry_run: bool) -> Result<Vec<String>, Failure> {
    let mut base = match std::fs::read_to_string(path) {
        Ok(s) if s.trim().is_empty() => Map::new(),
        Ok(s) => match serde_json::from_str::<Value>(&s) {
            Ok(Value::Object(m)) => m,
            Ok(_) => {
                return Err(fail(
                    exit::ERROR,
                    anyhow!("{} is not a JSON object; not touching it", path.display()),
                ));
            }
            Err(e) => {
                return Err(fail(
                    exit::ERROR,
                    anyhow!(
                        "{} is not valid JSON ({e}); not touching it",
                        path.display()
                    ),
                ));
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
        Err(e) => {
            return Err(fail(
                exit::ERROR,
                anyhow!("cannot read {}: {e}", path.display()),
            ));
        }
    };
    let mut changes = Vec::new();
    if let Value::Object(a) = add {
        merge(&mut base, a, "", &mut changes);
    }
    let real_changes = changes.iter().any(|c| c.starts_with('+'));
    if real_changes && !dry_run {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let tmp = path.with_extension("json.mlres-tmp");
        let text = serde_json::to_string_pretty(&Value::Object(base))? + "\n";
        std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("cannot replace {}", path.display()))?;
    }
    Ok(changes)
}

pub fn claude(cli: &Cli, a: &SetupClaudeArgs) -> Result<u8, Failure> {
    let state_dir = crate::state_dir(&cli.state_dir)?;
    let state_dir = std::path::absolute(&state_dir).unwrap_or(state_dir);
    let project: PathBuf =
        std::path::absolute(&cli.project).unwrap_or_else(|_| cli.project.clone());
    let (allow, deny) = project_rules(&state_dir);
    let project_file = project.join(".claude/settings.json");
    let mut report = vec![];
    let changes = update_file(
        &project_file,
        &json!({"permissions": {"allow": allow, "deny": deny}}),
        a.dry_run,
    )?;
    report.push((project_file, changes));
    if a.user {
        let home = std::env::var_os("CLAUDE_CONFIG_DIR")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".claude")))
            .ok_or_else(|| {
                fail(
                    exit::ERROR,
                    anyhow!("cannot find ~/.claude: set HOME or CLAUDE_CONFIG_DIR"),
                )
            })?;
        let user_file = home.join("settings.json");
        let changes = update_file(&user_file, &user_settings(&state_dir), a.dry_run)?;
        report.push((user_file, changes));
    }
    if a.json {
        let v: Vec<Value> = report
            .iter()
            .map(|(p, c)| json!({"file": p, "changes": c, "written": !a.dry_run && c.iter().any(|x| x.starts_with('+'))}))
            .collect();
        crate::print::json(&json!({"files": v}));
    } else {
        for (p, c) in &report {
            if c.is_empty() {
                println!("{}: already has the recommended settings", p.display());
            } else {
                println!(
                    "{}{}:",
                    p.display(),
                    if a.dry_run {
                        " (dry run, not written)"
                    } else {
                        ""
                    }
                );
                for line in c {
                    println!("  {line}");
                }
            }
        }
        if !a.user {
            println!(
                "\nSandbox and credential settings live in your user settings (a project cannot set them):\n  run `mlres setup claude --user` to add them to ~/.claude/settings.json"
            );
        }
        println!(
            "\nEnforced by Claude Code: deny rules (even in bypassPermissions mode) and, with --user, the OS sandbox for Bash.\nBest effort: the `mlres guard` hook (a textual guard). The budget itself is enforced by mlres, whatever the agent runs."
        );
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_missing_entries_and_keeps_user_values() {
        let mut base =
            json!({"permissions": {"deny": ["Bash(rm *)"], "defaultMode": "acceptEdits"}})
                .as_object()
                .cloned()
                .unwrap();
        let add = json!({"permissions": {"deny": ["Bash(rm *)", "Bash(hf jobs *)"], "defaultMode": "dontAsk"}});
        let mut changes = vec![];
        merge(&mut base, add.as_object().unwrap(), "", &mut changes);
        assert_eq!(
            base["permissions"]["deny"],
            json!(["Bash(rm *)", "Bash(hf jobs *)"])
        );
        assert_eq!(base["permissions"]["defaultMode"], "acceptEdits");
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert!(changes[0].starts_with("+ permissions.deny[]"));
        assert!(changes[1].starts_with("! permissions.defaultMode kept"));
    }
}
