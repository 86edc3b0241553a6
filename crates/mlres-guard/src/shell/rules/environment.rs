//! The environment: dumping it and assigning to it. The environment holds tokens, so
//! commands that print all of it are denied (`env`, `printenv`, `set`, `export`, `declare
//! -p`, `compgen -v`, `ps e`, and awk's `ENVIRON` or jq's `env` elsewhere), as is printing a
//! secret variable by name. Assignments, whether `X=1 cmd`, `export X=1`, `declare X=1` or
//! `env X=1 cmd`, are checked here too: denied are `MLRES_STATE_DIR`, `MLRES_BWRAP` and every other `MLRES_*`
//! setting (a human's choices), `IFS`, variables that make the shell or loader run extra code
//! (`BASH_ENV`, `LD_PRELOAD`, `PROMPT_COMMAND`, exported functions, …), and `HF_ENDPOINT`
//! (it would send the token elsewhere). Commands in `GIT_SSH_COMMAND`, `PAGER`, `EDITOR`, …
//! are analysed; `PATH`, `HOME` and `XDG_STATE_HOME` are remembered for the `mlres` rules.

use super::mlres::STATE_DIR_REASON;
use crate::SANCTIONED_HUB;
use crate::code::is_sensitive_var;
use crate::shell::{Analyzer, Arg, R, Stdin, deny_obf};

/// The reason for denying a command that dumps the environment.
pub(super) fn env_dump(what: &str) -> String {
    format!(
        "refused: `{what}` dumps the environment, which holds tokens. Print single, non-secret \
         variables instead (e.g. `echo \"$CUDA_VISIBLE_DEVICES\"`)"
    )
}

/// `printenv` with no names dumps everything; a secret (or runtime-built) name prints a token.
pub(super) fn printenv(_an: &mut Analyzer<'_>, _prog: &str, rest: &[Arg], _stdin: &Stdin) -> R {
    let names: Vec<&Arg> = rest.iter().filter(|a| !a.is_opt()).collect();
    if names.is_empty() {
        return Err(env_dump("printenv"));
    }
    for n in names {
        if n.dynamic || is_sensitive_var(n.s()) {
            return Err(format!(
                "refused: `printenv {}` prints a secret. Tokens never go to the agent",
                n.s()
            ));
        }
    }
    Ok(())
}

/// A bare `set` lists every variable.
pub(super) fn set(_an: &mut Analyzer<'_>, _prog: &str, rest: &[Arg], _stdin: &Stdin) -> R {
    if rest.is_empty() {
        return Err(env_dump("set"));
    }
    Ok(())
}

/// `export`, `declare`, `typeset`, `local`, `readonly`: listing forms dump the environment,
/// `-p SECRET` prints one, and `NAME=value` is an assignment.
pub(super) fn declare(an: &mut Analyzer<'_>, prog: &str, rest: &[Arg], _stdin: &Stdin) -> R {
    let flags: String = rest
        .iter()
        .filter(|a| a.is_opt())
        .map(|a| a.s().trim_start_matches('-').to_string())
        .collect();
    let names: Vec<&Arg> = rest.iter().filter(|a| !a.is_opt()).collect();
    let dump = match prog {
        "export" => names.is_empty(),
        "declare" | "typeset" => {
            (names.is_empty() && !flags.contains('f') && !flags.contains('F'))
                || (flags.contains('p') && names.is_empty())
        }
        _ => false,
    };
    if dump {
        let shown = if flags.is_empty() {
            prog.to_string()
        } else {
            format!("{prog} -{flags}")
        };
        return Err(env_dump(&shown));
    }
    for n in names {
        let s = n.s();
        match s.split_once('=') {
            Some((name, v)) => {
                let val = Arg {
                    text: v.to_string(),
                    ..n.clone()
                };
                an.assignment(name.trim_end_matches('+'), &val, false)?;
            }
            None => {
                if flags.contains('p') && is_sensitive_var(s) {
                    return Err(format!("refused: `{prog} -p {s}` prints a secret"));
                }
            }
        }
    }
    Ok(())
}

/// `unset NAME…`: unsetting `HOME` or `XDG_STATE_HOME` moves mlres' state directory, and
/// mlres' own settings (`MLRES_*`) are the user's, like assigning them.
pub(super) fn unset(an: &mut Analyzer<'_>, _prog: &str, rest: &[Arg], _stdin: &Stdin) -> R {
    for n in rest.iter().filter(|a| !a.is_opt()) {
        match n.s() {
            "HOME" | "XDG_STATE_HOME" => {
                an.state_override = Some(format!("`unset {}` is in this command", n.s()))
            }
            s if s.starts_with("MLRES_") => {
                return Err(format!(
                    "refused: `unset {s}` changes one of mlres' own settings (its state directory, \
                     sandbox or GPUs); only a human sets them"
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// `compgen -v`, `-e` and `-A variable|export|arrayvar` list the variables.
pub(super) fn compgen(_an: &mut Analyzer<'_>, _prog: &str, rest: &[Arg], _stdin: &Stdin) -> R {
    let bad = rest.iter().enumerate().any(|(i, a)| {
        a.s() == "-v"
            || a.s() == "-e"
            || (a.s().starts_with('-')
                && !a.s().starts_with("--")
                && (a.s().contains('v') || a.s().contains('e')))
            || (a.s() == "-A"
                && rest
                    .get(i + 1)
                    .is_some_and(|n| matches!(n.s(), "variable" | "export" | "arrayvar")))
    });
    if bad {
        return Err(env_dump("compgen"));
    }
    Ok(())
}

/// `ps e`/`ps -E`/`ps --environment` show other processes' environments.
pub(super) fn ps(_an: &mut Analyzer<'_>, _prog: &str, rest: &[Arg], _stdin: &Stdin) -> R {
    if rest.iter().any(|a| {
        !a.s().starts_with('-')
            && a.s().chars().all(|c| c.is_ascii_alphabetic())
            && a.s().contains('e')
    }) || rest
        .iter()
        .any(|a| a.s() == "-E" || a.s() == "--environment")
    {
        return Err(env_dump("ps e"));
    }
    Ok(())
}

impl Analyzer<'_> {
    /// Checks an assignment `name=val`, wherever it appears, and remembers its value.
    pub(in crate::shell) fn assignment(&mut self, name: &str, val: &Arg, prefix: bool) -> R {
        match name {
            "PATH" => self.path_modified = true,
            "MLRES_STATE_DIR" => return Err(STATE_DIR_REASON.into()),
            // It picks the program mlres' supervisors run as the job sandbox, or turns
            // bubblewrap off: a human's choice, never an agent's.
            "MLRES_BWRAP" => {
                return Err(
                    "refused: `MLRES_BWRAP` chooses the program mlres runs as the \
                            local job sandbox (or switches bubblewrap off); only a human sets it"
                        .into(),
                );
            }
            // It decides which of the machine's GPUs local jobs are given and where their
            // locks are kept apart from other jobs': the operator's, like the sandbox.
            "MLRES_LOCAL_GPUS" => {
                return Err(
                    "refused: `MLRES_LOCAL_GPUS` chooses which of the machine's GPUs local \
                            jobs are given; only a human sets it"
                        .into(),
                );
            }
            // Any other setting of mlres' own (retention, ...) is the operator's too.
            n if n.starts_with("MLRES_") => {
                return Err(format!(
                    "refused: `{n}` is one of mlres' own settings (how it keeps logs, which \
                     sandbox or GPUs jobs get); only a human sets them"
                ));
            }
            // As a command's prefix (`HOME=/tmp/h python3 train.py`) it only concerns that
            // command, which the mlres rule checks; on its own it lasts for the rest of the
            // shell session, and `mlres` would use another state directory in later commands.
            "HOME" | "XDG_STATE_HOME" => {
                if !prefix {
                    return Err(format!(
                        "refused: assigning `{name}` for the rest of the shell session moves \
                         mlres' state directory for every later `mlres` command. Set it only as \
                         the prefix of the one command that needs it (`{name}=… python3 …`), never \
                         for `mlres`"
                    ));
                }
                self.state_override = Some(format!("`{name}` is set in this command"));
            }
            // Changing the field separator turns a harmless-looking word into several words
            // (`IFS=_; c=hf_jobs_run; $c`): no ordinary ML command needs it.
            "IFS" => {
                return Err(deny_obf("setting `IFS` re-splits words into new commands"));
            }
            "BASH_ENV" | "ENV" | "LD_PRELOAD" | "PROMPT_COMMAND" | "PS4" | "BASH_XTRACEFD"
            | "GIT_SSH_COMMAND" | "GIT_EXTERNAL_DIFF" | "PAGER" | "GIT_PAGER" | "EDITOR"
            | "VISUAL" => {
                if name.starts_with("GIT_") || matches!(name, "PAGER" | "EDITOR" | "VISUAL") {
                    // These run a command: analyse it like a shell string.
                    if val.dynamic {
                        return Err(deny_obf(&format!(
                            "`{name}` is set to a runtime-built command"
                        )));
                    }
                    return self.analyze_shell_string(&val.text, false);
                }
                return Err(deny_obf(&format!(
                    "setting `{name}` makes the shell or loader run extra code"
                )));
            }
            "HF_ENDPOINT" | "HF_HUB_ENDPOINT" => {
                return Err(format!(
                    "setting `{name}` redirects Hub requests (and the HF token they carry) to \
                     another host. {SANCTIONED_HUB}"
                ));
            }
            _ => {}
        }
        if name.starts_with("BASH_FUNC_") {
            return Err(deny_obf(
                "exported bash functions via the environment are not allowed",
            ));
        }
        if val.dynamic {
            self.vars.insert(name.to_string(), None);
        } else {
            self.vars.insert(name.to_string(), Some(val.text.clone()));
        }
        Ok(())
    }
}
