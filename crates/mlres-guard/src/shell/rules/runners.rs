//! Package and environment runners: `uv run`, `uvx`, `pipx run`, `poetry run`, `conda run`,
//! `npx`, `pnpm exec`, `yarn dlx`, `direnv exec`, …. Their subcommand and options are
//! skipped and the command they run is analysed like a bare one (`uv run -m mod` as `python
//! -m mod`). Other subcommands (installing, locking, syncing) have no rule. A runner given a
//! `.py` script (or, except under `uv`, a `.sh` script) runs it like `python`/`sh` would, so
//! the script is read (see `shell::scripts`).

use super::skip_opts;
use crate::shell::{Analyzer, Arg, R, Stdin};

pub(super) fn runner(an: &mut Analyzer<'_>, prog: &str, rest: &[Arg], stdin: &Stdin) -> R {
    let pos: Vec<&str> = rest.iter().filter(|a| !a.is_opt()).map(|a| a.s()).collect();
    let with_val: &[&str] = &[
        "--with",
        "-w",
        "--with-requirements",
        "--with-editable",
        "--python",
        "-p",
        "--project",
        "--directory",
        "--env-file",
        "--extra",
        "--group",
        "--only-group",
        "--no-group",
        "--index",
        "--index-url",
        "--extra-index-url",
        "--package",
        "--from",
        "--spec",
        "-n",
        "--name",
        "--prefix",
        "--cwd",
        "-e",
        "--environment",
        "--manifest-path",
        "--config",
        "-c",
    ];
    let sub_start = match prog {
        "uvx" | "npx" | "bunx" => 0,
        "uv" => match pos.first() {
            Some(&"run") => 1,
            Some(&"tool") if pos.get(1) == Some(&"run") => 2,
            _ => return Ok(()),
        },
        "pnpm" | "yarn" => match pos.first() {
            Some(&"dlx") | Some(&"exec") => 1,
            _ => return Ok(()),
        },
        "direnv" => match pos.first() {
            Some(&"exec") => 2,
            _ => return Ok(()),
        },
        _ => match pos.first() {
            Some(&"run") | Some(&"exec") => 1,
            _ => return Ok(()),
        },
    };
    // Drop the subcommand words, then options, then analyse the command.
    let mut i = 0;
    let mut seen = 0;
    while i < rest.len() && seen < sub_start {
        if !rest[i].is_opt() {
            seen += 1;
        }
        i += 1;
    }
    let tail = &rest[i..];
    let cmd: Vec<Arg> = skip_opts(tail, with_val).cloned().collect();
    if tail.iter().any(|a| a.s() == "-m" || a.s() == "--module") && prog == "uv" {
        let mut py = vec![Arg::lit("python")];
        py.extend(skip_opts_keep(tail, with_val));
        return an.argv(&py, stdin);
    }
    if cmd.is_empty() {
        return Ok(());
    }
    let first = cmd[0].s();
    // `uv run x.py` is `python x.py`, `poetry run x.sh` is `sh x.sh`: both read the script.
    let interp = if first.ends_with(".py") {
        Some("python")
    } else if first.ends_with(".sh") && prog != "uv" {
        Some("sh")
    } else {
        None
    };
    if let Some(i) = interp {
        let mut run = vec![Arg::lit(i)];
        run.extend(cmd);
        return an.argv(&run, stdin);
    }
    an.argv(&cmd, stdin)
}

/// Like [`skip_opts`] but keeps everything after the options (for `-m`).
fn skip_opts_keep(rest: &[Arg], with_val: &[&str]) -> Vec<Arg> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < rest.len() {
        let s = rest[i].s();
        if s == "-m" || s == "--module" {
            out.push(Arg::lit("-m"));
            out.extend(rest[i + 1..].iter().cloned());
            break;
        }
        if with_val.contains(&s) {
            i += 2;
        } else {
            i += 1;
        }
    }
    out
}
