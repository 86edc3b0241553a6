//! Wrappers: programs that run another command given as their arguments (`nohup`, `time`,
//! `nice`, `timeout`, `sudo`, `env`, `xargs`, `find -exec`, `parallel`, `watch`, `ssh host
//! cmd`, `strace`, `srun`, …). Each handler skips the wrapper's own options and
//! hands the wrapped command back to [`Analyzer::argv`] (or a `-c`-style string to the shell
//! parser), so it meets every rule a bare command would. Denied here: wrapped commands built
//! at run time (`sudo -s "$x"`, `env -S "$x"`, `watch "$x"`, a `find -exec` command named by
//! the found files), command lines piped into `parallel`, a bare `env` (it dumps the
//! environment), and `find` searching for credential files or running `-exec` over
//! credential stores or the mlres state.

use super::environment::env_dump;
use super::{PATH_EXEMPT, normalise_prog, skip_opts};
use crate::shell::{Analyzer, Arg, DYN, R, Stdin, deny_obf};

/// `command cmd …` runs `cmd`; `command -v`/`-V` only looks it up.
pub(super) fn command(an: &mut Analyzer<'_>, _prog: &str, rest: &[Arg], stdin: &Stdin) -> R {
    if rest.iter().any(|a| a.s() == "-v" || a.s() == "-V") {
        return Ok(());
    }
    an.wrapped(rest, &[], 0, stdin)
}

/// Wrappers whose only option with a value is `-a` (`exec -a name`).
pub(super) fn plain(an: &mut Analyzer<'_>, _prog: &str, rest: &[Arg], stdin: &Stdin) -> R {
    an.wrapped(rest, &["-a"], 0, stdin)
}

pub(super) fn time(an: &mut Analyzer<'_>, _prog: &str, rest: &[Arg], stdin: &Stdin) -> R {
    an.wrapped(rest, &["-f", "-o", "--format", "--output"], 0, stdin)
}

pub(super) fn nice(an: &mut Analyzer<'_>, _prog: &str, rest: &[Arg], stdin: &Stdin) -> R {
    an.wrapped(rest, &["-n", "--adjustment"], 0, stdin)
}

pub(super) fn ionice(an: &mut Analyzer<'_>, _prog: &str, rest: &[Arg], stdin: &Stdin) -> R {
    an.wrapped(
        rest,
        &["-c", "-n", "-p", "-P", "-u", "--class", "--classdata"],
        0,
        stdin,
    )
}

/// `chrt PRIORITY cmd`, `taskset MASK cmd`: one operand before the command.
pub(super) fn with_one_operand(
    an: &mut Analyzer<'_>,
    _prog: &str,
    rest: &[Arg],
    stdin: &Stdin,
) -> R {
    an.wrapped(rest, &[], 1, stdin)
}

pub(super) fn numactl(an: &mut Analyzer<'_>, _prog: &str, rest: &[Arg], stdin: &Stdin) -> R {
    an.wrapped(
        rest,
        &[
            "-C",
            "-N",
            "-m",
            "-p",
            "-i",
            "--cpunodebind",
            "--membind",
            "--physcpubind",
            "--preferred",
            "--interleave",
        ],
        0,
        stdin,
    )
}

pub(super) fn stdbuf(an: &mut Analyzer<'_>, _prog: &str, rest: &[Arg], stdin: &Stdin) -> R {
    an.wrapped(
        rest,
        &["-i", "-o", "-e", "--input", "--output", "--error"],
        0,
        stdin,
    )
}

/// `timeout DURATION cmd`.
pub(super) fn timeout(an: &mut Analyzer<'_>, _prog: &str, rest: &[Arg], stdin: &Stdin) -> R {
    an.wrapped(rest, &["-s", "-k", "--signal", "--kill-after"], 1, stdin)
}

/// `chroot DIR cmd`, `faketime TIME cmd`.
pub(super) fn chroot(an: &mut Analyzer<'_>, _prog: &str, rest: &[Arg], stdin: &Stdin) -> R {
    an.wrapped(
        rest,
        &["-w", "-E", "--timeout", "--conflict-exit-code"],
        1,
        stdin,
    )
}

/// `flock FILE cmd`, or `flock FILE -c 'shell string'`.
pub(super) fn flock(an: &mut Analyzer<'_>, prog: &str, rest: &[Arg], stdin: &Stdin) -> R {
    if let Some(i) = rest
        .iter()
        .position(|a| a.s() == "-c" || a.s() == "--command")
    {
        return an.shell_payload(rest.get(i + 1));
    }
    chroot(an, prog, rest, stdin)
}

pub(super) fn strace(an: &mut Analyzer<'_>, _prog: &str, rest: &[Arg], stdin: &Stdin) -> R {
    an.wrapped(
        rest,
        &[
            "-o", "-e", "-p", "-s", "-u", "-E", "-P", "-X", "-a", "-b", "-I", "-O", "-S",
        ],
        0,
        stdin,
    )
}

/// `valgrind`, `firejail`: no option the guard needs to know takes a value.
pub(super) fn valgrind(an: &mut Analyzer<'_>, _prog: &str, rest: &[Arg], stdin: &Stdin) -> R {
    an.wrapped(rest, &[], 0, stdin)
}

/// `perf SUBCOMMAND … cmd`.
pub(super) fn perf(an: &mut Analyzer<'_>, _prog: &str, rest: &[Arg], stdin: &Stdin) -> R {
    an.wrapped(rest, &["-o", "-e", "-F", "-c", "-p", "-t"], 1, stdin)
}

pub(super) fn cgexec(an: &mut Analyzer<'_>, _prog: &str, rest: &[Arg], stdin: &Stdin) -> R {
    an.wrapped(rest, &["-g"], 0, stdin)
}

pub(super) fn systemd_run(an: &mut Analyzer<'_>, _prog: &str, rest: &[Arg], stdin: &Stdin) -> R {
    an.wrapped(
        rest,
        &[
            "-p",
            "-u",
            "-E",
            "--unit",
            "--property",
            "--setenv",
            "-M",
            "--machine",
            "--uid",
            "--gid",
            "--slice",
        ],
        0,
        stdin,
    )
}

/// Cluster launchers: `srun`, `mpirun`, `mpiexec`.
pub(super) fn mpi(an: &mut Analyzer<'_>, _prog: &str, rest: &[Arg], stdin: &Stdin) -> R {
    an.wrapped(
        rest,
        &[
            "-n",
            "-N",
            "-c",
            "-p",
            "-t",
            "-J",
            "-G",
            "-w",
            "--gres",
            "--partition",
            "--time",
            "--job-name",
            "-np",
            "--hostfile",
            "-H",
            "--host",
        ],
        0,
        stdin,
    )
}

/// `sudo`, `doas`, `su -c`, `runuser`, `sg`; `sudo -s`/`-i` runs its words as a shell string.
pub(super) fn sudo(an: &mut Analyzer<'_>, prog: &str, rest: &[Arg], stdin: &Stdin) -> R {
    // Whatever it runs runs as another user (root by default) with that user's HOME, so an
    // `mlres` in it would use another state directory.
    an.state_override = Some(format!(
        "`{prog}` runs it as another user, with that user's HOME"
    ));
    if matches!(prog, "su" | "runuser" | "sg")
        && let Some(i) = rest
            .iter()
            .position(|a| a.s() == "-c" || a.s() == "--command")
    {
        return an.shell_payload(rest.get(i + 1));
    }
    let with_val = [
        "-u", "-g", "-h", "-p", "-C", "-D", "-r", "-t", "-U", "-T", "--user", "--group", "--chdir",
        "--prompt", "--host",
    ];
    let shell_mode = rest
        .iter()
        .take_while(|a| a.is_opt())
        .any(|a| a.s() == "-s" || a.s() == "-i" || a.s() == "--shell" || a.s() == "--login");
    let cmd: Vec<Arg> = skip_opts(rest, &with_val).cloned().collect();
    if matches!(prog, "su" | "runuser" | "sg") {
        // su [user]: interactive; runuser -u user -- cmd
        if prog == "runuser" {
            return an.argv(&cmd, stdin);
        }
        return Ok(());
    }
    if shell_mode && !cmd.is_empty() {
        if cmd.iter().any(|a| a.dynamic) {
            return Err(deny_obf("`sudo -s` payload built at run time"));
        }
        let joined = cmd
            .iter()
            .map(|a| a.s().to_string())
            .collect::<Vec<_>>()
            .join(" ");
        return an.analyze_shell_string(&joined, true);
    }
    an.argv(&cmd, stdin)
}

/// `env [-u X] [NAME=value …] cmd` (the assignments are checked like shell assignments),
/// `env -S 'string'`; a bare `env` dumps the environment.
pub(super) fn env(an: &mut Analyzer<'_>, _prog: &str, rest: &[Arg], stdin: &Stdin) -> R {
    let mut i = 0;
    while i < rest.len() {
        let a = &rest[i];
        let s = a.s();
        if s == "--" {
            i += 1;
            break;
        }
        if s == "-S"
            || s == "--split-string"
            || s.starts_with("-S") && s.len() > 2
            || s.starts_with("--split-string=")
        {
            let payload = if s == "-S" || s == "--split-string" {
                rest.get(i + 1).cloned()
            } else {
                Some(Arg {
                    text: s
                        .split_once('=')
                        .map(|(_, v)| v.to_string())
                        .unwrap_or_else(|| s[2..].to_string()),
                    ..a.clone()
                })
            };
            let skip = if s == "-S" || s == "--split-string" {
                2
            } else {
                1
            };
            let mut joined = payload.map(|p| {
                if p.dynamic {
                    Err(deny_obf("`env -S` with a runtime-built string"))
                } else {
                    Ok(p.text)
                }
            });
            let tail: Vec<String> = rest[(i + skip).min(rest.len())..]
                .iter()
                .map(|a| a.s().to_string())
                .collect();
            if let Some(Ok(j)) = &mut joined {
                for t in tail {
                    j.push(' ');
                    j.push_str(&t);
                }
            }
            return match joined {
                Some(Ok(j)) => an.analyze_shell_string(&j, true),
                Some(Err(e)) => Err(e),
                None => Ok(()),
            };
        }
        if matches!(s, "-i" | "-" | "--ignore-environment") {
            an.state_override = Some("`env -i` clears HOME for it".into());
        }
        if matches!(s, "-u" | "--unset") {
            if let Some(n) = rest.get(i + 1) {
                let n = n.s();
                if n.starts_with("MLRES_") {
                    return Err(format!(
                        "refused: `env -u {n}` changes one of mlres' own settings; only a human \
                         sets them"
                    ));
                }
                if matches!(n, "HOME" | "XDG_STATE_HOME") {
                    an.state_override = Some(format!("`env -u {n}` is in this command"));
                }
            }
            i += 2;
            continue;
        }
        if matches!(s, "-C" | "--chdir") {
            i += 2;
            continue;
        }
        if a.is_opt() {
            i += 1;
            continue;
        }
        if let Some((n, _)) = s.split_once('=')
            && !n.is_empty()
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            let val = Arg {
                text: s
                    .split_once('=')
                    .map(|(_, v)| v.to_string())
                    .unwrap_or_default(),
                ..a.clone()
            };
            an.assignment(n, &val, true)?;
            i += 1;
            continue;
        }
        break;
    }
    let cmd = &rest[i.min(rest.len())..];
    if cmd.is_empty() {
        return Err(env_dump("env"));
    }
    an.argv(cmd, stdin)
}

pub(super) fn xargs(an: &mut Analyzer<'_>, _prog: &str, rest: &[Arg], _stdin: &Stdin) -> R {
    let with_val = [
        "-I",
        "-L",
        "-n",
        "-P",
        "-s",
        "-d",
        "-E",
        "-a",
        "--max-args",
        "--max-procs",
        "--delimiter",
        "--arg-file",
        "--replace",
        "-l",
    ];
    let mut cmd: Vec<Arg> = skip_opts(rest, &with_val).cloned().collect();
    if cmd.is_empty() {
        return Ok(());
    }
    // Arguments arrive from stdin: the replace string (`-I {}`) stands for them, or they are
    // appended. Either way the command runs with words the guard cannot see.
    let replace = rest.iter().enumerate().find_map(|(i, a)| {
        let s = a.s();
        if s == "-I" || s == "--replace" {
            rest.get(i + 1).map(|r| r.s().to_string())
        } else if let Some(r) = s.strip_prefix("--replace=") {
            Some(r.to_string())
        } else if s == "-i" {
            Some("{}".to_string())
        } else {
            s.strip_prefix("-I")
                .or_else(|| s.strip_prefix("-i"))
                .filter(|r| !r.is_empty())
                .map(str::to_string)
        }
    });
    let unseen = Arg {
        text: DYN.to_string(),
        dynamic: true,
        ..Default::default()
    };
    match replace {
        Some(r) if !r.is_empty() => {
            for a in cmd.iter_mut().skip(1) {
                if a.text.contains(&r) {
                    a.text = a.text.replace(&r, &DYN.to_string());
                    a.dynamic = true;
                }
            }
        }
        _ => cmd.push(unseen),
    }
    an.argv(&cmd, &Stdin::Tty)
}

/// `find ROOTS … [-exec cmd ;] [-delete] [-fprint F]`.
pub(super) fn find(an: &mut Analyzer<'_>, _prog: &str, rest: &[Arg], _stdin: &Stdin) -> R {
    let roots: Vec<&Arg> = rest
        .iter()
        .take_while(|a| !a.s().starts_with('-') && a.s() != "(" && a.s() != "!")
        .collect();
    let roots: Vec<Arg> = if roots.is_empty() {
        vec![Arg::lit(".")]
    } else {
        roots.into_iter().cloned().collect()
    };
    let mut i = 0;
    let mut execs: Vec<Vec<Arg>> = Vec::new();
    let mut deletes = false;
    let mut name_hits = false;
    while i < rest.len() {
        let s = rest[i].s();
        match s {
            "-exec" | "-execdir" | "-ok" | "-okdir" => {
                let mut cmd = Vec::new();
                i += 1;
                while i < rest.len() && rest[i].s() != ";" && rest[i].s() != "+" {
                    cmd.push(rest[i].clone());
                    i += 1;
                }
                execs.push(cmd);
            }
            "-delete" => deletes = true,
            "-fprint" | "-fprint0" | "-fprintf" | "-fls" => {
                if let Some(t) = rest.get(i + 1) {
                    an.check_write(t)?;
                }
            }
            "-name" | "-iname" | "-path" | "-ipath" | "-wholename" | "-regex" | "-iregex"
                if rest.get(i + 1).is_some_and(names_credentials) =>
            {
                name_hits = true;
            }
            _ => {}
        }
        i += 1;
    }
    for r in &roots {
        if deletes {
            an.check_write(r)?;
            an.check_recursive_write(r)?;
        }
        let reaches_secrets = an.pe.contains_secrets(&r.text.replace(DYN, ""), r.glob);
        if reaches_secrets && name_hits {
            return Err(format!(
                "refused: searches `{}` for credential files. mlres handles credentials itself",
                r.s()
            ));
        }
        if reaches_secrets
            && execs.iter().any(|c| {
                c.first().is_some_and(|n| {
                    !PATH_EXEMPT
                        .contains(&normalise_prog(n.s().rsplit('/').next().unwrap_or("")).as_str())
                })
            })
        {
            return Err(format!(
                "refused: `find {} -exec …` would run over credential stores or the mlres state. \
                 Limit it to the project directory",
                r.s()
            ));
        }
    }
    for cmd in execs {
        let cmd: Vec<Arg> = cmd
            .into_iter()
            .map(|a| {
                if a.s().contains("{}") {
                    Arg {
                        text: a.text.replace("{}", &DYN.to_string()),
                        dynamic: true,
                        ..a
                    }
                } else {
                    a
                }
            })
            .collect();
        if cmd.first().is_some_and(|c| c.dynamic) {
            return Err(deny_obf(
                "`find -exec` runs a command named by the found files",
            ));
        }
        an.argv(&cmd, &Stdin::Tty)?;
    }
    Ok(())
}

/// `parallel cmd ::: args`; with no command, `parallel` runs the lines it reads.
pub(super) fn parallel(an: &mut Analyzer<'_>, _prog: &str, rest: &[Arg], stdin: &Stdin) -> R {
    let cmd: Vec<Arg> = rest
        .iter()
        .skip_while(|a| a.is_opt())
        .take_while(|a| !a.s().starts_with(":::"))
        .cloned()
        .collect();
    if cmd.is_empty() {
        if matches!(stdin, Stdin::Pipe) {
            return Err(deny_obf(
                "piping command lines into `parallel` executes them unseen",
            ));
        }
        return Ok(());
    }
    if cmd.len() == 1 {
        return an.shell_payload(cmd.first());
    }
    an.argv(&cmd, &Stdin::Tty)
}

/// `watch cmd …` runs its words as a shell string.
pub(super) fn watch(an: &mut Analyzer<'_>, _prog: &str, rest: &[Arg], _stdin: &Stdin) -> R {
    let cmd: Vec<&Arg> =
        skip_opts(rest, &["-n", "-d", "--interval", "-c", "-g", "-x", "-q"]).collect();
    if cmd.iter().any(|a| a.dynamic) {
        return Err(deny_obf("`watch` runs a command built at run time"));
    }
    let joined = cmd
        .iter()
        .map(|a| a.s().to_string())
        .collect::<Vec<_>>()
        .join(" ");
    an.analyze_shell_string(&joined, true)
}

/// `ssh HOST cmd …` runs its words as a shell string (on the remote host, which may well
/// hold the same credentials).
pub(super) fn ssh(an: &mut Analyzer<'_>, prog: &str, rest: &[Arg], stdin: &Stdin) -> R {
    let mut pos = skip_opts(
        rest,
        &[
            "-i", "-p", "-l", "-o", "-F", "-J", "-L", "-R", "-D", "-b", "-c", "-e", "-m", "-O",
            "-S", "-W", "-w", "-E", "-B", "-I", "-Q",
        ],
    );
    let host = pos.next();
    // What it reads on standard input goes to the other machine (`tar c data | ssh box 'cat
    // > d.tgz'`, `ssh box < script.sh`).
    if matches!(stdin, Stdin::File | Stdin::Pipe | Stdin::Text { .. }) {
        let h = host.and_then(|h| super::uploads::url_host(h.s()));
        if !h.as_deref().is_some_and(super::uploads::is_local_host) {
            let to = h
                .map(|h| format!("`{h}`"))
                .unwrap_or_else(|| "another machine".into());
            return Err(super::uploads::reason(
                &format!("`{prog}` fed a file or a pipe"),
                &to,
            ));
        }
    }
    let remote: Vec<&Arg> = pos.collect();
    if remote.is_empty() {
        return Ok(());
    }
    if remote.iter().any(|a| a.dynamic) {
        return Err(deny_obf("the remote command of `ssh` is built at run time"));
    }
    let joined = remote
        .iter()
        .map(|a| a.s().to_string())
        .collect::<Vec<_>>()
        .join(" ");
    an.analyze_shell_string(&joined, true)
}

/// File names (and their dotted forms) that hold credentials.
const SECRET_NAMES: &[&str] = &[
    "token",
    "stored_tokens",
    "credentials",
    "credentials.json",
    "hosts.yml",
    "netrc",
    "git-credentials",
    "id_rsa",
    "id_ed25519",
    "id_ecdsa",
    "env",
    "environ",
    "claude.json",
    "kaggle.json",
];

/// Whether a `find -name`/`-path`/`-regex` pattern looks for credential files.
fn names_credentials(p: &Arg) -> bool {
    let pat = p.s().trim_matches(['*', '.', '/']).to_ascii_lowercase();
    let raw = p.s().to_ascii_lowercase();
    SECRET_NAMES.iter().any(|n| {
        pat == *n || crate::paths::fnmatch(&raw, n) || crate::paths::fnmatch(&raw, &format!(".{n}"))
    })
}
