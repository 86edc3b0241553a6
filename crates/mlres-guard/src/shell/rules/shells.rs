//! Shells and the shell builtins that run code: `sh`/`bash`/`zsh`/… (`-c` strings, scripts,
//! programs on standard input), `eval`, `source`/`.`, `trap`, `alias`, `hash`, `fc` and
//! `enable`. A `-c` string, an `eval`, a `trap` handler or an alias body is parsed and
//! analysed like the command itself. Denied: any of these built at run time, a shell or
//! `source` reading its program from a pipe, `/dev/stdin` or a process substitution, a script
//! written earlier in the same command from content the guard could not see, an alias named
//! `mlres`, `hash -p … mlres`, `fc` re-running history and `enable -f` loading code.

use crate::shell::scripts::Lang;
use crate::shell::{Analyzer, Arg, R, Stdin, deny_obf};

/// `sh`, `bash`, `zsh`, … and `busybox sh`: `-c STRING`, a script file, or a program read
/// from standard input.
pub(super) fn shell(an: &mut Analyzer<'_>, prog: &str, rest: &[Arg], stdin: &Stdin) -> R {
    let rest: &[Arg] = if prog == "busybox" {
        match rest.first().map(|a| a.s()) {
            Some("sh") | Some("ash") | Some("bash") => &rest[1..],
            _ => return Ok(()),
        }
    } else {
        rest
    };
    let mut i = 0;
    let mut cmd_string = false;
    while i < rest.len() {
        let s = rest[i].s();
        if s == "--" {
            i += 1;
            break;
        }
        if (s.starts_with('-') || s.starts_with('+')) && s.len() > 1 && !rest[i].dynamic {
            if s == "-o"
                || s == "+o"
                || s == "-O"
                || s == "+O"
                || s == "--rcfile"
                || s == "--init-file"
            {
                i += 2;
                continue;
            }
            if !s.starts_with("--") && s[1..].contains('c') {
                cmd_string = true;
            }
            i += 1;
            continue;
        }
        break;
    }
    if cmd_string {
        return an.shell_payload(rest.get(i));
    }
    match rest.get(i) {
        Some(script) => {
            let t = script.s();
            if script.procsub
                || script.dynamic
                || t == "/dev/stdin"
                || t.starts_with("/dev/fd/")
                || t.starts_with("/proc/")
                || t == "-"
            {
                return Err(deny_obf(
                    "the shell runs a script from a pipe, process substitution or runtime-built path",
                ));
            }
            if an.unseen_files.contains(&an.pe.norm(t)) {
                return Err(deny_obf(
                    "the shell runs a script written earlier in the same command from content the guard cannot see",
                ));
            }
            an.run_script_file(script, Lang::Shell)
        }
        None => an.stdin_program(stdin, "shell", |this, body| {
            this.analyze_shell_string(body, true)
        }),
    }
}

pub(super) fn eval(an: &mut Analyzer<'_>, _prog: &str, rest: &[Arg], _stdin: &Stdin) -> R {
    if rest.iter().any(|a| a.dynamic) {
        return Err(deny_obf("`eval` of variables or substitutions"));
    }
    let joined = rest
        .iter()
        .map(|a| a.s().to_string())
        .collect::<Vec<_>>()
        .join(" ");
    an.analyze_shell_string(&joined, true)
}

/// `source FILE` / `. FILE`: a plain path, whose text (when it can be known) is analysed as
/// part of this shell.
pub(super) fn source(an: &mut Analyzer<'_>, _prog: &str, rest: &[Arg], _stdin: &Stdin) -> R {
    let Some(f) = rest.first() else { return Ok(()) };
    if f.dynamic || f.procsub {
        return Err(deny_obf(
            "`source` of a runtime-built path or a process substitution",
        ));
    }
    let t = f.s();
    if t == "/dev/stdin" || t.starts_with("/dev/fd/") || t.starts_with("/proc/") || t == "-" {
        return Err(deny_obf("`source` from standard input"));
    }
    an.run_script_file(f, Lang::Sourced)
}

/// `trap HANDLER SIGNALS`: the handler is a shell string.
pub(super) fn trap(an: &mut Analyzer<'_>, _prog: &str, rest: &[Arg], _stdin: &Stdin) -> R {
    let Some(first) = rest.iter().find(|a| !a.is_opt()) else {
        return Ok(());
    };
    if first.dynamic {
        return Err(deny_obf("`trap` with a runtime-built handler"));
    }
    an.analyze_shell_string(first.s(), true)
}

/// `alias name='body'`: the body is analysed now and expanded when `name` runs later in the
/// same command.
pub(super) fn alias(an: &mut Analyzer<'_>, _prog: &str, rest: &[Arg], _stdin: &Stdin) -> R {
    for a in rest {
        if let Some((n, v)) = a.s().split_once('=') {
            if n == "mlres" {
                return Err("refused: an alias named `mlres` would shadow the real broker".into());
            }
            if a.dynamic {
                return Err(deny_obf("an alias with a runtime-built body"));
            }
            an.analyze_shell_string(v, true)?;
            an.aliases.insert(n.to_string(), v.to_string());
        }
    }
    Ok(())
}

pub(super) fn hash(_an: &mut Analyzer<'_>, _prog: &str, rest: &[Arg], _stdin: &Stdin) -> R {
    if rest.iter().any(|a| a.s() == "mlres") && rest.iter().any(|a| a.s() == "-p") {
        return Err("refused: `hash -p … mlres` points `mlres` at another binary".into());
    }
    Ok(())
}

/// `fc` re-runs commands from history; `fc -l` only lists them.
pub(super) fn fc(_an: &mut Analyzer<'_>, _prog: &str, rest: &[Arg], _stdin: &Stdin) -> R {
    if rest.iter().any(|a| a.s() == "-l") {
        return Ok(());
    }
    Err(deny_obf("`fc` re-executes commands from history unseen"))
}

pub(super) fn enable(_an: &mut Analyzer<'_>, _prog: &str, rest: &[Arg], _stdin: &Stdin) -> R {
    if rest.iter().any(|a| a.s().starts_with("-f")) {
        return Err(deny_obf("`enable -f` loads code into the shell"));
    }
    Ok(())
}

impl Analyzer<'_> {
    pub(super) fn stdin_program(
        &mut self,
        stdin: &Stdin,
        what: &str,
        f: impl FnOnce(&mut Self, &str) -> R,
    ) -> R {
        match stdin {
            Stdin::Tty | Stdin::File => Ok(()),
            Stdin::Pipe => Err(deny_obf(&format!(
                "data is piped into a {what} as a program (e.g. `… | sh`, `base64 -d | bash`, `curl … | python`)"
            ))),
            Stdin::Text { dynamic: true, .. } => Err(deny_obf(&format!(
                "a here-string/heredoc with substitutions is fed to a {what}"
            ))),
            Stdin::Text {
                body,
                dynamic: false,
            } => {
                let b = body.clone();
                f(self, &b)
            }
        }
    }
}
