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

/// The `mlres` command lines Claude Code runs outside its Bash sandbox
/// (`sandbox.excludedCommands`): exactly the broker commands the plugin's skills run and that
/// `mlres mcp` already serves to the agent unsandboxed (check, loop status/run/stop, exp *, ledger
/// verify).
///
/// Why they must leave the sandbox: the sandbox denies the state directory (below), so a
/// sandboxed `mlres` sees no ledger and no approval ("not approved", exit 3); and a job launched
/// from inside it would die with the sandbox's PID namespace and could not set up mlres' own job
/// sandbox (nested user/network namespaces are refused). Granting the state directory to the
/// sandbox instead would let every sandboxed command (python, sqlite3, …) rewrite the ledger and
/// its key, which is worse.
///
/// The trade-off: these commands run as the user, outside the OS sandbox, with the user's files
/// and credentials; that is what a broker is for. What bounds them is mlres itself (it spends
/// only within the envelope a human approved and refuses everything else, exit 3), Claude Code's
/// permission flow (excluded commands still go through it, so the deny rules above hold), and
/// the `mlres guard` hook, which vets every `mlres` command line (no approval, no other state
/// directory, no relative-path fake `mlres`). Claude Code keeps a call sandboxed unless *every*
/// command in it matches an entry, and keeps any call with a command substitution, a `cd` or a
/// file redirect sandboxed, so `mlres exp logs 1 > x` or `a && mlres …` gain nothing. Fail closed:
/// `mlres approve` and every other subcommand are not listed, so they stay inside the sandbox,
/// where the state directory cannot be written even if the hook and the deny rules missed them.
const UNSANDBOXED_MLRES: &[&str] = &[
    "mlres check",
    "mlres check *",
    "mlres loop status",
    "mlres loop status *",
    "mlres loop run",
    "mlres loop run *",
    "mlres loop stop",
    "mlres loop stop *",
    "mlres exp *",
    "mlres ledger verify",
    "mlres ledger verify *",
];

/// Environment variables the sandbox unsets for sandboxed commands (`credentials.envVars`,
/// mode `deny`): the Hugging Face tokens, and the Anthropic and cloud-provider credentials that
/// `CLAUDE_CODE_SUBPROCESS_ENV_SCRUB` would strip (see [`user_settings`] for why that variable is
/// not set). Excluded `mlres` commands keep them: the broker is the one meant to hold them.
const DENIED_ENV: &[&str] = &[
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HUGGINGFACEHUB_API_TOKEN",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_CUSTOM_HEADERS",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "CLAUDE_CODE_OAUTH_REFRESH_TOKEN",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_BEARER_TOKEN_BEDROCK",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "CLOUDSDK_AUTH_ACCESS_TOKEN",
    "AZURE_CLIENT_SECRET",
    "AZURE_PASSWORD",
    "GH_TOKEN",
    "GITHUB_TOKEN",
    "WANDB_API_KEY",
    "OPENAI_API_KEY",
];

/// The hosts sandboxed commands may reach: the guard's research hosts
/// ([`mlres_guard::RESEARCH_HOSTS`], the same list its WebFetch rule allows), each with its
/// subdomains (`huggingface.co`'s downloads come from `cdn-lfs.huggingface.co`).
fn allowed_domains() -> Vec<String> {
    mlres_guard::RESEARCH_HOSTS
        .iter()
        .flat_map(|h| [h.to_string(), format!("*.{h}")])
        .collect()
}

/// Sandbox settings for the user's `~/.claude/settings.json` (keys a project's settings cannot
/// set).
///
/// `CLAUDE_CODE_SUBPROCESS_ENV_SCRUB=1` is deliberately not set: in Claude Code 2.1.330 it runs
/// every Bash command inside bubblewrap whatever `sandbox.excludedCommands` says, so `mlres` would
/// lose the state directory again. The sandbox's own `credentials.envVars` list takes its place
/// for sandboxed commands ([`DENIED_ENV`]); `setup` warns when the variable is already set.
fn user_settings(state_dir: &Path) -> Value {
    let env: Vec<Value> = DENIED_ENV
        .iter()
        .map(|name| json!({"name": name, "mode": "deny"}))
        .collect();
    json!({
        "sandbox": {
            "enabled": true,
            "failIfUnavailable": true,
            "allowUnsandboxedCommands": false,
            "excludedCommands": UNSANDBOXED_MLRES,
            "network": {
                "strictAllowlist": true,
                "allowedDomains": allowed_domains()
            },
            "filesystem": { "denyRead": [state_dir.to_string_lossy()], "denyWrite": [state_dir.to_string_lossy()] },
            "credentials": {
                "files": [
                    {"path": "~/.cache/huggingface", "mode": "deny"},
                    {"path": "~/.claude/.credentials.json", "mode": "deny"},
                    {"path": state_dir.to_string_lossy(), "mode": "deny"}
                ],
                "envVars": env
            }
        }
    })
}

/// Settings already in the user's file that defeat the recommended ones. `setup` never removes
/// anything, so it names them for the user to remove.
fn user_conflicts(settings: &Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    let scrub = settings
        .get("env")
        .and_then(|e| e.get("CLAUDE_CODE_SUBPROCESS_ENV_SCRUB"))
        .map(|v| match v {
            Value::String(s) => !matches!(s.trim(), "" | "0" | "false" | "no" | "off"),
            Value::Bool(b) => *b,
            Value::Number(n) => n.as_f64() != Some(0.0),
            _ => false,
        })
        .unwrap_or(false);
    if scrub {
        out.push(
            "env.CLAUDE_CODE_SUBPROCESS_ENV_SCRUB is set: Claude Code then runs every Bash command \
             in its sandbox, including the mlres commands in sandbox.excludedCommands, so `mlres` \
             cannot reach its state directory (\"not approved\", exit 3). Remove it; \
             sandbox.credentials.envVars unsets the credentials for sandboxed commands instead"
                .to_string(),
        );
    }
    if settings
        .get("sandbox")
        .and_then(|s| s.get("enabled"))
        .is_some_and(|v| v == &Value::Bool(false))
    {
        out.push("sandbox.enabled is false: Bash runs without the OS sandbox".to_string());
    }
    out
}

/// A program Claude Code's sandbox needs on this platform.
struct Requirement {
    /// What it is called in Claude Code's own dependency check.
    name: &'static str,
    /// The executable looked up on `PATH`.
    command: &'static str,
    /// The Debian/Ubuntu package that provides it.
    package: &'static str,
    why: &'static str,
}

/// Claude Code 2.1.330 checks for exactly these on Linux and WSL (bubblewrap for the sandbox
/// itself, socat for its network proxy bridge); with `failIfUnavailable` it refuses to start
/// without them. macOS uses the built-in Seatbelt.
const LINUX_REQUIREMENTS: &[Requirement] = &[
    Requirement {
        name: "bubblewrap",
        command: "bwrap",
        package: "bubblewrap",
        why: "the OS sandbox for Bash",
    },
    Requirement {
        name: "socat",
        command: "socat",
        package: "socat",
        why: "the sandbox's network proxy bridge",
    },
];

fn find_on_path(command: &str, path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path?)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(command))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Whether bubblewrap can build a sandbox here (it needs user namespaces, which some kernels and
/// AppArmor policies refuse): the first line of its error if not.
fn bwrap_problem(bwrap: &Path) -> Option<String> {
    let out = std::process::Command::new(bwrap)
        .args(["--unshare-user", "--unshare-pid", "--unshare-net"])
        .args([
            "--ro-bind",
            "/",
            "/",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "true",
        ])
        .stdin(std::process::Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("it exited with an error")
                .to_string(),
        ),
        Err(e) => Some(e.to_string()),
    }
}

/// What the sandbox settings need installed, as JSON: each requirement with where it was found
/// (or why it cannot work), the names missing, and the command that installs them.
fn requirements() -> Value {
    if !cfg!(target_os = "linux") {
        return json!({
            "platform": std::env::consts::OS,
            "ready": cfg!(target_os = "macos"),
            "needed": [],
            "missing": [],
            "note": if cfg!(target_os = "macos") {
                "Claude Code's sandbox uses the built-in Seatbelt on macOS"
            } else {
                "Claude Code's sandbox supports Linux, WSL2 and macOS only"
            },
        });
    }
    let path = std::env::var_os("PATH");
    let mut needed = Vec::new();
    let mut missing = Vec::new();
    for r in LINUX_REQUIREMENTS {
        let found = find_on_path(r.command, path.as_deref());
        let problem = match &found {
            None => Some(format!("`{}` is not on PATH", r.command)),
            Some(p) if r.command == "bwrap" => bwrap_problem(p).map(|e| {
                format!(
                    "{} cannot create a sandbox here ({e}); unprivileged user namespaces may be \
                     disabled (sysctl kernel.unprivileged_userns_clone, or AppArmor's \
                     kernel.apparmor_restrict_unprivileged_userns)",
                    p.display()
                )
            }),
            Some(_) => None,
        };
        if found.is_none() {
            missing.push(r.package);
        }
        needed.push(json!({
            "name": r.name,
            "command": r.command,
            "package": r.package,
            "why": r.why,
            "found": found,
            "problem": problem,
        }));
    }
    let install =
        (!missing.is_empty()).then(|| format!("sudo apt-get install -y {}", missing.join(" ")));
    let ready = needed.iter().all(|r| r["problem"].is_null());
    json!({
        "platform": "linux",
        "ready": ready,
        "needed": needed,
        "missing": missing,
        "install": install,
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

/// Merges `add` into the JSON object in `path` (written unless `dry_run`); returns the changes
/// and the merged settings.
fn update_file(
    path: &Path,
    add: &Value,
    dry_run: bool,
) -> Result<(Vec<String>, Map<String, Value>), Failure> {
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
        let text = serde_json::to_string_pretty(&base)? + "\n";
        std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("cannot replace {}", path.display()))?;
    }
    Ok((changes, base))
}

pub fn claude(cli: &Cli, a: &SetupClaudeArgs) -> Result<u8, Failure> {
    let state_dir = crate::state_dir(&cli.state_dir)?;
    let state_dir = std::path::absolute(&state_dir).unwrap_or(state_dir);
    let project: PathBuf =
        std::path::absolute(&cli.project).unwrap_or_else(|_| cli.project.clone());
    let (allow, deny) = project_rules(&state_dir);
    let project_file = project.join(".claude/settings.json");
    let mut report = vec![];
    let (changes, _) = update_file(
        &project_file,
        &json!({"permissions": {"allow": allow, "deny": deny}}),
        a.dry_run,
    )?;
    report.push((project_file, changes));
    let mut conflicts = Vec::new();
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
        let (changes, merged) = update_file(&user_file, &user_settings(&state_dir), a.dry_run)?;
        conflicts = user_conflicts(&merged)
            .into_iter()
            .map(|c| format!("{}: {c}", user_file.display()))
            .collect();
        report.push((user_file, changes));
    }
    let needs = requirements();
    if a.json {
        let v: Vec<Value> = report
            .iter()
            .map(|(p, c)| json!({"file": p, "changes": c, "written": !a.dry_run && c.iter().any(|x| x.starts_with('+'))}))
            .collect();
        crate::print::json(
            &json!({"files": v, "unsandboxed_mlres_commands": UNSANDBOXED_MLRES, "requirements": needs, "conflicts": conflicts}),
        );
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
            "\nEnforced by Claude Code: deny rules (even in bypassPermissions mode) and, with --user, the OS sandbox for Bash.\nThe broker's own commands (`mlres exp …`, `mlres loop status|run|stop`, `mlres check`, `mlres ledger verify`) run outside that sandbox, as `mlres mcp` does, so they can reach the state directory; every other command, `mlres approve` included, stays inside it.\nBest effort: the `mlres guard` hook (a textual guard). The budget itself is enforced by mlres, whatever the agent runs."
        );
        print_requirements(&needs);
        for c in &conflicts {
            eprintln!("warning: {c}");
        }
    }
    Ok(exit::OK)
}

/// The requirements in words: what is installed on stdout, what is missing as a warning.
fn print_requirements(needs: &Value) {
    let Some(list) = needs["needed"].as_array() else {
        return;
    };
    if list.is_empty() {
        if let Some(note) = needs["note"].as_str() {
            println!("\n{note}.");
        }
        return;
    }
    println!("\nClaude Code's sandbox on Linux needs:");
    for r in list {
        let state = match (r["found"].as_str(), r["problem"].as_str()) {
            (_, Some(problem)) => format!("PROBLEM: {problem}"),
            (Some(path), None) => format!("found at {path}"),
            (None, None) => "not found".to_string(),
        };
        println!(
            "  {} ({}, for {}): {state}",
            r["name"].as_str().unwrap_or_default(),
            r["command"].as_str().unwrap_or_default(),
            r["why"].as_str().unwrap_or_default(),
        );
    }
    for r in list {
        if let Some(problem) = r["problem"].as_str() {
            eprintln!(
                "warning: {}: {problem}. Claude Code refuses to start with the recommended sandbox settings (failIfUnavailable) until this is fixed.",
                r["name"].as_str().unwrap_or_default()
            );
        }
    }
    if let Some(install) = needs["install"].as_str() {
        eprintln!("  install it on Debian/Ubuntu with: {install}");
    }
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
