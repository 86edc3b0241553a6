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
use crate::code::{self, APPROVE_REASON, is_sensitive_var, mentions_hub_host};
use crate::paths::PathEnv;
use crate::{GuardContext, SANCTIONED_HUB, SANCTIONED_SPEND};

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
            // ------------------------------------------------ Hub and broker
            "hf" | "huggingface-cli" => self.hf_cli(prog, rest),
            "mlres" => self.mlres(rest),
            "git" => self.git(rest),
            "gh" => {
                let pos: Vec<&str> = rest.iter().filter(|a| !a.is_opt()).map(|a| a.s()).collect();
                if pos.first() == Some(&"auth")
                    && (pos.get(1) == Some(&"token")
                        || rest
                            .iter()
                            .any(|a| a.s() == "--show-token" || a.s() == "-t"))
                {
                    return Err(
                        "refused: prints the GitHub token. Credentials never go to the agent"
                            .into(),
                    );
                }
                Ok(())
            }
            "curl" | "wget" | "http" | "https" | "httpie" | "xh" | "xhs" | "curlie" | "aria2c"
            | "lwp-request" | "wget2" => self.http(prog, rest),
            "claude" => self.claude(rest),
            "kill" | "pkill" | "killall" => {
                if rest.iter().any(|a| a.s().contains("mlres")) {
                    return Err("refused: stopping the mlres broker from the agent. Use `mlres loop stop` or ask the user".into());
                }
                Ok(())
            }
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

    fn hf_cli(&mut self, prog: &str, rest: &[Arg]) -> R {
        let with_val = ["--token", "--endpoint"];
        let pos: Vec<String> = skip_all_opts(rest, &with_val)
            .map(|a| a.s().to_ascii_lowercase())
            .collect();
        if rest.iter().any(|a| a.dynamic) && pos.is_empty() {
            return Err(deny_obf("the hf subcommand is built at run time"));
        }
        let sub = pos.first().map(String::as_str).unwrap_or("");
        let sub2 = pos.get(1).map(String::as_str).unwrap_or("");
        let readonly_list = |s2: &str| {
            matches!(
                s2,
                "" | "ls" | "list" | "info" | "search" | "show" | "get" | "card"
            )
        };
        let ok = match sub {
            "" | "help" | "version" | "env" | "download" | "whoami" | "scan-cache"
            | "delete-cache" | "cache" => true,
            "auth" => matches!(sub2, "" | "whoami" | "list"),
            "models" | "datasets" | "spaces" | "papers" | "collections" | "discussions" => {
                readonly_list(sub2)
            }
            _ => false,
        };
        if ok {
            return Ok(());
        }
        let spend = matches!(sub, "jobs" | "endpoints" | "spaces" | "inference-endpoints");
        if sub == "auth" && sub2 == "token" {
            return Err(format!(
                "refused: `{prog} auth token` prints the HF token. Tokens never go to the agent; \
                 `mlres` uses them for you"
            ));
        }
        let what = if sub == "jobs" {
            "HF Jobs are launched only through mlres (`mlres exp submit …` within the approved envelope)"
        } else {
            "it writes to or spends on the Hugging Face Hub outside the broker"
        };
        Err(format!(
            "refused: `{prog} {sub}{}{}`: {what}. {} \
             (read-only `{prog} download`, `{prog} auth whoami`, `{prog} cache …` and `… ls/info` stay available)",
            if sub2.is_empty() { "" } else { " " },
            sub2,
            if spend {
                SANCTIONED_SPEND
            } else {
                SANCTIONED_HUB
            }
        ))
    }

    fn mlres(&mut self, rest: &[Arg]) -> R {
        self.mlres_invoked = true;
        let pos: Vec<&str> = rest.iter().filter(|a| !a.is_opt()).map(|a| a.s()).collect();
        if pos.iter().take(3).any(|p| *p == "approve") || rest.iter().any(|a| a.s() == "--approve")
        {
            return Err(APPROVE_REASON.into());
        }
        if rest
            .iter()
            .any(|a| a.s() == "--state-dir" || a.s().starts_with("--state-dir="))
        {
            return Err(STATE_DIR_REASON.into());
        }
        if let Some(var) = &self.state_env_assigned {
            return Err(format!(
                "{STATE_DIR_REASON} (`{var}` is set in this command)"
            ));
        }
        if rest.iter().any(|a| a.dynamic) {
            self.mlres_read_only = false;
            return Ok(());
        }
        const READ: &[&str] = &[
            "status", "list", "ls", "show", "logs", "log", "inspect", "verify", "help", "doctor",
            "version", "explain", "report", "tail", "diff",
        ];
        const WRITE: &[&str] = &[
            "submit", "run", "cancel", "stop", "start", "upload", "delete", "rm", "create", "init",
            "reset", "kill", "apply", "set", "edit", "write", "push", "resume", "retry", "approve",
            "serve", "sync", "gc", "prune",
        ];
        let head: Vec<&str> = pos.iter().take(3).copied().collect();
        let flags_only_help =
            rest.len() == 1 && matches!(rest[0].s(), "--help" | "-h" | "--version" | "-V");
        self.mlres_read_only = flags_only_help
            || (head.iter().take(2).any(|p| READ.contains(p))
                && !head.iter().any(|p| WRITE.contains(p)));
        Ok(())
    }

    fn git_config_pair(&mut self, key: &str, val: &Arg) -> R {
        let k = key.to_ascii_lowercase();
        let v = val.s();
        if (k.starts_with("remote.") && (k.ends_with(".url") || k.ends_with(".pushurl")))
            || (k.starts_with("url.")
                && (k.ends_with(".insteadof") || k.ends_with(".pushinsteadof")))
        {
            if mentions_hub_host(v) || k.contains("huggingface") || k.contains("hf.co") {
                return Err(format!(
                    "refused: points a git remote at the Hugging Face Hub. {SANCTIONED_HUB}"
                ));
            }
            return Ok(());
        }
        let runs_cmd = k.starts_with("alias.")
            || matches!(
                k.as_str(),
                "core.sshcommand"
                    | "core.pager"
                    | "core.editor"
                    | "core.fsmonitor"
                    | "sequence.editor"
                    | "diff.external"
                    | "gpg.program"
                    | "credential.helper"
            )
            || k.ends_with(".textconv")
            || k.starts_with("filter.");
        if runs_cmd {
            if val.dynamic {
                return Err(deny_obf(
                    "a git setting that runs commands is built at run time",
                ));
            }
            let payload = v.strip_prefix('!').unwrap_or(v);
            if k.starts_with("alias.") && !v.starts_with('!') {
                return Ok(());
            }
            return self.analyze_shell_string(payload, false);
        }
        Ok(())
    }

    fn git(&mut self, rest: &[Arg]) -> R {
        let mut i = 0;
        while i < rest.len() {
            let s = rest[i].s();
            if s == "-c" {
                if let Some(kv) = rest.get(i + 1)
                    && let Some((k, v)) = kv.s().split_once('=')
                {
                    let val = Arg {
                        text: v.to_string(),
                        ..kv.clone()
                    };
                    self.git_config_pair(k, &val)?;
                }
                i += 2;
                continue;
            }
            if matches!(
                s,
                "-C" | "--git-dir" | "--work-tree" | "--namespace" | "--config-env" | "--exec-path"
            ) {
                i += 2;
                continue;
            }
            if rest[i].is_opt() {
                i += 1;
                continue;
            }
            break;
        }
        let Some(sub) = rest.get(i) else {
            return Ok(());
        };
        let args = &rest[i + 1..];
        let hub_arg = args
            .iter()
            .find(|a| mentions_hub_host(a.s()) || a.vars.iter().any(|v| v == "HF_ENDPOINT"));
        match sub.s() {
            "push" => {
                if let Some(a) = hub_arg {
                    return Err(format!("refused: `git push` to the Hugging Face Hub ({}). {SANCTIONED_HUB}", a.s()));
                }
                let pos: Vec<&Arg> = skip_all_opts(args, &["-o", "--push-option", "--repo", "--receive-pack", "--exec"]).collect();
                if let Some(r) = pos.first() {
                    if r.dynamic {
                        return Err(deny_obf("`git push` to a remote named at run time"));
                    }
                    let name = r.s().to_ascii_lowercase();
                    if matches!(name.as_str(), "hf" | "huggingface" | "hub" | "hf-hub" | "space" | "spaces" | "hf-space") {
                        return Err(format!("refused: `git push {}` targets a Hugging Face remote. {SANCTIONED_HUB}", r.s()));
                    }
                }
                if args.iter().any(|a| a.s().starts_with("--receive-pack") || a.s().starts_with("--exec")) {
                    return Err(deny_obf("`git push --receive-pack/--exec` runs an arbitrary command"));
                }
                Ok(())
            }
            "lfs" => {
                if args.first().is_some_and(|a| a.s() == "push") && hub_arg.is_some() {
                    return Err(format!("refused: `git lfs push` to the Hugging Face Hub. {SANCTIONED_HUB}"));
                }
                Ok(())
            }
            "remote" => {
                let verb = args.first().map(|a| a.s()).unwrap_or("");
                if matches!(verb, "add" | "set-url") && hub_arg.is_some() {
                    return Err(format!("refused: adds a git remote on the Hugging Face Hub. {SANCTIONED_HUB}"));
                }
                Ok(())
            }
            "config" => {
                let pos: Vec<&Arg> = skip_all_opts(args, &["--file", "-f", "--blob", "--type", "--default"]).collect();
                if pos.len() >= 2 {
                    let k = pos[0].s().to_string();
                    let v = pos[1].clone();
                    self.git_config_pair(&k, &v)?;
                }
                Ok(())
            }
            s if s.starts_with("credential") => {
                Err("refused: `git credential…` can print stored credentials. Credentials never go to the agent".into())
            }
            "submodule" => {
                if let Some(p) = args.iter().position(|a| a.s() == "foreach") {
                    let cmd: Vec<&Arg> = args[p + 1..].iter().filter(|a| !a.is_opt()).collect();
                    if cmd.iter().any(|a| a.dynamic) {
                        return Err(deny_obf("`git submodule foreach` with a runtime-built command"));
                    }
                    let joined = cmd.iter().map(|a| a.s().to_string()).collect::<Vec<_>>().join(" ");
                    return self.analyze_shell_string(&joined, true);
                }
                Ok(())
            }
            "bisect" => {
                if args.first().is_some_and(|a| a.s() == "run") {
                    return self.argv(&args[1..], &Stdin::Tty);
                }
                Ok(())
            }
            "rebase" => {
                for (k, a) in args.iter().enumerate() {
                    if a.s() == "-x" || a.s() == "--exec" {
                        self.shell_payload(args.get(k + 1))?;
                    } else if let Some(v) = a.s().strip_prefix("--exec=") {
                        self.analyze_shell_string(v, true)?;
                    }
                }
                Ok(())
            }
            "filter-branch" => Err(deny_obf("`git filter-branch` runs arbitrary filter commands")),
            _ => Ok(()),
        }
    }

    fn http(&mut self, prog: &str, rest: &[Arg]) -> R {
        let lower: Vec<String> = rest.iter().map(|a| a.s().to_ascii_lowercase()).collect();
        let hub = rest
            .iter()
            .any(|a| mentions_hub_host(a.s()) || a.vars.iter().any(|v| v == "HF_ENDPOINT"));
        let mut write_reason: Option<String> = None;
        let mut set = |r: &str| {
            if write_reason.is_none() {
                write_reason = Some(r.to_string());
            }
        };
        for a in rest {
            if let Some(secret) = crate::redact::first_secret(a.s()) {
                return Err(format!(
                    "refused: the request carries a credential ({secret}). Credentials never leave mlres"
                ));
            }
        }
        for (i, s) in lower.iter().enumerate() {
            let next = lower.get(i + 1).map(String::as_str).unwrap_or("");
            match prog {
                "curl" | "curlie" => {
                    if s == "-x" && rest[i].s() == "-X" || s == "--request" {
                        if !matches!(next, "get" | "head") {
                            set("a non-GET method");
                        }
                    } else if rest[i].s().starts_with("-X") && rest[i].s().len() > 2 {
                        let m = &s[2..];
                        if !matches!(m, "get" | "head") {
                            set("a non-GET method");
                        }
                    } else if let Some(m) = s.strip_prefix("--request=") {
                        if !matches!(m, "get" | "head") {
                            set("a non-GET method");
                        }
                    } else if s.starts_with("--data")
                        || s == "-d"
                        || s.starts_with("-d") && rest[i].s().starts_with("-d")
                        || s == "--json"
                        || s == "-f" && rest[i].s() == "-F"
                        || s.starts_with("--form")
                        || s == "-t" && rest[i].s() == "-T"
                        || s == "--upload-file"
                    {
                        set("a request body or upload");
                    } else if s == "-h" && rest[i].s() == "-H"
                        || s == "--header"
                        || rest[i].s().starts_with("-H") && s.len() > 2
                    {
                        let h = if s.len() > 2 && rest[i].s().starts_with("-H") {
                            &s[2..]
                        } else {
                            next
                        };
                        if h.contains("authorization")
                            || h.contains("cookie")
                            || h.contains("token")
                            || h.contains("api-key")
                            || h.starts_with('@')
                        {
                            set("an authorization header");
                        }
                    } else if matches!(
                        s.as_str(),
                        "-u" | "--user"
                            | "-n"
                            | "--netrc"
                            | "--netrc-file"
                            | "--netrc-optional"
                            | "--oauth2-bearer"
                            | "-b"
                            | "--cookie"
                            | "-k"
                            | "--config"
                            | "--aws-sigv4"
                    ) && (s != "-k" || rest[i].s() == "-K")
                    {
                        set("credentials or a config file");
                    }
                }
                "wget" | "wget2" => {
                    if s.starts_with("--method")
                        || s.starts_with("--post-")
                        || s.starts_with("--body-")
                    {
                        if !(s.starts_with("--method") && (next == "get" || s.ends_with("=get"))) {
                            set("a non-GET method or a request body");
                        }
                    } else if s.starts_with("--header")
                        || s.starts_with("--user")
                        || s.starts_with("--password")
                        || s.starts_with("--http-user")
                        || s.starts_with("--http-password")
                        || s.starts_with("--load-cookies")
                        || s == "-e"
                        || s.starts_with("--execute")
                        || s.starts_with("--use-askpass")
                    {
                        set("credentials, headers or wgetrc commands");
                    }
                }
                "aria2c" | "lwp-request" => {
                    if s.starts_with("--header")
                        || s.starts_with("--http-user")
                        || s.starts_with("--http-passwd")
                        || s == "-m"
                        || s == "-c"
                    {
                        set("credentials or a non-GET method");
                    }
                }
                _ => {
                    // httpie / xh
                    if matches!(s.as_str(), "post" | "put" | "patch" | "delete")
                        && i == lower
                            .iter()
                            .position(|x| !x.starts_with('-'))
                            .unwrap_or(usize::MAX)
                    {
                        set("a non-GET method");
                    } else if matches!(
                        s.as_str(),
                        "-a" | "--auth" | "-f" | "--form" | "--raw" | "--auth-type" | "-a="
                    ) || s.starts_with("--auth")
                        || s.starts_with("--raw")
                    {
                        set("credentials or a request body");
                    } else if !s.starts_with('-')
                        && !s.contains("://")
                        && (s.contains(":=")
                            || (!s.contains("==") && s.contains('=') && !s.contains('/'))
                            || s.contains('@') && !s.contains('.'))
                    {
                        set("a request body");
                    } else if s.starts_with("authorization:")
                        || s.starts_with("cookie:")
                        || s.contains("token:")
                    {
                        set("an authorization header");
                    }
                }
            }
        }
        let api_jobs = lower.iter().any(|s| {
            s.contains("/api/jobs")
                || s.contains("/api/repos/")
                || s.contains("/api/endpoints")
                || s.contains("/api/spaces")
                    && (s.contains("/hardware") || s.contains("/secrets") || s.contains("/restart"))
        });
        if hub && api_jobs {
            return Err(format!(
                "refused: calls the Hub jobs/repo/endpoint API directly. {SANCTIONED_SPEND}"
            ));
        }
        if let Some(why) = write_reason {
            if hub {
                return Err(format!(
                    "refused: sends {why} to the Hugging Face Hub outside the broker. {SANCTIONED_HUB}"
                ));
            }
            let url_dynamic = rest.iter().any(|a| a.dynamic && !a.is_opt());
            if url_dynamic {
                return Err(deny_obf(&format!(
                    "an HTTP request with {why} goes to a URL built at run time (it may be the Hub)"
                )));
            }
        }
        // Downloads: check output targets.
        for (i, s) in rest.iter().enumerate() {
            if matches!(s.s(), "-o" | "--output" | "-O" | "--output-document")
                && prog != "aria2c"
                && let Some(t) = rest.get(i + 1)
            {
                self.check_write(t)?;
            }
        }
        Ok(())
    }

    fn claude(&mut self, rest: &[Arg]) -> R {
        for (i, a) in rest.iter().enumerate() {
            let s = a.s();
            let next = rest.get(i + 1).map(|n| n.s()).unwrap_or("");
            if s == "--dangerously-skip-permissions" || s == "--allow-dangerously-skip-permissions"
            {
                return Err("refused: launches Claude Code with permissions disabled. Nested agents must keep the guard and permission prompts".into());
            }
            if (s == "--permission-mode" && next.eq_ignore_ascii_case("bypassPermissions"))
                || s.eq_ignore_ascii_case("--permission-mode=bypassPermissions")
            {
                return Err("refused: launches Claude Code in bypassPermissions mode. Nested agents must keep the guard and permission prompts".into());
            }
            if matches!(
                s,
                "--settings"
                    | "--setting-sources"
                    | "--mcp-config"
                    | "--strict-mcp-config"
                    | "--plugin-dir"
                    | "--bare"
            ) || s.starts_with("--settings=")
                || s.starts_with("--setting-sources=")
                || s.starts_with("--mcp-config=")
            {
                return Err(format!(
                    "refused: `claude {s}` could load settings or tools without the guard. Launch nested agents with the project's settings"
                ));
            }
            code::guard_disabling_text(s)?;
        }
        let pos: Vec<&str> = rest.iter().filter(|a| !a.is_opt()).map(|a| a.s()).collect();
        match pos.first().copied() {
            Some("config") if matches!(pos.get(1).copied(), Some("set" | "add" | "remove")) => {
                return Err("refused: `claude config` changes from the agent could disable hooks or permissions. Ask the user".into());
            }
            Some("mcp")
                if matches!(
                    pos.get(1).copied(),
                    Some("add" | "add-json" | "remove" | "add-from-claude-desktop")
                ) =>
            {
                return Err(
                    "refused: adding or removing MCP servers from the agent. Ask the user".into(),
                );
            }
            Some("plugin" | "plugins")
                if !matches!(pos.get(1).copied(), Some("list" | "validate") | None) =>
            {
                return Err("refused: installing, removing or disabling plugins from the agent could disable the guard. Ask the user".into());
            }
            _ => {}
        }
        for a in rest.iter().filter(|a| !a.is_opt()) {
            if a.dynamic {
                continue;
            }
            code::scan_prompt(a.s(), self)?;
        }
        Ok(())
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
