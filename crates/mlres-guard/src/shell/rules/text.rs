//! Text tools that take a small program as their first argument: `awk` (and `gawk`, `mawk`,
//! `nawk`, `busybox-awk`) and `jq`/`gojq`/`jaq`/`yq`. Denied: programs that read the
//! environment (`ENVIRON`/`PROCINFO` in awk, `env`/`$ENV` in jq). The strings an awk program
//! hands to `system()`, `getline` or a `print |` pipe are analysed as command lines. Their
//! file arguments are checked like any others (see `rules`), skipping the program itself.

use super::environment::env_dump;
use super::skip_opts;
use crate::code;
use crate::shell::{Analyzer, Arg, R, Stdin};

pub(super) fn awk(an: &mut Analyzer<'_>, _prog: &str, rest: &[Arg], _stdin: &Stdin) -> R {
    let prog_text = skip_opts(
        rest,
        &["-F", "-v", "-f", "--field-separator", "--assign", "--file"],
    )
    .next();
    if let Some(p) = prog_text {
        if p.s().contains("ENVIRON") || p.s().contains("PROCINFO") {
            return Err(env_dump("awk ENVIRON"));
        }
        if p.s().contains("system(")
            || p.s().contains("| getline")
            || p.s().contains("|getline")
            || p.s().contains("print |")
            || p.s().contains("print|")
        {
            for lit in code::string_literals(p.s()) {
                an.analyze_embedded(&lit)?;
            }
        }
    }
    Ok(())
}

/// `jq FILTER FILES…`: `env` as a word of its own (not `.env` or `"env"`) is the builtin.
pub(super) fn jq(_an: &mut Analyzer<'_>, _prog: &str, rest: &[Arg], _stdin: &Stdin) -> R {
    for a in rest.iter().filter(|a| !a.is_opt()).take(1) {
        let f = a.s();
        let bytes = f.as_bytes();
        let builtin_env = f.match_indices("env").any(|(i, _)| {
            let before = if i == 0 { b' ' } else { bytes[i - 1] };
            let after = bytes.get(i + 3).copied().unwrap_or(b' ');
            !(before.is_ascii_alphanumeric()
                || before == b'_'
                || before == b'.'
                || before == b'"'
                || after.is_ascii_alphanumeric()
                || after == b'_')
        });
        if builtin_env || f.contains("$ENV") {
            return Err(env_dump("jq env"));
        }
    }
    Ok(())
}
