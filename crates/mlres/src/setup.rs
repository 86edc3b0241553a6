//! `mlres setup claude`: writes the recommended Claude Code permission (project) and sandbox
//! (user) settings so that the broker is the only reachable path to spend, and prints exactly
//! what it added. Existing settings are kept; entries are only ever added, never removed.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use serde_json::{Map, Value, json};

use crate::cli::{Cli, SetupClaudeArgs};
use crate::{Failure, exit, fail};

/// Where the state the settings must keep from the agent is.
#[derive(Debug, Clone, PartialEq)]
enum Mode {
    /// mlres runs as the user, on the user's own state dir.
    Single { state_dir: PathBuf },
    /// A broker owns the state; the CLI reaches it through `socket`. Its state dir is known
    /// from the broker configuration, unless only `MLRES_BROKER_SOCKET` names the broker.
    Broker {
        socket: PathBuf,
        state_dir: Option<PathBuf>,
    },
}

impl Mode {
    /// The state dir to deny, when it is known.
    fn state_dir(&self) -> Option<&Path> {
        match self {
            Mode::Single { state_dir } => Some(state_dir),
            Mode::Broker { state_dir, .. } => state_dir.as_deref(),
        }
    }
}

/// Broker mode (as the CLI decides it, [`crate::broker::configured_socket`]) or single-user.
/// The broker's state dir comes from `/etc/mlres/broker.json` when that file names the same
/// socket the CLI uses.
fn mode(cli: &Cli) -> Result<Mode, Failure> {
    if let Some(socket) = crate::broker::configured_socket()? {
        let config = Path::new(crate::broker::DEFAULT_CONFIG);
        let state_dir = if config.exists() {
            let c = crate::broker::Config::load(config)?;
            (c.socket == socket).then_some(c.state_dir)
        } else {
            None
        };
        return Ok(Mode::Broker { socket, state_dir });
    }
    let state_dir = crate::state_dir(&cli.state_dir)?;
    let state_dir = std::path::absolute(&state_dir).unwrap_or(state_dir);
    Ok(Mode::Single { state_dir })
}

/// Permission rules for the project's `.claude/settings.json` (`state_dir`: the state dir to
/// deny, when known).
fn project_rules(state_dir: Option<&Path>) -> (Vec<String>, Vec<String>) {
    let allow = vec![
        "Bash(mlres check*)".to_string(),
        "Bash(mlres loop status*)".to_string(),
        "Bash(mlres exp *)".to_string(),
        "Bash(mlres ledger verify*)".to_string(),
        "mcp__mlres".to_string(),
    ];
    let mut deny = vec![
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
    ];
    if let Some(state_dir) = state_dir {
        let state = state_dir
            .to_string_lossy()
            .trim_end_matches('/')
            .to_string();
        deny.push(format!("Read(/{state}/**)"));
        deny.push(format!("Edit(/{state}/**)"));
    }
    deny.push("Edit(/.claude/**)".to_string());
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

/// The `mlres` commands that run outside Claude Code's Bash sandbox in `mode`, on Linux
/// (`linux`) or not.
///
/// Single-user mode: [`UNSANDBOXED_MLRES`], which need the state dir.
///
/// Broker mode: a sandboxed `mlres` needs only the broker's socket (the broker reads the state
/// and launches the jobs), so on macOS, where Claude Code allows one socket by its path
/// (`sandbox.network.allowUnixSockets`), every `mlres` command stays in the sandbox. On Linux
/// Claude Code ignores that list (its seccomp filter cannot tell one socket path from
/// another): a sandboxed command reaches no Unix socket unless `allowAllUnixSockets` opens
/// every one of them (a Docker or SSH-agent socket included) to every sandboxed command. So
/// on Linux the same commands as in single-user mode run outside the sandbox, which in broker
/// mode gives them nothing of the state: it belongs to the broker's user.
fn unsandboxed_mlres(mode: &Mode, linux: bool) -> &'static [&'static str] {
    match mode {
        Mode::Broker { .. } if !linux => &[],
        _ => UNSANDBOXED_MLRES,
    }
}

/// Sandbox settings for the user's `~/.claude/settings.json` (keys a project's settings cannot
/// set), for `mode` on Linux (`linux`) or not.
///
/// `CLAUDE_CODE_SUBPROCESS_ENV_SCRUB=1` is deliberately not set: in Claude Code 2.1.330 it runs
/// every Bash command inside bubblewrap whatever `sandbox.excludedCommands` says, so `mlres` would
/// lose the state directory again. The sandbox's own `credentials.envVars` list takes its place
/// for sandboxed commands ([`DENIED_ENV`]); `setup` warns when the variable is already set.
fn user_settings(mode: &Mode, linux: bool) -> Value {
    let env: Vec<Value> = DENIED_ENV
        .iter()
        .map(|name| json!({"name": name, "mode": "deny"}))
        .collect();
    let mut files = vec![
        json!({"path": "~/.cache/huggingface", "mode": "deny"}),
        json!({"path": "~/.claude/.credentials.json", "mode": "deny"}),
    ];
    let mut sandbox = json!({
        "enabled": true,
        "failIfUnavailable": true,
        "allowUnsandboxedCommands": false,
        "excludedCommands": unsandboxed_mlres(mode, linux),
        "network": {
            "strictAllowlist": true,
            "allowedDomains": allowed_domains()
        },
    });
    if let Mode::Broker { socket, .. } = mode {
        sandbox["network"]["allowUnixSockets"] = json!([socket.to_string_lossy()]);
    }
    if let Some(state_dir) = mode.state_dir() {
        let state = state_dir.to_string_lossy();
        sandbox["filesystem"] = json!({ "denyRead": [state], "denyWrite": [state] });
        files.push(json!({"path": state, "mode": "deny"}));
    }
    sandbox["credentials"] = json!({ "files": files, "envVars": env });
    json!({ "sandbox": sandbox })
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

/// The mode as JSON, for `--json`.
fn mode_json(mode: &Mode) -> Value {
    match mode {
        Mode::Single { state_dir } => json!({"kind": "single-user", "state_dir": state_dir}),
        Mode::Broker { socket, state_dir } => json!({
            "kind": "broker",
            "socket": socket,
            "state_dir": state_dir,
            "state_dir_known": state_dir.is_some(),
        }),
    }
}

/// What the settings enforce in `mode`, in words (after the list of changes).
fn mode_words(mode: &Mode, linux: bool) -> String {
    match mode {
        Mode::Single { .. } => "The broker's own commands (`mlres exp …`, `mlres loop status|run|stop`, `mlres check`, `mlres ledger verify`) run outside that sandbox, as `mlres mcp` does, so they can reach the state directory; every other command, `mlres approve` included, stays inside it.".to_string(),
        Mode::Broker { socket, state_dir } => {
            let reach = if linux {
                format!(
                    "Broker mode: mlres' state belongs to the broker's user; `mlres` reaches it only through the socket {}. On Linux Claude Code's sandbox cannot allow one Unix socket by its path (sandbox.network.allowUnixSockets is honoured on macOS only) and allowAllUnixSockets would open every socket to every sandboxed command, so the broker's own commands (`mlres exp …`, `mlres loop status|run|stop`, `mlres check`, `mlres ledger verify`) run outside the sandbox to reach the socket; the state stays the broker's. Every other command, `mlres approve` included, stays inside it.",
                    socket.display()
                )
            } else {
                format!(
                    "Broker mode: mlres' state belongs to the broker's user; every `mlres` command runs inside the sandbox, which may connect to the broker's socket {} (sandbox.network.allowUnixSockets).",
                    socket.display()
                )
            };
            let state = match state_dir {
                Some(d) => format!(
                    " The broker's state dir {} is denied to Claude Code's tools and to the sandbox.",
                    d.display()
                ),
                None => format!(
                    " The broker's state dir is unknown here (MLRES_BROKER_SOCKET names the broker, and {} does not name that socket), so no rule names it: it is protected by its owner and mode (0700) alone. Run `mlres setup claude` where {} exists to deny it by name too.",
                    crate::broker::DEFAULT_CONFIG,
                    crate::broker::DEFAULT_CONFIG
                ),
            };
            reach + &state
        }
    }
}

pub fn claude(cli: &Cli, a: &SetupClaudeArgs) -> Result<u8, Failure> {
    let mode = mode(cli)?;
    let linux = cfg!(target_os = "linux");
    let project: PathBuf =
        std::path::absolute(&cli.project).unwrap_or_else(|_| cli.project.clone());
    let (allow, deny) = project_rules(mode.state_dir());
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
        let (changes, merged) = update_file(&user_file, &user_settings(&mode, linux), a.dry_run)?;
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
            &json!({"mode": mode_json(&mode), "files": v, "unsandboxed_mlres_commands": unsandboxed_mlres(&mode, linux), "requirements": needs, "conflicts": conflicts}),
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
            "\nEnforced by Claude Code: deny rules (even in bypassPermissions mode) and, with --user, the OS sandbox for Bash.\n{}\nBest effort: the `mlres guard` hook (a textual guard). The budget itself is enforced by mlres, whatever the agent runs.",
            mode_words(&mode, linux)
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

    fn broker(state_dir: Option<&str>) -> Mode {
        Mode::Broker {
            socket: PathBuf::from("/run/mlres/broker.sock"),
            state_dir: state_dir.map(PathBuf::from),
        }
    }

    /// The written settings without the long lists that are the same in every mode.
    fn shown(mode: &Mode, linux: bool) -> String {
        let mut user = user_settings(mode, linux);
        let sandbox = user["sandbox"].as_object_mut().unwrap();
        sandbox["network"]["allowedDomains"] = json!("(research hosts)");
        sandbox["credentials"]["envVars"] = json!("(denied credentials)");
        let (allow, deny) = project_rules(mode.state_dir());
        format!(
            "unsandboxed: {:?}\nproject: {}\nuser: {}\n\n{}\n",
            unsandboxed_mlres(mode, linux),
            serde_json::to_string_pretty(&json!({"allow": allow, "deny": deny})).unwrap(),
            serde_json::to_string_pretty(&user).unwrap(),
            mode_words(mode, linux)
        )
    }

    #[test]
    fn broker_mode_allows_the_socket_and_denies_the_brokers_state_dir() {
        let known = broker(Some("/var/lib/mlres"));
        insta::assert_snapshot!("broker_linux", shown(&known, true));
        insta::assert_snapshot!("broker_macos", shown(&known, false));
        insta::assert_snapshot!("broker_state_unknown_linux", shown(&broker(None), true));
        // On macOS no mlres command leaves the sandbox; on Linux the same ones as in single-user
        // mode (the socket cannot be allowed by path there), never `allowAllUnixSockets`.
        assert!(unsandboxed_mlres(&known, false).is_empty());
        assert_eq!(unsandboxed_mlres(&known, true), UNSANDBOXED_MLRES);
        for linux in [true, false] {
            let user = user_settings(&known, linux);
            assert!(user["sandbox"]["network"]["allowAllUnixSockets"].is_null());
            assert_eq!(
                user["sandbox"]["network"]["allowUnixSockets"],
                json!(["/run/mlres/broker.sock"])
            );
        }
        // The state dir unknown: nothing names a state dir (not the user's single-user one).
        let unknown = user_settings(&broker(None), true);
        assert!(unknown["sandbox"]["filesystem"].is_null(), "{unknown}");
        let (_, deny) = project_rules(None);
        assert!(!deny.iter().any(|r| r.contains("state")), "{deny:?}");
    }

    #[test]
    fn single_user_settings_are_unchanged_by_broker_support() {
        let single = Mode::Single {
            state_dir: PathBuf::from("/home/u/.local/state/mlres"),
        };
        // Same for both platforms: the state dir must be reached from outside the sandbox.
        assert_eq!(user_settings(&single, true), user_settings(&single, false));
        insta::assert_snapshot!("single_user", shown(&single, true));
    }
}
