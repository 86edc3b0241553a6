//! The rules, one module per family of programs, and the table that picks a family.
//!
//! [`Analyzer::argv`] gets every command after its words are resolved, including the commands
//! wrappers run. It first applies what holds for any program: the command name must be
//! literal (no substitutions, globs or braces), `mlres` must not come from a relative path,
//! aliases defined earlier in the command are expanded, a file written earlier from content
//! the guard could not see must not be run, and no argument may name a credential store or
//! the mlres state (metadata-only tools such as `ls` and `stat` may name credential files,
//! but not the state). Then it looks the normalised program name up in [`PROGRAMS`] and runs that
//! family's handler. A program the table does not list gets only these checks.

mod cargo;
mod claude;
mod deferred;
mod environment;
mod files;
mod git;
mod hf;
mod http;
mod interpreters;
mod mlres;
mod net;
mod runners;
mod shells;
mod signals;
mod terminals;
mod text;
mod uploads;
mod wrappers;

use super::{Analyzer, Arg, MAX_DEPTH, R, Stdin, deny_obf};
pub(crate) use uploads::{is_local_host, url_host};

/// A family's rule for one program: `(analyzer, normalised program name, the arguments after
/// the name, what the program reads on standard input)`. `Err(reason)` denies.
type Handler = fn(&mut Analyzer<'_>, &str, &[Arg], &Stdin) -> R;

/// Every program with a rule of its own, by family. Names are normalised base names (see
/// [`normalise_prog`]: `/usr/bin/python3.11` is `python`) and each appears once (the tests
/// below check both). A program that is not listed gets only the checks in `argv_inner`.
#[rustfmt::skip]
const PROGRAMS: &[(&[&str], Handler)] = &[
    // Wrappers: peel their options and analyse the command they run (`wrappers`).
    (&["command"], wrappers::command),
    (&["builtin", "exec", "nohup", "noglob", "setsid", "caffeinate", "catchsegv",
       "proxychains", "proxychains4", "tsp"], wrappers::plain),
    (&["time"], wrappers::time),
    (&["nice"], wrappers::nice),
    (&["ionice"], wrappers::ionice),
    (&["chrt", "taskset"], wrappers::with_one_operand),
    (&["numactl"], wrappers::numactl),
    (&["stdbuf"], wrappers::stdbuf),
    (&["timeout"], wrappers::timeout),
    (&["chroot", "faketime"], wrappers::chroot),
    (&["flock"], wrappers::flock),
    (&["strace", "ltrace"], wrappers::strace),
    (&["valgrind", "firejail"], wrappers::valgrind),
    (&["perf"], wrappers::perf),
    (&["cgexec"], wrappers::cgexec),
    (&["systemd-run"], wrappers::systemd_run),
    (&["srun", "mpirun", "mpiexec"], wrappers::mpi),
    (&["sudo", "doas", "su", "runuser", "sg"], wrappers::sudo),
    (&["env"], wrappers::env),
    (&["xargs"], wrappers::xargs),
    (&["find"], wrappers::find),
    (&["parallel"], wrappers::parallel),
    (&["watch"], wrappers::watch),
    (&["ssh"], wrappers::ssh),
    // `pv` is a pipe viewer, not a wrapper: it has no rule.
    // Terminal fakers, denied whatever they run (`terminals`).
    (&["script", "expect", "unbuffer", "empty", "zpty"], terminals::faker),
    // Shells and the builtins that run code (`shells`).
    (&["sh", "bash", "zsh", "dash", "ksh", "mksh", "ash", "fish", "busybox", "tcsh", "csh"],
        shells::shell),
    (&["eval"], shells::eval),
    (&["source", "."], shells::source),
    (&["trap"], shells::trap),
    (&["alias"], shells::alias),
    (&["hash"], shells::hash),
    (&["fc"], shells::fc),
    (&["enable"], shells::enable),
    // Commands run later or detached from this shell (`deferred`).
    (&["at", "batch"], deferred::at),
    (&["crontab"], deferred::crontab),
    (&["tmux", "screen", "byobu"], deferred::multiplexer),
    // Package and environment runners (`runners`).
    (&["uv", "uvx", "pipx", "poetry", "pdm", "hatch", "pixi", "rye", "conda", "mamba",
       "micromamba", "npx", "bunx", "pnpm", "yarn", "direnv"], runners::runner),
    // Interpreters: inline code and programs on standard input (`interpreters`).
    (&["python", "pypy", "ipython", "node", "bun", "deno", "ruby", "perl", "php", "lua",
       "luajit", "rscript", "r", "julia", "osascript"], interpreters::interpreter),
    (&["torchrun", "accelerate", "deepspeed"], interpreters::launcher),
    // Text tools whose first argument is a program (`text`).
    (&["awk", "gawk", "mawk", "nawk", "busybox-awk"], text::awk),
    (&["jq", "gojq", "jaq", "yq"], text::jq),
    // The Hub, the broker and the agent itself (`hf`, `mlres`, `git`, `http`, `claude`).
    (&["hf", "huggingface-cli"], hf::hf),
    (&["mlres"], mlres::mlres),
    (&["kill", "pkill", "killall"], signals::kill),
    (&["git"], git::git),
    (&["gh"], git::gh),
    (&["curl", "wget", "http", "https", "httpie", "xh", "xhs", "curlie", "aria2c", "lwp-request",
       "wget2"], http::http),
    (&["claude"], claude::claude),
    // Raw network tools (`net`).
    (&["socat"], net::socat),
    // Uploads of local files to other machines (`uploads`).
    (&["nc", "ncat", "netcat", "nc.openbsd", "nc.traditional", "telnet"], uploads::netcat),
    (&["sftp"], uploads::sftp),
    (&["aws", "gsutil", "gcloud", "azcopy", "az", "croc", "wormhole", "magic-wormhole", "ffsend"],
        uploads::cloud_copy),
    (&["cargo"], cargo::cargo),
    // Environment dumps (`environment`, which also checks every assignment).
    (&["printenv"], environment::printenv),
    (&["set"], environment::set),
    (&["export", "declare", "typeset", "local", "readonly"], environment::declare),
    (&["compgen"], environment::compgen),
    (&["unset"], environment::unset),
    (&["ps"], environment::ps),
    // File writers and recursive readers (`files`).
    (&["cd", "pushd"], files::cd),
    (&["tee", "sponge"], files::tee),
    (&["cp", "install", "rsync", "scp", "ln", "link", "rclone"], files::copy),
    (&["mv", "rm", "rmdir", "unlink", "shred", "truncate", "touch", "chmod", "chown", "chgrp",
       "chattr", "setfacl", "srm", "trash", "trash-put", "patch"], files::modify),
    (&["sed"], files::sed),
    (&["dd"], files::dd),
    (&["tar", "bsdtar", "zip", "7z", "7za", "rar", "cpio", "pax", "grep", "egrep", "fgrep", "rg",
       "ag", "ack", "git-grep", "du"], files::archive_or_search),
];

/// The handler registered for a normalised program name.
fn rule_for(prog: &str) -> Option<Handler> {
    PROGRAMS
        .iter()
        .find(|(names, _)| names.contains(&prog))
        .map(|&(_, handler)| handler)
}

/// Programs that only inspect metadata: their path arguments are not reads.
const PATH_EXEMPT: &[&str] = &[
    "ls", "stat", "du", "test", "[", "realpath", "readlink", "dirname", "basename", "cd", "pushd",
    "popd", "mkdir", "which", "type", "command", "file", "exa", "eza", "tree", "df", "mlres",
];

/// Programs whose first positional is a pattern or a program, not a path (unless the pattern
/// is given with an option such as `-e`).
const PATTERN_FIRST: &[&str] = &[
    "jq", "gojq", "jaq", "yq", "awk", "gawk", "mawk", "nawk", "sed", "grep", "egrep", "fgrep",
    "rg", "ag", "ack",
];

impl Analyzer<'_> {
    /// Applies the rules to one command's argv (after wrappers are peeled, recursively).
    pub(in crate::shell) fn argv(&mut self, args: &[Arg], stdin: &Stdin) -> R {
        self.step()?;
        self.depth += 1;
        let r = if self.depth > MAX_DEPTH {
            Err(deny_obf("the command nests wrappers too deeply"))
        } else {
            self.argv_inner(args, stdin)
        };
        self.depth -= 1;
        r
    }

    fn argv_inner(&mut self, args: &[Arg], stdin: &Stdin) -> R {
        let Some(name) = args.first() else {
            return Ok(());
        };
        let rest = &args[1..];
        if name.dynamic {
            if self.lenient > 0 {
                return Ok(());
            }
            return Err(deny_obf(
                "the command name is built from variables or substitutions at run time",
            ));
        }
        if name.glob || name.brace {
            return Err(deny_obf("the command name uses glob or brace expansion"));
        }
        let raw = name.text.as_str();
        let base = raw.rsplit('/').next().unwrap_or(raw);
        self.broker_by_another_path(raw, base)?;
        let prog = normalise_prog(base);
        self.exempt_args_outside_state(&prog, rest)?;
        if let Some(body) = self.aliases.get(raw).cloned() {
            if rest.iter().any(|a| a.dynamic) {
                return Err(deny_obf("an alias is called with runtime-built arguments"));
            }
            let joined = std::iter::once(body)
                .chain(rest.iter().map(|a| a.s().to_string()))
                .collect::<Vec<_>>()
                .join(" ");
            return self.analyze_shell_string(&joined, true);
        }
        if self.unseen_files.contains(&self.pe.norm(raw)) {
            return Err(deny_obf(
                "the command runs a file written earlier in the same command from content the guard cannot see",
            ));
        }
        self.args_are_not_secret_reads(&prog, rest)?;
        self.note_broker_lookup(&prog, rest);
        match rule_for(&prog) {
            Some(handler) => handler(self, &prog, rest, stdin),
            // A program run by path may be a script the agent wrote (`./x.sh`).
            None if raw.contains('/') => self.run_program_file(name),
            None => Ok(()),
        }
    }

    /// Denies reaching mlres other than as the installed broker: a program named like it
    /// (`mlres2`, `mlres-dev`), `…/mlres` at a path other than the installed one (a build in
    /// `target/`, a copy in `/tmp`), or any program the [`crate::Machine`] recognises as an
    /// mlres binary (`/tmp/m`, a copy under another name). The agent could have built,
    /// changed or wrapped such a binary; the installed `mlres` is the broker the user set up.
    fn broker_by_another_path(&mut self, raw: &str, base: &str) -> R {
        let lower = base.to_ascii_lowercase();
        let named_like = lower.starts_with("mlres") && lower != "mlres";
        let path = raw.contains('/');
        let installed = |n: &str| {
            matches!(n, "/usr/bin/mlres" | "/usr/local/bin/mlres")
                || self.pe.broker_exe.as_deref() == Some(n)
        };
        let norm = if path {
            self.pe.norm(raw)
        } else {
            String::new()
        };
        let other_build = path && lower == "mlres" && !installed(&norm);
        let recognised = path
            && !installed(&norm)
            && norm.starts_with('/')
            && matches!(
                self.file_view(&norm),
                crate::FileView::Binary { broker: true }
            );
        if named_like || other_build || recognised {
            return Err(format!(
                "refused: runs `{raw}`, an mlres other than the installed broker (a build, a copy \
                 or a link the agent could have made or changed). Run the installed `mlres` by \
                 name, e.g. `mlres loop status`"
            ));
        }
        Ok(())
    }

    /// Metadata-only programs (see [`PATH_EXEMPT`]) may name credential files, but not the
    /// mlres state directory.
    fn exempt_args_outside_state(&self, prog: &str, rest: &[Arg]) -> R {
        if PATH_EXEMPT.contains(&prog) && prog != "mlres" {
            for a in rest {
                for c in Self::path_candidates(a) {
                    if self.pe.secret_read(&c, a.glob) == Some(crate::paths::STATE) {
                        return Err(format!("refused: {} (`{c}`)", crate::paths::STATE));
                    }
                }
            }
        }
        Ok(())
    }

    /// Every argument of a program that is not metadata-only is a potential read: none may
    /// name a credential store or the mlres state.
    fn args_are_not_secret_reads(&self, prog: &str, rest: &[Arg]) -> R {
        if !PATH_EXEMPT.contains(&prog) && !matches!(prog, "ssh" | "scp" | "sftp") {
            // For pattern-first tools the first positional is a pattern/program, not a path.
            let pattern_first = PATTERN_FIRST.contains(&prog)
                && !rest.iter().any(|a| {
                    matches!(
                        a.s(),
                        "-e" | "-f" | "--regexp" | "--file" | "--expression" | "--from-file"
                    )
                });
            let skip_idx = if pattern_first {
                rest.iter().position(|a| !a.is_opt())
            } else {
                None
            };
            for (i, a) in rest.iter().enumerate() {
                if Some(i) == skip_idx {
                    continue;
                }
                self.check_read(a)?;
            }
        }
        Ok(())
    }

    /// Peels a wrapper: skips its options (and `skip` positionals) and analyses the rest.
    fn wrapped(&mut self, rest: &[Arg], opts_with_value: &[&str], skip: usize, stdin: &Stdin) -> R {
        let cmd: Vec<Arg> = skip_opts(rest, opts_with_value)
            .skip(skip)
            .cloned()
            .collect();
        if cmd.is_empty() {
            return Ok(());
        }
        self.argv(&cmd, stdin)
    }

    /// Analyses the string given to a `-c`-style option (`bash -c`, `su -c`, `flock -c`,
    /// `git rebase -x`, …) as a shell program.
    fn shell_payload(&mut self, a: Option<&Arg>) -> R {
        let Some(a) = a else { return Ok(()) };
        if a.dynamic {
            if self.lenient > 0 {
                return Ok(());
            }
            return Err(deny_obf(
                "the shell payload is built at run time (variables, substitutions or decoding)",
            ));
        }
        self.analyze_shell_string(a.s(), true)
    }
}

/// Lowercases a program's base name and folds versions and aliases (`python3.11` and
/// `Python3` are `python`, `nodejs` is `node`, `perl5` is `perl`).
fn normalise_prog(base: &str) -> String {
    let b = base.to_ascii_lowercase();
    let stripped = b.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    match stripped {
        "python" | "pypy" | "ipython" => stripped.to_string(),
        _ if b.starts_with("python") => "python".to_string(),
        "nodejs" => "node".to_string(),
        _ => {
            if b == "huggingface-cli" || b == "hf" {
                b
            } else if matches!(stripped, "perl" | "ruby" | "php" | "lua" | "luajit") {
                stripped.to_string()
            } else {
                b
            }
        }
    }
}

/// Iterates the command after leading options of a wrapper (`--` ends options).
fn skip_opts<'b>(rest: &'b [Arg], with_val: &'b [&'b str]) -> impl Iterator<Item = &'b Arg> + 'b {
    let mut i = 0;
    while i < rest.len() {
        let s = rest[i].s();
        if s == "--" {
            i += 1;
            break;
        }
        if !rest[i].is_opt() {
            break;
        }
        if with_val.contains(&s) {
            i += 2;
        } else {
            i += 1;
        }
    }
    rest[i.min(rest.len())..].iter()
}

/// Positionals anywhere, skipping options and their values.
fn skip_all_opts<'b>(
    rest: &'b [Arg],
    with_val: &'b [&'b str],
) -> impl Iterator<Item = &'b Arg> + 'b {
    let mut skip_next = false;
    let mut after_dd = false;
    rest.iter().filter(move |a| {
        if skip_next {
            skip_next = false;
            return false;
        }
        if after_dd {
            return true;
        }
        if a.s() == "--" {
            after_dd = true;
            return false;
        }
        if a.is_opt() {
            if with_val.contains(&a.s()) {
                skip_next = true;
            }
            return false;
        }
        true
    })
}

#[cfg(test)]
mod tests {
    use super::{PROGRAMS, normalise_prog};

    #[test]
    fn every_program_is_registered_once() {
        let mut seen = std::collections::HashSet::new();
        for (names, _) in PROGRAMS {
            for n in *names {
                assert!(seen.insert(*n), "`{n}` is registered twice");
            }
        }
    }

    #[test]
    fn registered_names_are_normalised() {
        for (names, _) in PROGRAMS {
            for n in *names {
                assert_eq!(normalise_prog(n), *n, "`{n}` could never be looked up");
            }
        }
    }
}
