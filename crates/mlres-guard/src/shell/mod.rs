//! Bash analysis: parse with brush-parser, walk every simple command (including those in
//! substitutions, process substitutions, functions, heredoc expansions and the payloads of
//! `bash -c`, `eval`, `xargs`, `find -exec`, `env`, `sudo`, …) and apply the rules.
//! Every rule returns `Err(reason)` to deny; `Ok(())` means "no objection".

mod checks;
mod parse;
mod rules;
mod walk;
mod words;

use std::collections::HashMap;

use self::parse::parse_program;
use self::rules::skip_all_opts;
use crate::code::is_sensitive_var;
use crate::paths::PathEnv;
use crate::{GuardContext, SANCTIONED_HUB};

type R = Result<(), String>;

/// Largest command the guard analyses; bigger ones are refused.
pub(crate) const MAX_COMMAND_BYTES: usize = 256 * 1024;
const MAX_DEPTH: usize = 24;
const MAX_STEPS: usize = 400_000;

/// Marks a dynamic (runtime-only) part of a resolved word.
const DYN: char = '\u{1}';

const OBFUSCATION: &str = "Run the command literally: the guard refuses code that is assembled, decoded or \
     indirected at run time because it cannot see what would run";

/// A word after quote removal and static expansion.
#[derive(Debug, Clone, Default)]
pub(crate) struct Arg {
    /// Text with dynamic parts replaced by a marker.
    pub text: String,
    /// Contains a substitution or an unknown variable.
    pub dynamic: bool,
    /// Contains unquoted glob characters.
    pub glob: bool,
    /// Contains an unquoted brace expansion (`{a,b}` / `{1..3}`).
    pub brace: bool,
    /// Is a process substitution (`<(...)`).
    pub procsub: bool,
    /// Variables referenced.
    pub vars: Vec<String>,
}

impl Arg {
    fn lit(s: &str) -> Self {
        Arg {
            text: s.to_string(),
            ..Default::default()
        }
    }
    fn s(&self) -> &str {
        &self.text
    }
    fn is_opt(&self) -> bool {
        self.text.starts_with('-') && self.text.len() > 1 && !self.dynamic
    }
}

#[derive(Debug, Clone)]
enum Stdin {
    Tty,
    Pipe,
    Text { body: String, dynamic: bool },
    File,
}

/// Walks shell syntax and applies the rules.
pub(crate) struct Analyzer<'a> {
    pe: PathEnv,
    _ctx: &'a GuardContext,
    vars: HashMap<String, Option<String>>,
    depth: usize,
    steps: usize,
    lenient: usize,
    cwd_unknown: bool,
    /// `mlres` was invoked somewhere.
    pub mlres_invoked: bool,
    /// PATH was assigned somewhere.
    pub path_modified: bool,
    /// A variable that moves mlres' state directory (`HOME`, `XDG_STATE_HOME`) was assigned.
    state_env_assigned: Option<String>,
    /// Number of simple commands seen.
    pub simple_count: usize,
    /// Something dynamic, a redirect or an assignment was seen (disqualifies Allow).
    pub impure: bool,
    /// The last mlres invocation was a read-only command.
    pub mlres_read_only: bool,
    aliases: HashMap<String, String>,
    /// Files written in this command from content the guard could not see.
    unseen_files: std::collections::HashSet<String>,
}

/// Why an agent's `mlres` must use the state directory the user set up: the broker's commands run
/// outside Claude Code's sandbox with the user's credentials (see `mlres setup claude`), and a
/// state directory of the agent's choosing could hold an approval the agent forged there.
const STATE_DIR_REASON: &str = "refused: chooses another mlres state directory. The broker's \
     commands run with the user's credentials, and only the state directory the user set up holds \
     the human's approval; run `mlres` without --state-dir, MLRES_STATE_DIR, XDG_STATE_HOME or HOME";

fn deny_obf(what: &str) -> String {
    format!("{what}. {OBFUSCATION}")
}

impl<'a> Analyzer<'a> {
    pub(crate) fn new(ctx: &'a GuardContext, cwd: Option<&str>) -> Self {
        Analyzer {
            pe: PathEnv::new(ctx, cwd),
            _ctx: ctx,
            vars: HashMap::new(),
            depth: 0,
            steps: 0,
            lenient: 0,
            cwd_unknown: false,
            mlres_invoked: false,
            path_modified: false,
            state_env_assigned: None,
            simple_count: 0,
            impure: false,
            mlres_read_only: false,
            aliases: HashMap::new(),
            unseen_files: std::collections::HashSet::new(),
        }
    }

    pub(crate) fn paths(&self) -> &PathEnv {
        &self.pe
    }

    fn step(&mut self) -> R {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return Err("the command is too complex for the guard to analyse; split it up".into());
        }
        Ok(())
    }

    /// Analyses a top-level Bash tool command.
    pub(crate) fn analyze_command(&mut self, src: &str) -> R {
        if src.len() > MAX_COMMAND_BYTES {
            return Err(format!(
                "the command is {} bytes, over the guard's {} byte limit; write large content with \
                 the Write tool and run a short command",
                src.len(),
                MAX_COMMAND_BYTES
            ));
        }
        self.analyze_shell_string(src, true)?;
        if self.path_modified && self.mlres_invoked {
            return Err(
                "the command changes PATH and runs `mlres`, which could run a fake broker. Run \
                 `mlres …` with the normal PATH"
                    .into(),
            );
        }
        Ok(())
    }

    /// Parses and analyses a shell string (payload of `bash -c`, `eval`, …).
    fn analyze_shell_string(&mut self, src: &str, strict: bool) -> R {
        self.depth += 1;
        let res = (|| {
            if self.depth > MAX_DEPTH {
                return Err(deny_obf(
                    "the command nests shells/substitutions too deeply",
                ));
            }
            let prog = match parse_program(src) {
                Ok(p) => p,
                Err(e) => {
                    if strict && self.lenient == 0 {
                        return Err(e);
                    }
                    return Ok(());
                }
            };
            for cl in &prog.complete_commands {
                self.compound_list(cl, false)?;
            }
            Ok(())
        })();
        self.depth -= 1;
        res
    }

    /// Analyses a command line found inside code or prose: parse failures are ignored and
    /// runtime-built command names are not by themselves refused.
    pub(crate) fn analyze_embedded(&mut self, src: &str) -> R {
        self.lenient += 1;
        let saved = self.snapshot();
        let r = self.analyze_shell_string(src, false);
        self.restore(saved);
        self.lenient -= 1;
        r
    }

    /// Same as [`Self::analyze_embedded`] for a list-style argv.
    pub(crate) fn analyze_embedded_argv(&mut self, argv: &[String]) -> R {
        self.lenient += 1;
        let saved = self.snapshot();
        let args: Vec<Arg> = argv.iter().map(|s| Arg::lit(s)).collect();
        let r = self.argv(&args, &Stdin::Tty);
        self.restore(saved);
        self.lenient -= 1;
        r
    }

    fn snapshot(&self) -> (usize, bool, usize) {
        (self.simple_count, self.mlres_read_only, self.depth)
    }
    fn restore(&mut self, s: (usize, bool, usize)) {
        self.simple_count = s.0;
        self.mlres_read_only = s.1;
        self.depth = s.2;
    }

    fn assignment(&mut self, name: &str, val: &Arg, prefix: bool) -> R {
        let _ = prefix;
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
            "HOME" | "XDG_STATE_HOME" => self.state_env_assigned = Some(name.to_string()),
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

    /// The rules not yet moved into `rules` (transitional).
    fn legacy_rules(&mut self, prog: &str, rest: &[Arg], stdin: &Stdin) -> R {
        match prog {
            // ------------------------------------------------ environment dumps
            "printenv" => {
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
            "set" => {
                if rest.is_empty() {
                    return Err(env_dump("set"));
                }
                Ok(())
            }
            "export" | "declare" | "typeset" | "local" | "readonly" => self.declare(prog, rest),
            "compgen" => {
                let bad = rest.iter().enumerate().any(|(i, a)| {
                    a.s() == "-v"
                        || a.s() == "-e"
                        || (a.s().starts_with('-')
                            && !a.s().starts_with("--")
                            && (a.s().contains('v') || a.s().contains('e')))
                        || (a.s() == "-A"
                            && rest.get(i + 1).is_some_and(|n| {
                                matches!(n.s(), "variable" | "export" | "arrayvar")
                            }))
                });
                if bad {
                    return Err(env_dump("compgen"));
                }
                Ok(())
            }
            "ps" => {
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
            // ------------------------------------------------ file writers / readers
            _ => self.file_ops(prog, rest, stdin),
        }
    }

    fn declare(&mut self, prog: &str, rest: &[Arg]) -> R {
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
                    self.assignment(name.trim_end_matches('+'), &val, false)?;
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

    /// Readers/writers of files: write targets and recursive reads.
    fn file_ops(&mut self, prog: &str, rest: &[Arg], _stdin: &Stdin) -> R {
        let pos: Vec<&Arg> = skip_all_opts(
            rest,
            &[
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
            ],
        )
        .collect();
        let has = |f: &[&str]| {
            rest.iter().any(|a| {
                f.contains(&a.s())
                    || (a.s().starts_with('-')
                        && !a.s().starts_with("--")
                        && f.iter()
                            .any(|x| x.len() == 2 && a.s()[1..].contains(&x[1..])))
            })
        };
        let recursive = has(&["-r", "-R", "-a", "--recursive", "--archive"]);
        match prog {
            "cd" | "pushd" => {
                match pos.first() {
                    Some(d) if !d.dynamic => {
                        let n = self.pe.norm(d.s());
                        if n.starts_with('/') {
                            self.pe.cwd = Some(n);
                        } else {
                            self.pe.cwd = None;
                            self.cwd_unknown = true;
                        }
                    }
                    Some(_) => {
                        self.pe.cwd = None;
                        self.cwd_unknown = true;
                    }
                    None => self.pe.cwd = self.pe.home.clone(),
                }
                if let Some(d) = pos.first()
                    && let Some(why) = self.pe.secret_read(d.s(), d.glob)
                    && why == crate::paths::STATE
                {
                    return Err(format!("refused: {why}"));
                }
                Ok(())
            }
            "tee" | "sponge" => {
                for t in pos {
                    self.check_write(t)?;
                }
                Ok(())
            }
            "cp" | "install" | "rsync" | "scp" | "ln" | "link" | "rclone" => {
                if let Some(i) = rest
                    .iter()
                    .position(|a| a.s() == "-t" || a.s() == "--target-directory")
                {
                    if let Some(t) = rest.get(i + 1) {
                        self.check_write(t)?;
                    }
                } else if let Some(dest) = pos.last() {
                    self.check_write(dest)?;
                }
                if recursive || prog == "rsync" || prog == "rclone" {
                    for src in pos.iter().take(pos.len().saturating_sub(1)) {
                        self.check_recursive_read(src)?;
                    }
                }
                Ok(())
            }
            "mv" | "rm" | "rmdir" | "unlink" | "shred" | "truncate" | "touch" | "chmod"
            | "chown" | "chgrp" | "chattr" | "setfacl" | "srm" | "trash" | "trash-put"
            | "patch" | "sed" | "perl" => {
                if prog == "sed" || prog == "perl" {
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
                        self.check_write(t)?;
                    }
                    return Ok(());
                }
                let targets: &[&Arg] = if matches!(prog, "chmod" | "chown" | "chgrp" | "setfacl")
                    && !rest.iter().any(|a| a.s().starts_with("--reference"))
                {
                    pos.get(1..).unwrap_or(&[])
                } else {
                    &pos[..]
                };
                for t in targets {
                    self.check_write(t)?;
                    if recursive || prog == "rm" && has(&["-r", "-R", "--recursive"]) {
                        self.check_recursive_write(t)?;
                    }
                }
                Ok(())
            }
            "dd" => {
                for a in rest {
                    if let Some(of) = a.s().strip_prefix("of=") {
                        self.check_write(&Arg {
                            text: of.to_string(),
                            ..a.clone()
                        })?;
                    }
                }
                Ok(())
            }
            "tar" | "bsdtar" | "zip" | "7z" | "7za" | "rar" | "cpio" | "pax" | "grep" | "egrep"
            | "fgrep" | "rg" | "ag" | "ack" | "git-grep" | "du" => {
                let extracting = matches!(prog, "tar" | "bsdtar")
                    && rest.iter().any(|a| {
                        a.s() == "-x"
                            || a.s() == "--extract"
                            || (!a.s().starts_with("--")
                                && a.s().trim_start_matches('-').starts_with('x'))
                    });
                if extracting {
                    if let Some(i) = rest
                        .iter()
                        .position(|a| a.s() == "-C" || a.s() == "--directory")
                        && let Some(d) = rest.get(i + 1)
                    {
                        self.check_write(d)?;
                        self.check_recursive_write(d)?;
                    }
                    return Ok(());
                }
                let recursive_reader = match prog {
                    "grep" | "egrep" | "fgrep" => recursive || has(&["-r", "-R"]),
                    "du" => false,
                    _ => true,
                };
                if recursive_reader {
                    for a in rest.iter().filter(|a| !a.is_opt()) {
                        self.check_recursive_read(a)?;
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

fn env_dump(what: &str) -> String {
    format!(
        "refused: `{what}` dumps the environment, which holds tokens. Print single, non-secret \
         variables instead (e.g. `echo \"$CUDA_VISIBLE_DEVICES\"`)"
    )
}
