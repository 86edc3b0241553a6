//! Raw network tools: `socat`. Denied: a `pty` address (a terminal faker, see `terminals`)
//! and a file, standard input or a program wired to a network address off this machine (see
//! `uploads`). The command of an `EXEC:`/`SYSTEM:` address is analysed like any other.

use super::terminals;
use crate::shell::{Analyzer, Arg, R, Stdin};

/// `socat [options] ADDRESS ADDRESS`.
pub(super) fn socat(an: &mut Analyzer<'_>, prog: &str, rest: &[Arg], stdin: &Stdin) -> R {
    let addrs: Vec<&Arg> = rest
        .iter()
        .filter(|a| !a.is_opt() || a.s() == "-")
        .collect();
    for a in &addrs {
        if terminals::pty_address(a.s()) {
            return Err(terminals::reason(&format!("{prog} … pty")));
        }
    }
    super::uploads::socat_upload(&addrs, stdin)?;
    for a in &addrs {
        let lower = a.s().to_ascii_lowercase();
        let cmd = ["exec:", "system:"]
            .iter()
            .find_map(|p| lower.starts_with(p).then(|| &a.s()[p.len()..]));
        if let Some(cmd) = cmd {
            if a.dynamic {
                return Err(crate::shell::deny_obf(
                    "`socat` runs a command built at run time",
                ));
            }
            // Options follow the command after a comma (`EXEC:cmd,stderr`).
            let cmd = cmd.split(',').next().unwrap_or("");
            an.analyze_shell_string(cmd.trim_matches(['\'', '"']), true)?;
        }
    }
    Ok(())
}
