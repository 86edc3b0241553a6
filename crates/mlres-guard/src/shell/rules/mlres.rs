//! mlres itself, the broker (also reached as `python -m mlres`). Denied: `mlres approve`,
//! `--approve` and `mlres setup approver` (only a human approves or sets the approval secret), a state directory other than the one the user set up
//! (`--state-dir`, or `HOME`/`XDG_STATE_HOME` assigned in the same command), and stopping the
//! broker with `kill`/`pkill`/`killall`. A single plain read-only `mlres` command (`status`,
//! `list`, `logs`, …) is what lets the guard answer Allow instead of deferring; this module
//! records whether the last invocation was one.

use crate::code::APPROVE_REASON;
use crate::shell::{Analyzer, Arg, R, Stdin};

/// Why an agent's `mlres` must use the state directory the user set up: the broker's commands run
/// outside Claude Code's sandbox with the user's credentials (see `mlres setup claude`), and a
/// state directory of the agent's choosing could hold an approval the agent forged there.
pub(super) const STATE_DIR_REASON: &str = "refused: chooses another mlres state directory. The broker's \
     commands run with the user's credentials, and only the state directory the user set up holds \
     the human's approval; run `mlres` without --state-dir, MLRES_STATE_DIR, XDG_STATE_HOME or HOME";

pub(super) fn mlres(an: &mut Analyzer<'_>, _prog: &str, rest: &[Arg], _stdin: &Stdin) -> R {
    an.mlres_invoked = true;
    let pos: Vec<&str> = rest.iter().filter(|a| !a.is_opt()).map(|a| a.s()).collect();
    if pos.iter().take(3).any(|p| *p == "approve") || rest.iter().any(|a| a.s() == "--approve") {
        return Err(APPROVE_REASON.into());
    }
    // Setting the approval secret first would let the agent approve with its own secret.
    if pos.windows(2).take(3).any(|w| w == ["setup", "approver"]) {
        return Err(format!(
            "{APPROVE_REASON}; `mlres setup approver` sets the secret every approval needs, so only \
             the human runs it"
        ));
    }
    if rest
        .iter()
        .any(|a| a.s() == "--state-dir" || a.s().starts_with("--state-dir="))
    {
        return Err(STATE_DIR_REASON.into());
    }
    if let Some(var) = &an.state_env_assigned {
        return Err(format!(
            "{STATE_DIR_REASON} (`{var}` is set in this command)"
        ));
    }
    if rest.iter().any(|a| a.dynamic) {
        an.mlres_read_only = false;
        return Ok(());
    }
    const READ: &[&str] = &[
        "status", "list", "ls", "show", "logs", "log", "inspect", "verify", "help", "doctor",
        "version", "explain", "report", "tail", "diff",
    ];
    const WRITE: &[&str] = &[
        "submit", "run", "cancel", "stop", "start", "upload", "delete", "rm", "create", "init",
        "reset", "kill", "apply", "set", "edit", "write", "push", "resume", "retry", "approve",
        "serve", "sync", "gc", "prune",
    ];
    let head: Vec<&str> = pos.iter().take(3).copied().collect();
    let flags_only_help =
        rest.len() == 1 && matches!(rest[0].s(), "--help" | "-h" | "--version" | "-V");
    an.mlres_read_only = flags_only_help
        || (head.iter().take(2).any(|p| READ.contains(p))
            && !head.iter().any(|p| WRITE.contains(p)));
    Ok(())
}

/// `kill`/`pkill`/`killall` aimed at mlres.
pub(super) fn kill(_an: &mut Analyzer<'_>, _prog: &str, rest: &[Arg], _stdin: &Stdin) -> R {
    if rest.iter().any(|a| a.s().contains("mlres")) {
        return Err("refused: stopping the mlres broker from the agent. Use `mlres loop stop` or ask the user".into());
    }
    Ok(())
}
