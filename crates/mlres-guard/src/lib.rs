//! `mlres-guard`: the Claude Code `PreToolUse`/`PostToolUse` guard of mlres, as a pure
//! library.
//!
//! mlres is the broker: the only sanctioned path to Hugging Face spend and Hub writes is
//! `mlres …`, which enforces the approved budget itself. This crate is the second layer:
//! given a hook's stdin JSON it decides whether a tool call goes *around* the broker
//! (Hub CLIs, SDK calls in inline code, raw HTTP, git pushes to the Hub), reads
//! credentials or the mlres state, dumps the environment, hides what it runs
//! (decoding, `eval`, runtime-built command names, names assembled in code, scripts whose
//! content would be refused), weakens the guard itself (settings, plugin, hooks, PATH tricks,
//! subagents in bypass mode, terminal fakers), or the broker (an `mlres` given computed
//! arguments or reached through another path, stopping it, moving its state, writing its
//! `runs/` exports), or sends data away (uploads of local files, WebFetch off the research
//! hosts or carrying secret-shaped values). It fails closed: unparseable input or shell syntax
//! is denied.
//!
//! Bash commands are parsed with `brush-parser`; every simple command is analysed,
//! including those inside substitutions, functions, heredoc expansions and the payloads of
//! wrappers (`bash -c`, `eval`, `env`, `sudo`, `xargs`, `find -exec`, `timeout`, …).
//!
//! This crate must not know about IO of any kind: no files, environment variables,
//! clock, processes or network. The `mlres` binary reads stdin and the environment,
//! builds a [`GuardContext`], calls [`decide_with`] and prints what [`render`] returns. Paths
//! are classified textually (symlinks cannot be resolved without IO). The few facts about
//! the machine a decision needs (what a script the command runs contains, whether a
//! program or a process is mlres) are asked through the [`Machine`] trait, which the binary
//! implements and tests replace with a map.

#![forbid(unsafe_code)]

mod assembled;
mod code;
mod paths;
mod redact;
mod shell;
mod tools;
mod web;

use std::path::PathBuf;

use serde_json::{Map, Value};

/// Where to find things the guard protects. Built by the `mlres` binary from the
/// environment; the guard itself never reads the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuardContext {
    /// `CLAUDE_PROJECT_DIR`: the project root where the session started.
    pub project_dir: Option<PathBuf>,
    /// The user's home directory (used to expand `~` and `$HOME`).
    pub home: Option<PathBuf>,
    /// The mlres state directory (ledger, signing key, approvals). Empty = unknown.
    pub state_dir: PathBuf,
    /// `CLAUDE_PLUGIN_ROOT`: the plugin's install directory.
    pub plugin_dir: Option<PathBuf>,
    /// `CLAUDE_CONFIG_DIR`, or `~/.claude`.
    pub claude_config_dir: Option<PathBuf>,
    /// The running `mlres` binary (the hook is `mlres guard`): the installed broker, the only
    /// mlres an agent may call by path. Any other path to an mlres is a build, copy or link.
    pub broker_exe: Option<PathBuf>,
}

/// What the guard may ask about the machine it guards. The guard does no IO itself: the
/// `mlres` binary answers these questions (bounded reads of one file, a look at `/proc`), and
/// tests answer them from a map. Every answer may be wrong by the time the command runs (the
/// file can change in between), so a Machine only ever adds denials.
pub trait Machine {
    /// What is at `path` (absolute and normalised), a script or program the command would run.
    fn file(&self, path: &str) -> FileView;
    /// Whether process `pid` is an mlres process (the broker, its loop or a job supervisor).
    fn is_broker_process(&self, pid: u32) -> bool;
    /// Hosts the user allowed for the agent's network access besides [`RESEARCH_HOSTS`]
    /// (Claude Code's `sandbox.network.allowedDomains`; `*.example.com` for subdomains). Asked
    /// only when a tool fetches a URL.
    fn allowed_web_hosts(&self) -> Vec<String> {
        Vec::new()
    }
}

/// The hosts (and their subdomains) the agent's WebFetch may reach by default: papers,
/// models and datasets, code, packages and library documentation. `mlres setup claude
/// --user` writes the same list into Claude Code's `sandbox.network.allowedDomains`, so
/// sandboxed commands and the guard agree.
pub const RESEARCH_HOSTS: &[&str] = &[
    "arxiv.org",
    "huggingface.co",
    "github.com",
    "semanticscholar.org",
    "pypi.org",
    "files.pythonhosted.org",
    "docs.python.org",
    "pytorch.org",
    "readthedocs.io",
];

/// What a [`Machine`] found at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileView {
    /// Nothing there, or not a regular file.
    Missing,
    /// It exists but could not be read, or is larger than the guard looks at.
    Unreadable,
    /// A text file (a script), whole.
    Text(String),
    /// A compiled program; `broker` when it is mlres (the installed binary, a copy, a link
    /// or another build of it: every build carries [`BROKER_MARKER`]).
    Binary {
        /// It is mlres.
        broker: bool,
    },
}

/// Bytes every build of mlres carries (the binary searches programs for them to recognise a
/// copy or a rebuild of the broker under another name).
pub const BROKER_MARKER: &str = "mlres-broker-identity:5b0e6c1f-guard";

/// A [`Machine`] that knows nothing: every file is missing and no process is mlres. What
/// [`decide`] uses.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMachine;

impl Machine for NoMachine {
    fn file(&self, _path: &str) -> FileView {
        FileView::Missing
    }
    fn is_broker_process(&self, _pid: u32) -> bool {
        false
    }
}

/// The guard's decision for one tool call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Explicitly allow (skips the user's permission prompt). Only returned for a single,
    /// plain, read-only `mlres` command (e.g. `mlres loop status --json`).
    Allow {
        /// Shown to the user.
        reason: String,
    },
    /// No opinion: Claude Code's normal permission rules apply.
    Defer,
    /// Block the call.
    Deny {
        /// Shown to Claude; says what was refused and the sanctioned way.
        reason: String,
    },
}

impl Verdict {
    /// Whether this is a [`Verdict::Deny`].
    pub fn is_deny(&self) -> bool {
        matches!(self, Verdict::Deny { .. })
    }
}

/// The sanctioned way to spend (appended to spend denials).
pub const SANCTIONED_SPEND: &str = "The sanctioned way is `mlres exp submit --config … --hypothesis …` (or `mlres loop run` for the whole approved sweep); mlres enforces the approved budget.";
/// The sanctioned way to write to the Hub (appended to Hub-write denials).
pub const SANCTIONED_HUB: &str = "Hub reads and writes go through mlres, which holds the token and checks the approved output_repos and allow_deletes: `mlres hub files list|read|upload|delete`, `mlres hub repo create`.";

/// Maximum length of a reason string (Claude Code caps output strings at 10,000 chars).
const MAX_REASON: usize = 4000;

fn deny(reason: impl Into<String>) -> Verdict {
    let r: String = reason.into();
    let r = r.trim_start_matches("refused: ");
    let mut s = format!("Blocked by the mlres guard: {r}");
    if s.len() > MAX_REASON {
        let mut cut = MAX_REASON;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    Verdict::Deny { reason: s }
}

/// Decides a `PreToolUse` hook call without asking anything about the machine (as if no
/// script the command runs existed). Never panics; malformed input is denied.
pub fn decide(hook_input_json: &str, ctx: &GuardContext) -> Verdict {
    decide_with(hook_input_json, ctx, &NoMachine)
}

/// Decides a `PreToolUse` hook call, asking `machine` about the scripts, programs and
/// processes the call names. Never panics; malformed input is denied.
pub fn decide_with(hook_input_json: &str, ctx: &GuardContext, machine: &dyn Machine) -> Verdict {
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        decide_inner(hook_input_json, ctx, machine)
    }));
    match res {
        Ok(v) => v,
        Err(_) => deny("internal error while analysing the tool call; the guard fails closed"),
    }
}

fn decide_inner(json: &str, ctx: &GuardContext, machine: &dyn Machine) -> Verdict {
    let value: Value = match serde_json::from_str(json) {
        Ok(v) => v,
        Err(e) => {
            return deny(format!(
                "malformed hook input (not JSON: {e}); the guard fails closed"
            ));
        }
    };
    let Value::Object(obj) = value else {
        return deny("malformed hook input (not a JSON object); the guard fails closed");
    };
    let tool = match obj.get("tool_name") {
        Some(Value::String(s)) if !s.is_empty() => s.as_str(),
        _ => {
            return deny(
                "malformed hook input (`tool_name` missing or not a string); the guard fails closed",
            );
        }
    };
    let input: &Map<String, Value> = match obj.get("tool_input") {
        Some(Value::Object(o)) => o,
        _ => {
            return deny(
                "malformed hook input (`tool_input` missing or not an object); the guard fails closed",
            );
        }
    };
    let cwd = match obj.get("cwd") {
        Some(Value::String(s)) => Some(s.as_str()),
        Some(Value::Null) | None => None,
        Some(_) => {
            return deny("malformed hook input (`cwd` is not a string); the guard fails closed");
        }
    };
    let mut an = shell::Analyzer::new(ctx, cwd, machine);
    let result: Result<Option<Verdict>, String> = match tool {
        "Bash" => match input.get("command") {
            Some(Value::String(cmd)) => an.analyze_command(cmd).map(|()| {
                if an.mlres_invoked && an.mlres_read_only && an.simple_count == 1 && !an.impure {
                    Some(Verdict::Allow {
                        reason: "read-only mlres command".into(),
                    })
                } else {
                    None
                }
            }),
            _ => Err("malformed hook input (`tool_input.command` missing or not a string); the guard fails closed".into()),
        },
        "Write" | "Edit" | "MultiEdit" | "NotebookEdit" => tools::file_edit(tool, input, &mut an).map(|()| None),
        "Read" | "Grep" | "Glob" | "LS" => tools::read(tool, input, an.paths()).map(|()| None),
        "WebFetch" => tools::web_fetch(input, &an).map(|()| None),
        "WebSearch" => tools::web_search(input).map(|()| None),
        "Agent" | "Task" => tools::agent(input, &mut an).map(|()| None),
        t if t.starts_with("mcp__") => tools::mcp(t, input, &mut an).map(|()| None),
        _ => Ok(None),
    };
    match result {
        Ok(Some(v)) => v,
        Ok(None) => Verdict::Defer,
        Err(reason) => deny(reason),
    }
}

/// Renders a verdict as (exit code, stdout) for a hook `event` (normally `"PreToolUse"`).
///
/// * `Deny` → exit 0 and `{"hookSpecificOutput":{"hookEventName":…,"permissionDecision":"deny","permissionDecisionReason":…}}`.
/// * `Allow` → exit 0 and the same shape with `"allow"`.
/// * `Defer` → exit 0 and empty stdout (normal permissions apply).
pub fn render(verdict: &Verdict, event: &str) -> (i32, String) {
    let (decision, reason) = match verdict {
        Verdict::Defer => return (0, String::new()),
        Verdict::Allow { reason } => ("allow", reason),
        Verdict::Deny { reason } => ("deny", reason),
    };
    let out = serde_json::json!({
        "hookSpecificOutput": {
            "hookEventName": event,
            "permissionDecision": decision,
            "permissionDecisionReason": reason,
        }
    });
    (0, out.to_string())
}

/// `PostToolUse`: if the tool's output (`tool_response`) contains secrets (HF tokens,
/// Anthropic/OpenAI keys, GitHub tokens, AWS access keys, private key blocks, Slack
/// tokens), returns the JSON to print: `decision: "block"` with a reason for Claude and
/// `hookSpecificOutput.updatedToolOutput` holding the output with every secret replaced
/// by `[REDACTED:<kind>]`. Returns `None` when nothing is found or the input is not JSON.
pub fn post_tool_use_redact(hook_input_json: &str) -> Option<String> {
    let value: Value = serde_json::from_str(hook_input_json).ok()?;
    let Value::Object(obj) = value else {
        return None;
    };
    let mut response = obj.get("tool_response").cloned()?;
    let mut kinds = Vec::new();
    let n = redact::redact_value(&mut response, &mut kinds);
    if n == 0 {
        return None;
    }
    let reason = format!(
        "mlres guard: the tool output contained {n} secret(s) ({}); they were redacted. Do not \
         print credentials; mlres uses them for you.",
        kinds.join(", ")
    );
    let out = serde_json::json!({
        "decision": "block",
        "reason": reason,
        "hookSpecificOutput": {
            "hookEventName": "PostToolUse",
            "additionalContext": reason,
            "updatedToolOutput": response,
        }
    });
    Some(out.to_string())
}
