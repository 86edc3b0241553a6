//! mlres itself, the broker (also reached as `python -m mlres`). Denied: `mlres approve`,
//! `--approve` and `mlres setup approver` (only a human approves or sets the approval secret),
//! a state directory other than the one the user set up (`--state-dir`, or `HOME`/
//! `XDG_STATE_HOME` assigned in the same command), any argument computed at run time
//! (substitutions, unknown variables, globs, brace expansions, words supplied by `xargs`)
//! unless the command only reads (`mlres exp status "$id"`), `mlres data inspect|audit` of a
//! credential file or the state (stopping the broker is `signals`' business). A single
//! plain read-only `mlres` command (`status`, `list`, `logs`, …) is what lets the guard
//! answer Allow instead of deferring; this module records whether the last invocation was
//! one.

use crate::code::APPROVE_REASON;
use crate::shell::{Analyzer, Arg, DYN, R, Stdin};

/// Why an agent's `mlres` must use the state directory the user set up: the broker's commands run
/// outside Claude Code's sandbox with the user's credentials (see `mlres setup claude`), and a
/// state directory of the agent's choosing could hold an approval the agent forged there.
pub(super) const STATE_DIR_REASON: &str = "refused: chooses another mlres state directory. The broker's \
     commands run with the user's credentials, and only the state directory the user set up holds \
     the human's approval; run `mlres` without --state-dir, MLRES_STATE_DIR, XDG_STATE_HOME or HOME";

/// The commands that only read, by their subcommand words: these may take computed arguments.
const READ_ONLY_PATHS: &[&[&str]] = &[
    &["check"],
    &["doctor"],
    &["help"],
    &["loop", "status"],
    &["exp", "status"],
    &["exp", "suggest"],
    &["exp", "logs"],
    &["exp", "wait"],
    &["ledger", "verify"],
    &["ledger", "events"],
    &["hub", "whoami"],
    &["hub", "files", "list"],
    &["hub", "files", "read"],
    &["jobs", "status"],
    &["jobs", "logs"],
    &["jobs", "list"],
];

/// The research commands: they only read, but they send their arguments to the network
/// (arXiv, Semantic Scholar, GitHub, the Hub), so every argument must be on the command line
/// and none may look like a secret.
const RESEARCH_PATHS: &[&[&str]] = &[&["papers"], &["docs"], &["github"], &["hub", "search"]];

fn research_path(sub: &[Option<&str>]) -> bool {
    RESEARCH_PATHS
        .iter()
        .any(|p| p.len() <= sub.len() && p.iter().zip(sub).all(|(want, got)| Some(*want) == *got))
}

/// mlres' global options that take a value (they may appear before or after the subcommand).
const GLOBAL_WITH_VALUE: &[&str] = &["-C", "--project", "--state-dir"];

/// The subcommand words of an mlres command line: its leading positionals, skipping global
/// options and their values, up to the first option of the subcommand. `None` for a word
/// computed at run time.
fn subcommand(rest: &[Arg]) -> Vec<Option<&str>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < rest.len() && out.len() < 3 {
        let a = &rest[i];
        if GLOBAL_WITH_VALUE.contains(&a.s()) {
            i += 2;
            continue;
        }
        if a.is_opt() {
            if out.is_empty() {
                i += 1;
                continue;
            }
            break;
        }
        out.push((!a.dynamic && !a.glob && !a.brace).then_some(a.s()));
        i += 1;
    }
    out
}

/// Whether the subcommand words name one of [`READ_ONLY_PATHS`].
fn read_only_path(sub: &[Option<&str>]) -> bool {
    READ_ONLY_PATHS
        .iter()
        .any(|p| p.len() <= sub.len() && p.iter().zip(sub).all(|(want, got)| Some(*want) == *got))
}

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
    if let Some(how) = &an.state_override {
        return Err(format!("{STATE_DIR_REASON} ({how})"));
    }
    let sub = subcommand(rest);
    if research_path(&sub) {
        return research(an, rest, &sub);
    }
    computed_arguments(rest, &sub)?;
    data_sources(an, rest, &sub)?;
    if rest.iter().any(|a| a.dynamic) {
        an.mlres_read_only = false;
        return Ok(());
    }
    const READ: &[&str] = &[
        "status", "list", "ls", "show", "logs", "log", "inspect", "verify", "help", "doctor",
        "version", "explain", "report", "tail", "diff", "suggest",
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

/// `mlres papers|docs|github|hub search`: read-only, answered by Allow, unless an argument is
/// computed at run time or looks like a secret (the query would carry it to another host).
fn research(an: &mut Analyzer<'_>, rest: &[Arg], sub: &[Option<&str>]) -> R {
    let words: Vec<&str> = sub.iter().map(|w| w.unwrap_or("…")).collect();
    if let Some(a) = rest.iter().find(|a| a.dynamic || a.glob || a.brace) {
        return Err(format!(
            "refused: `mlres {}` sends its arguments to the network, and `{}` is computed at run \
             time (a substitution, a variable, a glob or words from xargs), so the guard cannot see \
             what would leave this machine. Write the query literally, e.g. \
             `mlres papers search \"direct preference optimization\"`",
            words.join(" "),
            a.s().replace(DYN, "…")
        ));
    }
    if let Some(hit) = rest.iter().find_map(|a| crate::web::secret_shaped(a.s())) {
        return Err(format!(
            "refused: `mlres {}` would send a secret-shaped value (`{}…`: a long hex or base64 run) \
             to the network. Search with words, ids and names; nothing read from credentials, the \
             environment or the state directory may go into a query",
            words.join(" "),
            hit.chars().take(8).collect::<String>()
        ));
    }
    an.mlres_read_only = true;
    Ok(())
}

/// Denies an `mlres` command that spends, writes or reads local files with an argument
/// computed at run time: what the broker would be asked to do must be on the command line.
fn computed_arguments(rest: &[Arg], sub: &[Option<&str>]) -> R {
    let Some(a) = rest.iter().find(|a| a.dynamic || a.glob || a.brace) else {
        return Ok(());
    };
    if read_only_path(sub) {
        return Ok(());
    }
    let shown = a.s().replace(DYN, "…");
    let words: Vec<&str> = sub.iter().map(|w| w.unwrap_or("…")).collect();
    Err(format!(
        "refused: `mlres {}` is given an argument computed at run time (`{shown}`: a \
         substitution, a variable, a glob, a brace expansion or words from xargs), so the guard \
         cannot see what the broker would be asked to do. Run it with literal arguments, e.g. \
         `mlres exp submit --config lr=0.001 --hypothesis \"…\"`; only read-only commands \
         (`mlres exp status|logs`, `mlres loop status`, `mlres check`) may take computed ones",
        words.join(" ")
    ))
}

/// `mlres data inspect|audit SOURCE`: mlres reads the file and prints samples of it, so a
/// credential store or the state directory is refused like any other read.
fn data_sources(an: &Analyzer<'_>, rest: &[Arg], sub: &[Option<&str>]) -> R {
    if sub.first() != Some(&Some("data")) {
        return Ok(());
    }
    let mut skip_next = false;
    for a in rest {
        if skip_next {
            skip_next = false;
            continue;
        }
        if GLOBAL_WITH_VALUE.contains(&a.s()) {
            skip_next = true;
            continue;
        }
        if a.is_opt() {
            continue;
        }
        if let Some(why) = an.credential_like(a) {
            return Err(format!(
                "refused: `mlres data` would read and print samples of `{}`: {why}. Inspect \
                 and audit datasets only (`mlres data inspect data/train.jsonl`)",
                a.s()
            ));
        }
    }
    Ok(())
}
