//! File tools: `cd`/`pushd`, writers (`tee`, `sponge`, `cp`, `mv`, `rm`, `ln`, `rsync`, `dd
//! of=`, `chmod`, `touch`, `patch`, `sed -i`, …) and recursive readers (archivers, `grep -r`,
//! `rg`, …). Denied: writing to or changing the guard's configuration (Claude Code settings,
//! hooks, the plugin) or the mlres state, recursive changes that would reach them, extracting
//! an archive into them, recursive copies or searches that would take in credential stores
//! or the mlres state, and `cd` into the state directory. (Plain reads of credential files
//! are denied for every program, see `rules`.) `cd` also moves the working directory that
//! relative paths are resolved against.

use super::skip_all_opts;
use crate::shell::{Analyzer, Arg, R, Stdin};

/// The file tools' options that take a value.
const WITH_VALUE: &[&str] = &[
    "-t",
    "--target-directory",
    "-m",
    "--mode",
    "-o",
    "-g",
    "-S",
    "--suffix",
    "-e",
    "-f",
    "--reference",
    "-s",
    "--size",
];

/// The operands: arguments that are neither options nor their values.
fn positionals(rest: &[Arg]) -> Vec<&Arg> {
    skip_all_opts(rest, WITH_VALUE).collect()
}

/// Whether one of the flags `f` is given, alone or among bundled short flags (`-rf`).
fn has(rest: &[Arg], f: &[&str]) -> bool {
    rest.iter().any(|a| {
        f.contains(&a.s())
            || (a.s().starts_with('-')
                && !a.s().starts_with("--")
                && f.iter()
                    .any(|x| x.len() == 2 && a.s()[1..].contains(&x[1..])))
    })
}

/// `-r`, `-R`, `-a` (archive) or their long forms.
fn recursive(rest: &[Arg]) -> bool {
    has(rest, &["-r", "-R", "-a", "--recursive", "--archive"])
}

/// `cd DIR`, `pushd DIR`: follows the working directory when it can.
pub(super) fn cd(an: &mut Analyzer<'_>, _prog: &str, rest: &[Arg], _stdin: &Stdin) -> R {
    let pos = positionals(rest);
    match pos.first() {
        Some(d) if !d.dynamic => {
            let n = an.pe.norm(d.s());
            if n.starts_with('/') {
                an.pe.cwd = Some(n);
            } else {
                an.pe.cwd = None;
                an.cwd_unknown = true;
            }
        }
        Some(_) => {
            an.pe.cwd = None;
            an.cwd_unknown = true;
        }
        None => an.pe.cwd = an.pe.home.clone(),
    }
    if let Some(d) = pos.first()
        && let Some(why) = an.pe.secret_read(d.s(), d.glob)
        && why == crate::paths::STATE
    {
        return Err(format!("refused: {why}"));
    }
    Ok(())
}

/// `tee FILES…`, `sponge FILE`.
pub(super) fn tee(an: &mut Analyzer<'_>, _prog: &str, rest: &[Arg], _stdin: &Stdin) -> R {
    let pos = positionals(rest);
    for t in pos {
        an.check_write(t)?;
    }
    Ok(())
}

/// `cp`, `install`, `rsync`, `scp`, `ln`, `link`, `rclone`: the destination is a write; the
/// sources of a recursive copy (and of any `rsync`/`rclone`) are recursive reads.
pub(super) fn copy(an: &mut Analyzer<'_>, prog: &str, rest: &[Arg], _stdin: &Stdin) -> R {
    // For the copiers `-s` is a flag (`ln -s`, `cp -s`, `install -s`), not a size.
    let with_value: Vec<&str> = WITH_VALUE
        .iter()
        .copied()
        .filter(|o| !matches!(*o, "-s" | "--size"))
        .collect();
    let pos: Vec<&Arg> = skip_all_opts(rest, &with_value).collect();
    if matches!(prog, "scp" | "rsync" | "rclone") {
        super::uploads::remote_copy(prog, &pos)?;
    }
    let explicit_target = rest
        .iter()
        .position(|a| a.s() == "-t" || a.s() == "--target-directory");
    if let Some(i) = explicit_target {
        if let Some(t) = rest.get(i + 1) {
            an.check_write(t)?;
        }
    } else if let Some(dest) = pos.last() {
        an.check_write(dest)?;
    }
    let sources = if explicit_target.is_some() {
        &pos[..]
    } else {
        &pos[..pos.len().saturating_sub(1)]
    };
    if let Some(src) = sources.iter().find(|a| names_the_broker(a)) {
        return Err(format!(
            "refused: `{prog}` copies or links the mlres binary (`{}`) to another place; a broker \
             under another name or path escapes the guard's view. Run the installed `mlres` by \
             name",
            src.s().replace(crate::shell::DYN, "$(…)")
        ));
    }
    if recursive(rest) || prog == "rsync" || prog == "rclone" {
        for src in pos.iter().take(pos.len().saturating_sub(1)) {
            an.check_recursive_read(src)?;
        }
    }
    Ok(())
}

/// Whether a source operand is the mlres binary: a path whose last component is `mlres`, or
/// a substitution that looks it up (`$(which mlres)`, `$(command -v mlres)`).
pub(super) fn names_the_broker(a: &Arg) -> bool {
    let t = a.s().trim_end_matches('/');
    t.rsplit('/').next() == Some("mlres") || a.subs.iter().any(|s| s.contains("mlres"))
}

/// `mv`, `rm`, `chmod`, `touch`, `truncate`, `patch`, …: every operand is a write (the
/// first operand of `chmod`/`chown`/`chgrp`/`setfacl` is the mode or owner), and the movers
/// and removers may not take away a directory that holds the mlres state or the guard's
/// configuration (`mv ~/.local/state …`, `rm -r ~/.local`), even without `-r`: mlres would
/// start over in an empty state directory.
pub(super) fn modify(an: &mut Analyzer<'_>, prog: &str, rest: &[Arg], _stdin: &Stdin) -> R {
    let pos = positionals(rest);
    if let Some(i) = rest
        .iter()
        .position(|a| a.s() == "-t" || a.s() == "--target-directory")
        && let Some(t) = rest.get(i + 1)
    {
        an.check_write(t)?;
    }
    let removes = matches!(
        prog,
        "mv" | "rm" | "rmdir" | "unlink" | "shred" | "srm" | "trash" | "trash-put"
    );
    if removes {
        let sources = if prog == "mv" && !rest.iter().any(|a| a.s() == "-t") {
            &pos[..pos.len().saturating_sub(1)]
        } else {
            &pos[..]
        };
        for t in sources {
            let p = t.s().replace(crate::shell::DYN, "");
            if !p.is_empty() && an.pe.contains_protected(&p, t.glob) {
                return Err(format!(
                    "refused: `{prog}` would move or delete `{}`, which holds the mlres state \
                     directory (ledger, key, approvals) or the guard's configuration; mlres would \
                     start over somewhere else. Leave it where it is: `mlres loop stop` stops the \
                     broker, and moving its state is the user's call",
                    t.s()
                ));
            }
        }
    }
    let targets: &[&Arg] = if matches!(prog, "chmod" | "chown" | "chgrp" | "setfacl")
        && !rest.iter().any(|a| a.s().starts_with("--reference"))
    {
        pos.get(1..).unwrap_or(&[])
    } else {
        &pos[..]
    };
    for t in targets {
        an.check_write(t)?;
        if recursive(rest) || prog == "rm" && has(rest, &["-r", "-R", "--recursive"]) {
            an.check_recursive_write(t)?;
        }
    }
    Ok(())
}

/// `sed -i`: the files after the script are writes. (`-pi`/`-pie` are perl's spelling;
/// `perl` itself is registered as an interpreter and never reaches this rule.)
pub(super) fn sed(an: &mut Analyzer<'_>, _prog: &str, rest: &[Arg], _stdin: &Stdin) -> R {
    let pos = positionals(rest);
    if !rest.iter().any(|a| {
        a.s().starts_with("-i")
            || a.s().starts_with("--in-place")
            || a.s() == "-pi"
            || a.s() == "-pie"
    }) {
        return Ok(());
    }
    let files = if rest
        .iter()
        .any(|a| a.s() == "-e" || a.s() == "-f" || a.s() == "--expression")
    {
        &pos[..]
    } else {
        pos.get(1..).unwrap_or(&[])
    };
    for t in files {
        an.check_write(t)?;
    }
    Ok(())
}

/// `dd of=FILE`; `dd if=` of the mlres binary is a copy of the broker.
pub(super) fn dd(an: &mut Analyzer<'_>, _prog: &str, rest: &[Arg], _stdin: &Stdin) -> R {
    for a in rest {
        if let Some(src) = a.s().strip_prefix("if=")
            && names_the_broker(&Arg {
                text: src.to_string(),
                ..a.clone()
            })
        {
            return Err(
                "refused: `dd` copies the mlres binary to another place. Run the installed \
                 `mlres` by name"
                    .into(),
            );
        }
        if let Some(of) = a.s().strip_prefix("of=") {
            an.check_write(&Arg {
                text: of.to_string(),
                ..a.clone()
            })?;
        }
    }
    Ok(())
}

/// Archivers and recursive searches: `tar -x -C DIR` writes into `DIR`; otherwise (and for
/// `grep -r`, `rg`, `ag`, `ack`, `git-grep`) the operands are read recursively. `du` only
/// measures.
pub(super) fn archive_or_search(
    an: &mut Analyzer<'_>,
    prog: &str,
    rest: &[Arg],
    _stdin: &Stdin,
) -> R {
    let extracting = matches!(prog, "tar" | "bsdtar")
        && rest.iter().any(|a| {
            a.s() == "-x"
                || a.s() == "--extract"
                || (!a.s().starts_with("--") && a.s().trim_start_matches('-').starts_with('x'))
        });
    if extracting {
        if let Some(i) = rest
            .iter()
            .position(|a| a.s() == "-C" || a.s() == "--directory")
            && let Some(d) = rest.get(i + 1)
        {
            an.check_write(d)?;
            an.check_recursive_write(d)?;
        }
        return Ok(());
    }
    let recursive_reader = match prog {
        "grep" | "egrep" | "fgrep" => recursive(rest) || has(rest, &["-r", "-R"]),
        "du" => false,
        _ => true,
    };
    if recursive_reader {
        for a in rest.iter().filter(|a| !a.is_opt()) {
            an.check_recursive_read(a)?;
        }
    }
    Ok(())
}
