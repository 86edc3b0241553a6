//! Bash analysis: parse with brush-parser, walk every simple command (including those in
//! substitutions, process substitutions, functions, heredoc expansions and the payloads of
//! `bash -c`, `eval`, `xargs`, `find -exec`, `env`, `sudo`, …) and apply the rules.
//! Every rule returns `Err(reason)` to deny; `Ok(())` means "no objection".
//!
//! The walker and the rules live apart:
//!
//! * `parse`: the fenced calls into brush-parser, and `$'…'` decoding;
//! * `words`: resolving a word (quotes, tildes, static variables, substitutions);
//! * `walk`: the AST walker (lists, pipelines, compound commands, redirects, simple
//!   commands), which hands every command's argv to the rules;
//! * `checks`: the path checks shared by redirects and rules;
//! * `rules`: what each program may do, one module per family of programs, registered in the
//!   `PROGRAMS` table in `rules/mod.rs`.
//!
//! This module holds what they share: the [`Analyzer`] state, the resolved word [`Arg`], the
//! limits, and the entry points the other tools (`crate::code`, `crate::tools`) call.

mod checks;
mod parse;
mod rules;

pub(crate) use rules::{is_local_host, url_host};
mod scripts;
mod walk;
mod words;

use std::collections::HashMap;

use self::parse::parse_program;
use crate::paths::PathEnv;
use crate::{GuardContext, Machine};

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
    /// The source text of the command substitutions in the word (`which mlres` for
    /// `$(which mlres)`), already analysed as commands of their own.
    pub subs: Vec<String>,
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
    /// What the guard may ask about files and processes (the binary's IO, or nothing).
    pub(crate) machine: &'a dyn Machine,
    vars: HashMap<String, Option<String>>,
    depth: usize,
    steps: usize,
    lenient: usize,
    cwd_unknown: bool,
    /// `mlres` was invoked somewhere.
    pub mlres_invoked: bool,
    /// PATH was assigned somewhere.
    pub path_modified: bool,
    /// Something in this command moves mlres' state directory for the commands after it
    /// (`HOME`/`XDG_STATE_HOME` assigned or unset, `env -i`, `sudo`): how, for the reason.
    pub(crate) state_override: Option<String>,
    /// Number of simple commands seen.
    pub simple_count: usize,
    /// Something dynamic, a redirect or an assignment was seen (disqualifies Allow).
    pub impure: bool,
    /// The last mlres invocation was a read-only command.
    pub mlres_read_only: bool,
    aliases: HashMap<String, String>,
    /// Files written in this command from content the guard could not see.
    unseen_files: std::collections::HashSet<String>,
    /// Files written in this command from content the guard saw, by normalised path: what
    /// runs if the command then runs them.
    seen_files: HashMap<String, String>,
    /// Script files read through the Machine so far.
    scripts_read: usize,
    /// What the Machine said about each path asked.
    files_seen: HashMap<String, crate::FileView>,
    /// This command looks mlres processes up (`pgrep -f mlres`): a `kill` of computed pids
    /// in it would stop them.
    pub(crate) broker_looked_up: bool,
}

fn deny_obf(what: &str) -> String {
    format!("{what}. {OBFUSCATION}")
}

impl<'a> Analyzer<'a> {
    pub(crate) fn new(ctx: &'a GuardContext, cwd: Option<&str>, machine: &'a dyn Machine) -> Self {
        Analyzer {
            pe: PathEnv::new(ctx, cwd),
            _ctx: ctx,
            machine,
            vars: HashMap::new(),
            depth: 0,
            steps: 0,
            lenient: 0,
            cwd_unknown: false,
            mlres_invoked: false,
            path_modified: false,
            state_override: None,
            simple_count: 0,
            impure: false,
            mlres_read_only: false,
            aliases: HashMap::new(),
            unseen_files: std::collections::HashSet::new(),
            seen_files: HashMap::new(),
            scripts_read: 0,
            files_seen: HashMap::new(),
            broker_looked_up: false,
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
}
