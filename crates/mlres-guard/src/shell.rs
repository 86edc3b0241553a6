//! Bash analysis: parse with brush-parser, walk every simple command (including those in
//! substitutions, process substitutions, functions, heredoc expansions and the payloads of
//! `bash -c`, `eval`, `xargs`, `find -exec`, `env`, `sudo`, …) and apply the rules.
//! Every rule returns `Err(reason)` to deny; `Ok(())` means "no objection".

use std::collections::HashMap;

use brush_parser::ast;
use brush_parser::word::{self, TildeExpr, WordPiece, WordPieceWithSource};

use crate::code::{self, APPROVE_REASON, is_sensitive_var, mentions_hub_host};
use crate::paths::PathEnv;
use crate::{GuardContext, SANCTIONED_HUB, SANCTIONED_SPEND};

type R = Result<(), String>;

/// Largest command the guard analyses; bigger ones are refused.
pub(crate) const MAX_COMMAND_BYTES: usize = 256 * 1024;
const MAX_DEPTH: usize = 24;
const MAX_STEPS: usize = 400_000;
const MAX_PAREN_NESTING: usize = 200;

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

fn opts() -> brush_parser::ParserOptions {
    brush_parser::ParserOptions::default()
}

/// Parses a whole shell program, catching panics inside the parser.
fn parse_program(src: &str) -> Result<ast::Program, String> {
    let depth = paren_nesting(src);
    if depth > MAX_PAREN_NESTING {
        return Err(format!(
            "the command nests parentheses/braces {depth} deep; the guard refuses to analyse it"
        ));
    }
    let res = std::panic::catch_unwind(|| {
        let o = opts();
        brush_parser::Parser::new(std::io::Cursor::new(src.as_bytes()), &o).parse_program()
    });
    match res {
        Ok(Ok(p)) => Ok(p),
        Ok(Err(e)) => Err(format!(
            "the guard could not parse this shell command ({e}); it fails closed. Rewrite it in plain \
             POSIX/bash syntax"
        )),
        Err(_) => Err("the shell parser failed on this command; the guard fails closed".into()),
    }
}

fn paren_nesting(s: &str) -> usize {
    let (mut d, mut max) = (0usize, 0usize);
    for c in s.chars() {
        match c {
            '(' | '{' | '`' => {
                d += 1;
                max = max.max(d);
            }
            ')' | '}' => d = d.saturating_sub(1),
            _ => {}
        }
    }
    max
}

fn parse_word(w: &str, heredoc: bool) -> Result<Vec<WordPieceWithSource>, String> {
    let res = std::panic::catch_unwind(|| {
        let o = opts();
        if heredoc {
            word::parse_heredoc(w, &o)
        } else {
            word::parse(w, &o)
        }
    });
    match res {
        Ok(Ok(p)) => Ok(p),
        Ok(Err(e)) => Err(format!(
            "the guard could not parse a word ({e}); it fails closed"
        )),
        Err(_) => Err("the word parser failed; the guard fails closed".into()),
    }
}

/// Decodes the body of `$'…'`.
fn decode_ansi_c(s: &str) -> String {
    let c: Vec<char> = s.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let hex = |c: &[char], i: usize, max: usize| -> (u32, usize) {
        let mut v = 0u32;
        let mut n = 0;
        while n < max && i + n < c.len() && c[i + n].is_ascii_hexdigit() {
            v = v * 16 + c[i + n].to_digit(16).unwrap_or(0);
            n += 1;
        }
        (v, n)
    };
    while i < c.len() {
        if c[i] != '\\' || i + 1 >= c.len() {
            out.push(c[i]);
            i += 1;
            continue;
        }
        let e = c[i + 1];
        i += 2;
        match e {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'a' => out.push('\u{7}'),
            'b' => out.push('\u{8}'),
            'e' | 'E' => out.push('\u{1b}'),
            'f' => out.push('\u{c}'),
            'v' => out.push('\u{b}'),
            'x' => {
                let (v, n) = hex(&c, i, 2);
                i += n;
                out.push(char::from_u32(v).unwrap_or('?'));
            }
            'u' => {
                let (v, n) = hex(&c, i, 4);
                i += n;
                out.push(char::from_u32(v).unwrap_or('?'));
            }
            'U' => {
                let (v, n) = hex(&c, i, 8);
                i += n;
                out.push(char::from_u32(v).unwrap_or('?'));
            }
            'c' if i < c.len() => {
                out.push(char::from_u32((c[i] as u32) & 0x1f).unwrap_or('?'));
                i += 1;
            }
            '0'..='7' => {
                let mut v = e.to_digit(8).unwrap_or(0);
                let mut n = 0;
                while n < 2 && i < c.len() && ('0'..='7').contains(&c[i]) {
                    v = v * 8 + c[i].to_digit(8).unwrap_or(0);
                    i += 1;
                    n += 1;
                }
                out.push(char::from_u32(v).unwrap_or('?'));
            }
            other => out.push(other),
        }
    }
    out
}

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

    fn compound_list(&mut self, cl: &ast::CompoundList, piped: bool) -> R {
        for item in &cl.0 {
            self.and_or(&item.0, piped)?;
        }
        Ok(())
    }

    fn and_or(&mut self, l: &ast::AndOrList, piped: bool) -> R {
        self.pipeline(&l.first, piped)?;
        for a in &l.additional {
            match a {
                ast::AndOr::And(p) | ast::AndOr::Or(p) => self.pipeline(p, piped)?,
            }
        }
        Ok(())
    }

    fn pipeline(&mut self, p: &ast::Pipeline, piped: bool) -> R {
        if p.seq.len() > 1 {
            self.impure = true;
        }
        for (i, c) in p.seq.iter().enumerate() {
            self.command(c, piped || i > 0)?;
        }
        Ok(())
    }

    fn command(&mut self, c: &ast::Command, piped: bool) -> R {
        self.step()?;
        match c {
            ast::Command::Simple(sc) => self.simple(sc, piped),
            ast::Command::Compound(cc, redirs) => {
                if let Some(r) = redirs {
                    for io in &r.0 {
                        self.redirect(io)?;
                    }
                }
                self.compound(cc, piped)
            }
            ast::Command::Function(f) => {
                let name = self.resolve(&f.fname.value, false)?;
                if name.text == "mlres" || name.text.ends_with("/mlres") {
                    return Err(
                        "the command defines a shell function named `mlres`, which would shadow \
                         the real broker. Call the real `mlres`"
                            .into(),
                    );
                }
                if let Some(r) = &f.body.1 {
                    for io in &r.0 {
                        self.redirect(io)?;
                    }
                }
                self.compound(&f.body.0, piped)
            }
            ast::Command::ExtendedTest(t, redirs) => {
                if let Some(r) = redirs {
                    for io in &r.0 {
                        self.redirect(io)?;
                    }
                }
                self.ext_test(&t.expr)
            }
        }
    }

    fn ext_test(&mut self, e: &ast::ExtendedTestExpr) -> R {
        self.step()?;
        match e {
            ast::ExtendedTestExpr::And(a, b) | ast::ExtendedTestExpr::Or(a, b) => {
                self.ext_test(a)?;
                self.ext_test(b)
            }
            ast::ExtendedTestExpr::Not(a) | ast::ExtendedTestExpr::Parenthesized(a) => {
                self.ext_test(a)
            }
            ast::ExtendedTestExpr::UnaryTest(_, w) => self.resolve(&w.value, false).map(|_| ()),
            ast::ExtendedTestExpr::BinaryTest(_, a, b) => {
                self.resolve(&a.value, false)?;
                self.resolve(&b.value, false).map(|_| ())
            }
        }
    }

    fn compound(&mut self, cc: &ast::CompoundCommand, piped: bool) -> R {
        use ast::CompoundCommand as C;
        match cc {
            C::Arithmetic(a) => self.arith(&a.expr.value),
            C::ArithmeticForClause(f) => {
                for e in [&f.initializer, &f.condition, &f.updater]
                    .into_iter()
                    .flatten()
                {
                    self.arith(&e.value)?;
                }
                self.compound_list(&f.body.list, piped)
            }
            C::BraceGroup(b) => self.compound_list(&b.list, piped),
            C::Subshell(s) => self.compound_list(&s.list, piped),
            C::ForClause(f) => {
                if let Some(vals) = &f.values {
                    for w in vals {
                        self.resolve(&w.value, false)?;
                    }
                }
                self.vars.insert(f.variable_name.clone(), None);
                self.compound_list(&f.body.list, piped)
            }
            C::CaseClause(c) => {
                self.resolve(&c.value.value, false)?;
                for item in &c.cases {
                    for p in &item.patterns {
                        self.resolve(&p.value, false)?;
                    }
                    if let Some(cmd) = &item.cmd {
                        self.compound_list(cmd, piped)?;
                    }
                }
                Ok(())
            }
            C::IfClause(i) => {
                self.compound_list(&i.condition, piped)?;
                self.compound_list(&i.then, piped)?;
                if let Some(elses) = &i.elses {
                    for e in elses {
                        if let Some(c) = &e.condition {
                            self.compound_list(c, piped)?;
                        }
                        self.compound_list(&e.body, piped)?;
                    }
                }
                Ok(())
            }
            C::WhileClause(w) | C::UntilClause(w) => {
                self.compound_list(&w.0, piped)?;
                self.compound_list(&w.1.list, piped)
            }
            C::Coprocess(c) => self.command(&c.body, piped),
        }
    }

    fn arith(&mut self, expr: &str) -> R {
        if expr.contains("$(") || expr.contains('`') || expr.contains('$') {
            self.impure = true;
            let _ = self.resolve(expr, false)?;
        }
        Ok(())
    }

    // ---------------------------------------------------------------- words

    /// Resolves a raw word: quote removal, ANSI-C decoding, static variables; analyses
    /// nested substitutions; refuses secret variables, `$IFS` and `${!x}`.
    pub(crate) fn resolve(&mut self, raw: &str, heredoc: bool) -> Result<Arg, String> {
        self.step()?;
        let pieces = match parse_word(raw, heredoc) {
            Ok(p) => p,
            Err(e) => {
                if self.lenient > 0 {
                    return Ok(Arg {
                        text: raw.to_string(),
                        dynamic: true,
                        ..Default::default()
                    });
                }
                return Err(e);
            }
        };
        let mut a = Arg::default();
        self.pieces(raw, &pieces, false, &mut a)?;
        if a.text.contains(DYN) {
            a.dynamic = true;
        }
        Ok(a)
    }

    fn pieces(
        &mut self,
        src: &str,
        pieces: &[WordPieceWithSource],
        quoted: bool,
        a: &mut Arg,
    ) -> R {
        for p in pieces {
            self.step()?;
            match &p.piece {
                WordPiece::Text(s) => {
                    if !quoted {
                        if s.contains(['*', '?', '[']) {
                            a.glob = true;
                        }
                        if s.contains('{') && (s.contains(',') || s.contains("..")) {
                            a.brace = true;
                        }
                    }
                    a.text.push_str(s);
                }
                WordPiece::SingleQuotedText(s) => a.text.push_str(s),
                WordPiece::AnsiCQuotedText(s) => a.text.push_str(&decode_ansi_c(s)),
                WordPiece::DoubleQuotedSequence(v) | WordPiece::GettextDoubleQuotedSequence(v) => {
                    self.pieces(src, v, true, a)?
                }
                WordPiece::TildeExpansion(t) => match t {
                    TildeExpr::Home => match &self.pe.home {
                        Some(h) => a.text.push_str(h),
                        None => a.text.push('~'),
                    },
                    TildeExpr::UserHome(u) => {
                        a.text.push_str("/home/");
                        a.text.push_str(u);
                    }
                    TildeExpr::WorkingDir => match &self.pe.cwd {
                        Some(c) => a.text.push_str(c),
                        None => a.text.push(DYN),
                    },
                    _ => a.text.push(DYN),
                },
                WordPiece::ParameterExpansion(_) => {
                    let text = src.get(p.start_index..p.end_index).unwrap_or("$?");
                    self.param(text, a)?;
                }
                WordPiece::CommandSubstitution(s) | WordPiece::BackquotedCommandSubstitution(s) => {
                    self.impure = true;
                    let saved = self.pe.cwd.clone();
                    self.analyze_shell_string(s, true)?;
                    self.pe.cwd = saved;
                    a.text.push(DYN);
                }
                WordPiece::EscapeSequence(s) => {
                    let rest = s.strip_prefix('\\').unwrap_or(s);
                    if rest != "\n" {
                        a.text.push_str(rest);
                    }
                }
                WordPiece::ArithmeticExpression(e) => {
                    self.arith(&e.value)?;
                    a.text.push(DYN);
                }
            }
        }
        Ok(())
    }

    fn known_var(&self, name: &str) -> Option<String> {
        if let Some(v) = self.vars.get(name) {
            return v.clone();
        }
        let home = self.pe.home.clone();
        let h = |t: &str| home.as_ref().map(|h| format!("{h}/{t}"));
        match name {
            "HOME" => home.clone(),
            "PWD" => self.pe.cwd.clone(),
            "HF_HOME" => h(".cache/huggingface"),
            "HF_TOKEN_PATH" => h(".cache/huggingface/token"),
            "HF_HUB_CACHE" | "HUGGINGFACE_HUB_CACHE" => h(".cache/huggingface/hub"),
            "XDG_CACHE_HOME" => h(".cache"),
            "XDG_CONFIG_HOME" => h(".config"),
            "XDG_STATE_HOME" => h(".local/state"),
            "XDG_DATA_HOME" => h(".local/share"),
            "CLAUDE_CONFIG_DIR" => self.pe.claude_dir.clone(),
            "CLAUDE_PLUGIN_ROOT" => self.pe.plugin_dir.clone(),
            "CLAUDE_PROJECT_DIR" => self.pe.project.clone(),
            "MLRES_STATE_DIR" => Some(self.pe.state_dir.clone()),
            _ => None,
        }
    }

    /// Handles the source text of one parameter expansion (`$X`, `${X:-d}`, `${!X}`, …).
    fn param(&mut self, text: &str, a: &mut Arg) -> R {
        let body = text.strip_prefix('$').unwrap_or(text);
        let (inner, braced) = match body.strip_prefix('{') {
            Some(b) => (b.strip_suffix('}').unwrap_or(b), true),
            None => (body, false),
        };
        if braced && inner.starts_with('!') && inner.len() > 1 {
            return Err(deny_obf(
                "`${!…}` indirect variable expansion is not allowed",
            ));
        }
        let inner = if braced {
            inner
                .strip_prefix('#')
                .filter(|r| !r.is_empty())
                .unwrap_or(inner)
        } else {
            inner
        };
        let name_len = inner
            .char_indices()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_'))
            .map(|(i, _)| i)
            .unwrap_or(inner.len());
        let (name, rest) = if name_len == 0 {
            inner.split_at(inner.chars().next().map(|c| c.len_utf8()).unwrap_or(0))
        } else {
            inner.split_at(name_len)
        };
        a.vars.push(name.to_string());
        if is_sensitive_var(name) {
            return Err(format!(
                "it expands the secret variable `${name}`. Tokens never leave mlres; `mlres` \
                 commands use the credentials for you"
            ));
        }
        if name == "IFS" {
            return Err(deny_obf("`$IFS` word-splitting tricks are not allowed"));
        }
        if name == "HF_ENDPOINT" {
            a.vars.push("HF_ENDPOINT".into());
        }
        if !rest.is_empty() {
            // The operand of ${X:-word} etc. may hold substitutions: analyse it.
            let operand =
                rest.trim_start_matches([':', '-', '=', '?', '+', '#', '%', '/', '^', ',', '@']);
            if !operand.is_empty() && (operand.contains('$') || operand.contains('`')) {
                self.depth += 1;
                let r = if self.depth > MAX_DEPTH {
                    Err(deny_obf("the command nests expansions too deeply"))
                } else {
                    self.resolve(operand, false).map(|_| ())
                };
                self.depth -= 1;
                r?;
            }
            a.text.push(DYN);
            return Ok(());
        }
        match self.known_var(name) {
            Some(v) => a.text.push_str(&v),
            None => a.text.push(DYN),
        }
        Ok(())
    }

    // ---------------------------------------------------------------- redirects

    fn redirect(&mut self, io: &ast::IoRedirect) -> Result<Option<Stdin>, String> {
        self.impure = true;
        match io {
            ast::IoRedirect::File(fd, kind, target) => {
                use ast::IoFileRedirectKind as K;
                match target {
                    ast::IoFileRedirectTarget::Filename(w)
                    | ast::IoFileRedirectTarget::Duplicate(w) => {
                        let a = self.resolve(&w.value, false)?;
                        let reads = matches!(kind, K::Read | K::ReadAndWrite | K::DuplicateInput);
                        let writes = !matches!(kind, K::Read | K::DuplicateInput);
                        if a.text.chars().all(|c| c.is_ascii_digit() || c == '-') {
                            return Ok(None);
                        }
                        if reads {
                            self.check_read(&a)?;
                        }
                        if writes {
                            self.check_write(&a)?;
                        }
                        if reads && fd.unwrap_or(0) == 0 {
                            return Ok(Some(Stdin::File));
                        }
                        Ok(None)
                    }
                    ast::IoFileRedirectTarget::Fd(_) => Ok(None),
                    ast::IoFileRedirectTarget::ProcessSubstitution(_, sub) => {
                        self.compound_list(&sub.list, false)?;
                        if matches!(kind, K::Read) && fd.unwrap_or(0) == 0 {
                            return Ok(Some(Stdin::Pipe));
                        }
                        Ok(None)
                    }
                }
            }
            ast::IoRedirect::HereDocument(fd, hd) => {
                let (body, dynamic) = if hd.requires_expansion {
                    let a = self.resolve(&hd.doc.value, true)?;
                    (a.text.replace(DYN, ""), a.dynamic)
                } else {
                    (hd.doc.value.clone(), false)
                };
                if fd.unwrap_or(0) == 0 {
                    return Ok(Some(Stdin::Text { body, dynamic }));
                }
                Ok(None)
            }
            ast::IoRedirect::HereString(fd, w) => {
                let a = self.resolve(&w.value, false)?;
                if fd.unwrap_or(0) == 0 {
                    return Ok(Some(Stdin::Text {
                        body: a.text.replace(DYN, ""),
                        dynamic: a.dynamic,
                    }));
                }
                Ok(None)
            }
            ast::IoRedirect::OutputAndError(w, _) => {
                let a = self.resolve(&w.value, false)?;
                self.check_write(&a)?;
                Ok(None)
            }
        }
    }

    // ---------------------------------------------------------------- path checks

    fn path_candidates(a: &Arg) -> Vec<String> {
        let t = a.text.replace(DYN, "");
        let mut v = vec![t.clone()];
        if a.brace {
            v.extend(brace_expand(&t, 0));
        }
        if let Some(rest) = t.strip_prefix('@') {
            v.push(rest.to_string());
        }
        if let Some((_, val)) = t.split_once('=') {
            v.push(val.to_string());
            if let Some(r) = val.strip_prefix('@') {
                v.push(r.to_string());
            }
        }
        if t.starts_with('-') && !t.starts_with("--") && t.len() > 2 && t[2..].contains('/') {
            v.push(t[2..].to_string());
        }
        if let Some((_, p)) = t.split_once(':')
            && (p.starts_with('/') || p.starts_with('~'))
        {
            v.push(p.to_string());
        }
        v.retain(|s| !s.is_empty() && s.len() < 4096);
        v
    }

    fn check_read(&self, a: &Arg) -> R {
        if a.text.contains(DYN) && a.text.trim_matches(DYN).is_empty() {
            return Ok(());
        }
        for c in Self::path_candidates(a) {
            if let Some(why) = self.pe.secret_read(&c, a.glob) {
                return Err(format!(
                    "refused: {why} (`{}`). mlres uses the credentials itself; if you need \
                     something that needs them, ask the user",
                    c
                ));
            }
            if self.cwd_unknown && !c.starts_with('/') {
                let base = c.rsplit('/').next().unwrap_or(&c);
                if matches!(
                    base,
                    "token"
                        | "stored_tokens"
                        | "credentials"
                        | "hosts.yml"
                        | ".credentials.json"
                        | ".netrc"
                        | ".git-credentials"
                        | "id_rsa"
                        | "id_ed25519"
                        | "id_ecdsa"
                ) {
                    return Err(format!(
                        "refused: `{c}` after a `cd` the guard cannot follow looks like a credential \
                         file. Use absolute paths"
                    ));
                }
            }
        }
        Ok(())
    }

    fn check_write(&self, a: &Arg) -> R {
        let t = a.text.replace(DYN, "");
        if t.is_empty() || t.starts_with("/dev/") {
            return Ok(());
        }
        if let Some(why) = self.pe.protected_write(&t, a.glob) {
            return Err(format!(
                "refused: {why} (`{t}`). Leave the guard's configuration, the mlres state and \
                 the ledger to mlres and the user"
            ));
        }
        if let Some(why) = self.pe.secret_read(&t, a.glob)
            && why == crate::paths::STATE
        {
            return Err(format!("refused: {why} (`{t}`)"));
        }
        Ok(())
    }

    fn check_recursive_read(&self, a: &Arg) -> R {
        let t = a.text.replace(DYN, "");
        if t.is_empty() {
            return Ok(());
        }
        if self.pe.contains_secrets(&t, a.glob) {
            return Err(format!(
                "refused: a recursive read of `{t}` would include credential stores or the mlres \
                 state directory. Limit it to the project directory"
            ));
        }
        Ok(())
    }

    fn check_recursive_write(&self, a: &Arg) -> R {
        let t = a.text.replace(DYN, "");
        if !t.is_empty() && self.pe.contains_protected(&t, a.glob) {
            return Err(format!(
                "refused: a recursive change to `{t}` would reach the mlres state directory or \
                 Claude Code/plugin settings"
            ));
        }
        Ok(())
    }

    // ---------------------------------------------------------------- simple commands

    fn simple(&mut self, sc: &ast::SimpleCommand, piped: bool) -> R {
        self.simple_count += 1;
        let mut stdin = if piped { Stdin::Pipe } else { Stdin::Tty };
        let mut args: Vec<Arg> = Vec::new();
        let mut assigns: Vec<(String, Arg)> = Vec::new();
        let mut write_target: Option<String> = None;
        let mut handle_item = |this: &mut Self,
                               item: &ast::CommandPrefixOrSuffixItem,
                               args: &mut Vec<Arg>,
                               in_suffix: bool|
         -> R {
            match item {
                ast::CommandPrefixOrSuffixItem::IoRedirect(io) => {
                    if let ast::IoRedirect::File(_, kind, ast::IoFileRedirectTarget::Filename(w)) =
                        io
                        && !matches!(
                            kind,
                            ast::IoFileRedirectKind::Read | ast::IoFileRedirectKind::DuplicateInput
                        )
                    {
                        write_target = Some(w.value.clone());
                    }
                    if let Some(s) = this.redirect(io)? {
                        stdin = s;
                    }
                }
                ast::CommandPrefixOrSuffixItem::Word(w) => {
                    let a = this.resolve(&w.value, false)?;
                    args.push(a);
                }
                ast::CommandPrefixOrSuffixItem::AssignmentWord(asg, _) => {
                    this.impure = true;
                    let name = match &asg.name {
                        ast::AssignmentName::VariableName(n) => n.clone(),
                        ast::AssignmentName::ArrayElementName(n, _) => n.clone(),
                    };
                    let val = match &asg.value {
                        ast::AssignmentValue::Scalar(w) => this.resolve(&w.value, false)?,
                        ast::AssignmentValue::Array(items) => {
                            for (k, v) in items {
                                if let Some(k) = k {
                                    this.resolve(&k.value, false)?;
                                }
                                this.resolve(&v.value, false)?;
                            }
                            Arg {
                                text: DYN.to_string(),
                                dynamic: true,
                                ..Default::default()
                            }
                        }
                    };
                    if in_suffix {
                        // `export X=1`, `alias x='…'`, `declare X=…`: keep as an argument.
                        args.push(Arg {
                            text: format!("{name}={}", val.text),
                            ..val.clone()
                        });
                    }
                    assigns.push((name, val));
                }
                ast::CommandPrefixOrSuffixItem::ProcessSubstitution(_, sub) => {
                    this.impure = true;
                    this.compound_list(&sub.list, false)?;
                    args.push(Arg {
                        text: DYN.to_string(),
                        dynamic: true,
                        procsub: true,
                        ..Default::default()
                    });
                }
            }
            Ok(())
        };
        if let Some(prefix) = &sc.prefix {
            for item in &prefix.0 {
                handle_item(self, item, &mut args, false)?;
            }
        }
        if let Some(w) = &sc.word_or_name {
            let a = self.resolve(&w.value, false)?;
            args.push(a);
        }
        if let Some(suffix) = &sc.suffix {
            for item in &suffix.0 {
                handle_item(self, item, &mut args, true)?;
            }
        }
        let has_cmd = !args.is_empty();
        for (name, val) in &assigns {
            self.assignment(name, val, has_cmd)?;
        }
        if args.iter().any(|a| a.dynamic) {
            self.impure = true;
        }
        let mut seen_content = false;
        if let Stdin::Text { body, .. } = &stdin {
            let target = write_target.as_deref().unwrap_or("heredoc");
            code::scan_file_content(body, target)?;
            seen_content = true;
        }
        if let Some(target) = &write_target {
            let name = args
                .first()
                .map(|a| a.s().rsplit('/').next().unwrap_or("").to_string())
                .unwrap_or_default();
            if matches!(name.as_str(), "echo" | "printf") && !args.iter().any(|a| a.dynamic) {
                let joined = args[1..]
                    .iter()
                    .map(|a| {
                        if name == "printf" {
                            code_unescape(a.s())
                        } else {
                            a.s().to_string()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" ");
                code::scan_file_content(&joined, target)?;
                seen_content = true;
            }
            if !seen_content || piped {
                let t = self.resolve(target, false)?;
                self.unseen_files
                    .insert(self.pe.norm(&t.text.replace(DYN, "")));
            }
        }
        if !has_cmd {
            return Ok(());
        }
        self.argv(&args, &stdin)
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
            // It decides which of the machine's GPUs local jobs are given and where their
            // locks are kept apart from other jobs': the operator's, like the sandbox.
            "MLRES_LOCAL_GPUS" => {
                return Err(
                    "refused: `MLRES_LOCAL_GPUS` chooses which of the machine's GPUs local \
                            jobs are given; only a human sets it"
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

    /// Applies the rules to one command's argv (after wrappers are peeled, recursively).
    fn argv(&mut self, args: &[Arg], stdin: &Stdin) -> R {
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
        if base == "mlres" && raw.contains('/') && !raw.starts_with('/') {
            return Err(
                "refused: runs `mlres` from a relative path, which may be a fake broker. Run the \
                 installed `mlres` by name"
                    .into(),
            );
        }
        let prog = normalise_prog(base);
        // Generic path checks on all arguments.
        if PATH_EXEMPT.contains(&prog.as_str()) && prog != "mlres" {
            for a in rest {
                for c in Self::path_candidates(a) {
                    if self.pe.secret_read(&c, a.glob) == Some(crate::paths::STATE) {
                        return Err(format!("refused: {} (`{c}`)", crate::paths::STATE));
                    }
                }
            }
        }
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
        if !PATH_EXEMPT.contains(&prog.as_str()) && !matches!(prog.as_str(), "ssh" | "scp" | "sftp")
        {
            // For pattern-first tools the first positional is a pattern/program, not a path.
            let pattern_first = matches!(
                prog.as_str(),
                "jq" | "gojq"
                    | "jaq"
                    | "yq"
                    | "awk"
                    | "gawk"
                    | "mawk"
                    | "nawk"
                    | "sed"
                    | "grep"
                    | "egrep"
                    | "fgrep"
                    | "rg"
                    | "ag"
                    | "ack"
            ) && !rest.iter().any(|a| {
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
        match prog.as_str() {
            // ------------------------------------------------ wrappers
            "command" => {
                if rest.iter().any(|a| a.s() == "-v" || a.s() == "-V") {
                    return Ok(());
                }
                self.wrapped(rest, &[], 0, stdin)
            }
            "builtin" | "exec" | "nohup" | "noglob" | "setsid" | "unbuffer" | "caffeinate"
            | "catchsegv" | "proxychains" | "proxychains4" | "tsp" | "pv" => {
                if prog == "pv" {
                    return Ok(());
                }
                self.wrapped(rest, &["-a"], 0, stdin)
            }
            "time" => self.wrapped(rest, &["-f", "-o", "--format", "--output"], 0, stdin),
            "nice" => self.wrapped(rest, &["-n", "--adjustment"], 0, stdin),
            "ionice" => self.wrapped(
                rest,
                &["-c", "-n", "-p", "-P", "-u", "--class", "--classdata"],
                0,
                stdin,
            ),
            "chrt" => self.wrapped(rest, &[], 1, stdin),
            "taskset" => {
                let skip = 1;
                self.wrapped(rest, &[], skip, stdin)
            }
            "numactl" => self.wrapped(
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
            ),
            "stdbuf" => self.wrapped(
                rest,
                &["-i", "-o", "-e", "--input", "--output", "--error"],
                0,
                stdin,
            ),
            "timeout" => self.wrapped(rest, &["-s", "-k", "--signal", "--kill-after"], 1, stdin),
            "chroot" | "flock" | "faketime" => {
                if prog == "flock"
                    && let Some(i) = rest
                        .iter()
                        .position(|a| a.s() == "-c" || a.s() == "--command")
                {
                    return self.shell_payload(rest.get(i + 1));
                }
                self.wrapped(
                    rest,
                    &["-w", "-E", "--timeout", "--conflict-exit-code"],
                    1,
                    stdin,
                )
            }
            "strace" | "ltrace" => self.wrapped(
                rest,
                &[
                    "-o", "-e", "-p", "-s", "-u", "-E", "-P", "-X", "-a", "-b", "-I", "-O", "-S",
                ],
                0,
                stdin,
            ),
            "valgrind" | "perf" | "cgexec" | "systemd-run" | "firejail" | "srun" | "mpirun"
            | "mpiexec" => {
                let (opts_v, skip): (&[&str], usize) = match prog.as_str() {
                    "perf" => (&["-o", "-e", "-F", "-c", "-p", "-t"], 1),
                    "cgexec" => (&["-g"], 0),
                    "systemd-run" => (
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
                    ),
                    "srun" | "mpirun" | "mpiexec" => (
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
                    ),
                    _ => (&[], 0),
                };
                self.wrapped(rest, opts_v, skip, stdin)
            }
            "sudo" | "doas" | "su" | "runuser" | "sg" => self.sudo(&prog, rest, stdin),
            "env" => self.env(rest, stdin),
            "xargs" => self.xargs(rest),
            "find" => self.find(rest),
            "parallel" => {
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
                    return self.shell_payload(cmd.first());
                }
                self.argv(&cmd, &Stdin::Tty)
            }
            "watch" => {
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
                self.analyze_shell_string(&joined, true)
            }
            "ssh" => {
                let mut pos = skip_opts(
                    rest,
                    &[
                        "-i", "-p", "-l", "-o", "-F", "-J", "-L", "-R", "-D", "-b", "-c", "-e",
                        "-m", "-O", "-S", "-W", "-w", "-E", "-B", "-I", "-Q",
                    ],
                );
                let _host = pos.next();
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
                self.analyze_shell_string(&joined, true)
            }
            "script" => {
                if let Some(i) = rest
                    .iter()
                    .position(|a| a.s() == "-c" || a.s() == "--command")
                {
                    return self.shell_payload(rest.get(i + 1));
                }
                Ok(())
            }
            "tmux" | "screen" | "byobu" | "at" | "batch" => {
                if matches!(prog.as_str(), "at" | "batch") {
                    return Err(deny_obf(
                        "`at`/`batch` schedule commands to run later, outside the guard",
                    ));
                }
                for a in rest {
                    if a.dynamic {
                        return Err(deny_obf(
                            "a terminal multiplexer is given a runtime-built command",
                        ));
                    }
                    self.analyze_embedded(a.s())?;
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
                    self.argv(&cmd, &Stdin::Tty)?;
                }
                Ok(())
            }
            "crontab" => {
                if rest.iter().all(|a| {
                    a.s() == "-l"
                        || a.s() == "-u"
                        || !a.is_opt() && rest.len() == 2 && rest[0].s() == "-u"
                }) && !rest.is_empty()
                {
                    return Ok(());
                }
                Err(deny_obf(
                    "`crontab` installs commands that later run outside the guard",
                ))
            }
            "uv" | "uvx" | "pipx" | "poetry" | "pdm" | "hatch" | "pixi" | "rye" | "conda"
            | "mamba" | "micromamba" | "npx" | "bunx" | "pnpm" | "yarn" | "direnv" => {
                self.runner(&prog, rest, stdin)
            }
            // ------------------------------------------------ shells and interpreters
            "sh" | "bash" | "zsh" | "dash" | "ksh" | "mksh" | "ash" | "fish" | "busybox"
            | "tcsh" | "csh" => self.shell(&prog, rest, stdin),
            "eval" => {
                if rest.iter().any(|a| a.dynamic) {
                    return Err(deny_obf("`eval` of variables or substitutions"));
                }
                let joined = rest
                    .iter()
                    .map(|a| a.s().to_string())
                    .collect::<Vec<_>>()
                    .join(" ");
                self.analyze_shell_string(&joined, true)
            }
            "source" | "." => {
                let Some(f) = rest.first() else { return Ok(()) };
                if f.dynamic || f.procsub {
                    return Err(deny_obf(
                        "`source` of a runtime-built path or a process substitution",
                    ));
                }
                let t = f.s();
                if t == "/dev/stdin"
                    || t.starts_with("/dev/fd/")
                    || t.starts_with("/proc/")
                    || t == "-"
                {
                    return Err(deny_obf("`source` from standard input"));
                }
                Ok(())
            }
            "trap" => {
                let Some(first) = rest.iter().find(|a| !a.is_opt()) else {
                    return Ok(());
                };
                if first.dynamic {
                    return Err(deny_obf("`trap` with a runtime-built handler"));
                }
                self.analyze_shell_string(first.s(), true)
            }
            "alias" => {
                for a in rest {
                    if let Some((n, v)) = a.s().split_once('=') {
                        if n == "mlres" {
                            return Err(
                                "refused: an alias named `mlres` would shadow the real broker"
                                    .into(),
                            );
                        }
                        if a.dynamic {
                            return Err(deny_obf("an alias with a runtime-built body"));
                        }
                        self.analyze_shell_string(v, true)?;
                        self.aliases.insert(n.to_string(), v.to_string());
                    }
                }
                Ok(())
            }
            "hash" => {
                if rest.iter().any(|a| a.s() == "mlres") && rest.iter().any(|a| a.s() == "-p") {
                    return Err(
                        "refused: `hash -p … mlres` points `mlres` at another binary".into(),
                    );
                }
                Ok(())
            }
            "fc" => {
                if rest.iter().any(|a| a.s() == "-l") {
                    return Ok(());
                }
                Err(deny_obf("`fc` re-executes commands from history unseen"))
            }
            "enable" => {
                if rest.iter().any(|a| a.s().starts_with("-f")) {
                    return Err(deny_obf("`enable -f` loads code into the shell"));
                }
                Ok(())
            }
            p if is_interpreter(p) => self.interpreter(p, rest, stdin),
            "awk" | "gawk" | "mawk" | "nawk" | "busybox-awk" => {
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
                            self.analyze_embedded(&lit)?;
                        }
                    }
                }
                Ok(())
            }
            "jq" | "gojq" | "jaq" | "yq" => {
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
            // ------------------------------------------------ Hub and broker
            "hf" | "huggingface-cli" => self.hf_cli(&prog, rest),
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
            | "lwp-request" | "wget2" => self.http(&prog, rest),
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
            "export" | "declare" | "typeset" | "local" | "readonly" => self.declare(&prog, rest),
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
            _ => self.file_ops(&prog, rest, stdin),
        }
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

    fn sudo(&mut self, prog: &str, rest: &[Arg], stdin: &Stdin) -> R {
        if matches!(prog, "su" | "runuser" | "sg")
            && let Some(i) = rest
                .iter()
                .position(|a| a.s() == "-c" || a.s() == "--command")
        {
            return self.shell_payload(rest.get(i + 1));
        }
        let with_val = [
            "-u", "-g", "-h", "-p", "-C", "-D", "-r", "-t", "-U", "-T", "--user", "--group",
            "--chdir", "--prompt", "--host",
        ];
        let shell_mode = rest
            .iter()
            .take_while(|a| a.is_opt())
            .any(|a| a.s() == "-s" || a.s() == "-i" || a.s() == "--shell" || a.s() == "--login");
        let cmd: Vec<Arg> = skip_opts(rest, &with_val).cloned().collect();
        if matches!(prog, "su" | "runuser" | "sg") {
            // su [user]: interactive; runuser -u user -- cmd
            if prog == "runuser" {
                return self.argv(&cmd, stdin);
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
            return self.analyze_shell_string(&joined, true);
        }
        self.argv(&cmd, stdin)
    }

    fn env(&mut self, rest: &[Arg], stdin: &Stdin) -> R {
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
                    Some(Ok(j)) => self.analyze_shell_string(&j, true),
                    Some(Err(e)) => Err(e),
                    None => Ok(()),
                };
            }
            if matches!(s, "-u" | "--unset" | "-C" | "--chdir") {
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
                self.assignment(n, &val, true)?;
                i += 1;
                continue;
            }
            break;
        }
        let cmd = &rest[i.min(rest.len())..];
        if cmd.is_empty() {
            return Err(env_dump("env"));
        }
        self.argv(cmd, stdin)
    }

    fn xargs(&mut self, rest: &[Arg]) -> R {
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
        let cmd: Vec<Arg> = skip_opts(rest, &with_val).cloned().collect();
        if cmd.is_empty() {
            return Ok(());
        }
        // Arguments arrive from stdin: the command runs with unknown extra args.
        self.argv(&cmd, &Stdin::Tty)
    }

    fn find(&mut self, rest: &[Arg]) -> R {
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
                        self.check_write(t)?;
                    }
                }
                "-name" | "-iname" | "-path" | "-ipath" | "-wholename" | "-regex" | "-iregex" => {
                    if let Some(p) = rest.get(i + 1) {
                        let pat = p.s().trim_matches(['*', '.', '/']).to_ascii_lowercase();
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
                        let raw = p.s().to_ascii_lowercase();
                        if SECRET_NAMES.iter().any(|n| {
                            pat == *n
                                || crate::paths::fnmatch(&raw, n)
                                || crate::paths::fnmatch(&raw, &format!(".{n}"))
                        }) {
                            name_hits = true;
                        }
                    }
                }
                _ => {}
            }
            i += 1;
        }
        for r in &roots {
            if deletes {
                self.check_write(r)?;
                self.check_recursive_write(r)?;
            }
            let reaches_secrets = self.pe.contains_secrets(&r.text.replace(DYN, ""), r.glob);
            if reaches_secrets && name_hits {
                return Err(format!(
                    "refused: searches `{}` for credential files. mlres handles credentials itself",
                    r.s()
                ));
            }
            if reaches_secrets
                && execs.iter().any(|c| {
                    c.first().is_some_and(|n| {
                        !PATH_EXEMPT.contains(
                            &normalise_prog(n.s().rsplit('/').next().unwrap_or("")).as_str(),
                        )
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
            self.argv(&cmd, &Stdin::Tty)?;
        }
        Ok(())
    }

    fn runner(&mut self, prog: &str, rest: &[Arg], stdin: &Stdin) -> R {
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
            return self.argv(&py, stdin);
        }
        if cmd.is_empty() {
            return Ok(());
        }
        let first = cmd[0].s();
        if first.ends_with(".py") || first.ends_with(".sh") && prog != "uv" {
            return Ok(());
        }
        self.argv(&cmd, stdin)
    }

    fn shell(&mut self, prog: &str, rest: &[Arg], stdin: &Stdin) -> R {
        let rest: &[Arg] = if prog == "busybox" {
            match rest.first().map(|a| a.s()) {
                Some("sh") | Some("ash") | Some("bash") => &rest[1..],
                _ => return Ok(()),
            }
        } else {
            rest
        };
        let mut i = 0;
        let mut cmd_string = false;
        while i < rest.len() {
            let s = rest[i].s();
            if s == "--" {
                i += 1;
                break;
            }
            if (s.starts_with('-') || s.starts_with('+')) && s.len() > 1 && !rest[i].dynamic {
                if s == "-o"
                    || s == "+o"
                    || s == "-O"
                    || s == "+O"
                    || s == "--rcfile"
                    || s == "--init-file"
                {
                    i += 2;
                    continue;
                }
                if !s.starts_with("--") && s[1..].contains('c') {
                    cmd_string = true;
                }
                i += 1;
                continue;
            }
            break;
        }
        if cmd_string {
            return self.shell_payload(rest.get(i));
        }
        match rest.get(i) {
            Some(script) => {
                let t = script.s();
                if script.procsub
                    || script.dynamic
                    || t == "/dev/stdin"
                    || t.starts_with("/dev/fd/")
                    || t.starts_with("/proc/")
                    || t == "-"
                {
                    return Err(deny_obf(
                        "the shell runs a script from a pipe, process substitution or runtime-built path",
                    ));
                }
                if self.unseen_files.contains(&self.pe.norm(t)) {
                    return Err(deny_obf(
                        "the shell runs a script written earlier in the same command from content the guard cannot see",
                    ));
                }
                Ok(())
            }
            None => self.stdin_program(stdin, "shell", |this, body| {
                this.analyze_shell_string(body, true)
            }),
        }
    }

    fn stdin_program(
        &mut self,
        stdin: &Stdin,
        what: &str,
        f: impl FnOnce(&mut Self, &str) -> R,
    ) -> R {
        match stdin {
            Stdin::Tty | Stdin::File => Ok(()),
            Stdin::Pipe => Err(deny_obf(&format!(
                "data is piped into a {what} as a program (e.g. `… | sh`, `base64 -d | bash`, `curl … | python`)"
            ))),
            Stdin::Text { dynamic: true, .. } => Err(deny_obf(&format!(
                "a here-string/heredoc with substitutions is fed to a {what}"
            ))),
            Stdin::Text {
                body,
                dynamic: false,
            } => {
                let b = body.clone();
                f(self, &b)
            }
        }
    }

    fn interpreter(&mut self, prog: &str, rest: &[Arg], stdin: &Stdin) -> R {
        let (code_flags, val_flags): (&[&str], &[&str]) = match prog {
            "python" | "pypy" | "ipython" => {
                (&["-c"], &["-W", "-X", "-Q", "--check-hash-based-pycs"])
            }
            "node" | "bun" | "deno" => (
                &["-e", "--eval", "-p", "--print"],
                &[
                    "-r",
                    "--require",
                    "--import",
                    "--loader",
                    "-C",
                    "--conditions",
                    "--input-type",
                ],
            ),
            "ruby" => (&["-e"], &["-r", "-I", "-C", "-E"]),
            "perl" => (&["-e", "-E"], &["-M", "-I", "-m", "-x"]),
            "php" => (&["-r"], &["-d", "-c", "-z"]),
            "lua" | "luajit" => (&["-e"], &["-l"]),
            "rscript" | "r" | "julia" => (&["-e", "-E", "--eval"], &[]),
            "osascript" => (&["-e"], &[]),
            _ => (&[], &[]),
        };
        let mut codes: Vec<&Arg> = Vec::new();
        let mut script: Option<&Arg> = None;
        let mut module: Option<(String, Vec<Arg>)> = None;
        let mut i = 0;
        while i < rest.len() {
            let a = &rest[i];
            let s = a.s();
            if s == "--" {
                script = rest.get(i + 1);
                break;
            }
            if code_flags.contains(&s) {
                if let Some(c) = rest.get(i + 1) {
                    codes.push(c);
                }
                if prog == "python" {
                    break;
                }
                i += 2;
                continue;
            }
            if prog == "python" && s.starts_with("-c") && s.len() > 2 {
                codes.push(a);
                break;
            }
            if prog == "python" && (s == "-m" || s.starts_with("-m") && s.len() > 2) {
                let (m, next) = if s == "-m" {
                    (
                        rest.get(i + 1)
                            .map(|a| a.s().to_string())
                            .unwrap_or_default(),
                        i + 2,
                    )
                } else {
                    (s[2..].to_string(), i + 1)
                };
                module = Some((m, rest[next.min(rest.len())..].to_vec()));
                break;
            }
            if prog == "deno" && s == "eval" {
                if let Some(c) = rest.get(i + 1) {
                    codes.push(c);
                }
                break;
            }
            if val_flags.contains(&s) {
                i += 2;
                continue;
            }
            if a.is_opt() {
                i += 1;
                continue;
            }
            script = Some(a);
            break;
        }
        if let Some((m, args)) = module {
            if m.starts_with("huggingface_hub") {
                return self.hf_cli("hf", &args);
            }
            if m == "mlres" {
                return self.mlres(&args);
            }
            return Ok(());
        }
        if !codes.is_empty() {
            for c in codes {
                if c.dynamic {
                    return Err(deny_obf(
                        "the inline program is built at run time (variables, substitutions or decoding)",
                    ));
                }
                code::scan_exec_code(c.s(), self)?;
            }
            return Ok(());
        }
        match script {
            Some(s) => {
                let t = s.s();
                if s.procsub
                    || s.dynamic && !t.trim_matches(DYN).ends_with(".py")
                    || t.starts_with("/dev/fd/")
                    || t.starts_with("/proc/")
                {
                    return Err(deny_obf(
                        "the interpreter runs a program from a pipe, process substitution or runtime-built path",
                    ));
                }
                if t == "-" || t == "/dev/stdin" {
                    return self.stdin_program(stdin, "interpreter", |this, body| {
                        code::scan_exec_code(body, this)
                    });
                }
                if self.unseen_files.contains(&self.pe.norm(t)) {
                    return Err(deny_obf(
                        "the interpreter runs a file written earlier in the same command from content the guard cannot see",
                    ));
                }
                Ok(())
            }
            None => self.stdin_program(stdin, "interpreter", |this, body| {
                code::scan_exec_code(body, this)
            }),
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

/// Undoes printf's backslash escapes (`\n`, `\t`, `\xHH`, octal) for content scanning.
fn code_unescape(s: &str) -> String {
    decode_ansi_c(s)
}

/// Expands `{a,b}` (nested, bounded) for path checks; `{1..3}` ranges are left as-is.
fn brace_expand(s: &str, depth: usize) -> Vec<String> {
    if depth > 4 {
        return vec![s.to_string()];
    }
    let b = s.as_bytes();
    let Some(open) = s.find('{') else {
        return vec![s.to_string()];
    };
    let mut level = 0;
    let mut close = None;
    let mut commas = Vec::new();
    for (i, &c) in b.iter().enumerate().skip(open) {
        match c {
            b'{' => level += 1,
            b'}' => {
                level -= 1;
                if level == 0 {
                    close = Some(i);
                    break;
                }
            }
            b',' if level == 1 => commas.push(i),
            _ => {}
        }
    }
    let Some(close) = close else {
        return vec![s.to_string()];
    };
    if commas.is_empty() {
        return vec![s.to_string()];
    }
    let (pre, post) = (&s[..open], &s[close + 1..]);
    let mut parts = Vec::new();
    let mut start = open + 1;
    for c in commas.iter().copied().chain(std::iter::once(close)) {
        parts.push(&s[start..c]);
        start = c + 1;
    }
    let mut out = Vec::new();
    for p in parts {
        for e in brace_expand(&format!("{pre}{p}{post}"), depth + 1) {
            if out.len() < 64 {
                out.push(e);
            }
        }
    }
    out
}

fn env_dump(what: &str) -> String {
    format!(
        "refused: `{what}` dumps the environment, which holds tokens. Print single, non-secret \
         variables instead (e.g. `echo \"$CUDA_VISIBLE_DEVICES\"`)"
    )
}

/// Programs that only inspect metadata: their path arguments are not reads.
const PATH_EXEMPT: &[&str] = &[
    "ls", "stat", "du", "test", "[", "realpath", "readlink", "dirname", "basename", "cd", "pushd",
    "popd", "mkdir", "which", "type", "command", "file", "exa", "eza", "tree", "df", "mlres",
];

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

fn is_interpreter(p: &str) -> bool {
    matches!(
        p,
        "python"
            | "pypy"
            | "ipython"
            | "node"
            | "bun"
            | "deno"
            | "ruby"
            | "perl"
            | "php"
            | "lua"
            | "luajit"
            | "rscript"
            | "r"
            | "julia"
            | "osascript"
    )
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
