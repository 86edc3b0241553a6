//! Deferred and detached execution: `at`/`batch` and `crontab` install commands that run
//! later, outside any hook, so they are denied; `crontab -l` (and `crontab -u USER` with
//! nothing else) is let through as a listing. Terminal multiplexers (`tmux`, `screen`, `byobu`) run their arguments in a new
//! session: every argument is analysed as an embedded command line, and `screen cmd …` also
//! as a command. A multiplexer given a runtime-built argument is denied.

use super::skip_opts;
use crate::shell::{Analyzer, Arg, R, Stdin, deny_obf};

pub(super) fn at(_an: &mut Analyzer<'_>, _prog: &str, _rest: &[Arg], _stdin: &Stdin) -> R {
    Err(deny_obf(
        "`at`/`batch` schedule commands to run later, outside the guard",
    ))
}

pub(super) fn crontab(_an: &mut Analyzer<'_>, _prog: &str, rest: &[Arg], _stdin: &Stdin) -> R {
    if rest.iter().all(|a| {
        a.s() == "-l" || a.s() == "-u" || !a.is_opt() && rest.len() == 2 && rest[0].s() == "-u"
    }) && !rest.is_empty()
    {
        return Ok(());
    }
    Err(deny_obf(
        "`crontab` installs commands that later run outside the guard",
    ))
}

/// `tmux`, `screen`, `byobu`.
pub(super) fn multiplexer(an: &mut Analyzer<'_>, prog: &str, rest: &[Arg], _stdin: &Stdin) -> R {
    for a in rest {
        if a.dynamic {
            return Err(deny_obf(
                "a terminal multiplexer is given a runtime-built command",
            ));
        }
        an.analyze_embedded(a.s())?;
    }
    if prog == "screen" {
        let cmd: Vec<Arg> = skip_opts(
            rest,
            &[
                "-S", "-c", "-e", "-h", "-L", "-Logfile", "-p", "-s", "-T", "-t", "-X",
            ],
        )
        .cloned()
        .collect();
        an.argv(&cmd, &Stdin::Tty)?;
    }
    Ok(())
}
