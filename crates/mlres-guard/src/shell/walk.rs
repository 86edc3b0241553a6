//! The AST walker: visits every list, pipeline, compound command, function body, test,
//! redirect and simple command of a parsed program. A simple command's words are resolved
//! (see `words`), its redirects and assignments checked, and its argv handed to the rules
//! (see `rules`). Content written by `echo`/`printf`/heredocs into files is scanned here.

use brush_parser::ast;

use super::parse::code_unescape;
use super::{Analyzer, Arg, DYN, R, Stdin};
use crate::code;

/// Longest list of literal words a `for` loop is analysed once per word for.
const MAX_LITERAL_LOOP: usize = 16;

impl Analyzer<'_> {
    pub(super) fn compound_list(&mut self, cl: &ast::CompoundList, piped: bool) -> R {
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
                let mut values = Vec::new();
                if let Some(vals) = &f.values {
                    for w in vals {
                        values.push(self.resolve(&w.value, false)?);
                    }
                }
                // A loop over a short list of literal words runs its body once per word, with
                // the variable known (`for lr in 1e-4 3e-4; do … --config lr=$lr; done`).
                let literal = f.values.is_some()
                    && !values.is_empty()
                    && values.len() <= MAX_LITERAL_LOOP
                    && values.iter().all(|v| !v.dynamic && !v.glob && !v.brace);
                if literal {
                    for v in values {
                        self.vars.insert(f.variable_name.clone(), Some(v.text));
                        self.compound_list(&f.body.list, piped)?;
                    }
                    return Ok(());
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

    pub(super) fn arith(&mut self, expr: &str) -> R {
        if expr.contains("$(") || expr.contains('`') || expr.contains('$') {
            self.impure = true;
            let _ = self.resolve(expr, false)?;
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

    // ---------------------------------------------------------------- simple commands

    fn simple(&mut self, sc: &ast::SimpleCommand, piped: bool) -> R {
        self.simple_count += 1;
        let mut parts = SimpleParts {
            stdin: if piped { Stdin::Pipe } else { Stdin::Tty },
            args: Vec::new(),
            assigns: Vec::new(),
            write_target: None,
        };
        if let Some(prefix) = &sc.prefix {
            for item in &prefix.0 {
                self.simple_item(item, &mut parts, false)?;
            }
        }
        if let Some(w) = &sc.word_or_name {
            let a = self.resolve(&w.value, false)?;
            parts.args.push(a);
        }
        if let Some(suffix) = &sc.suffix {
            for item in &suffix.0 {
                self.simple_item(item, &mut parts, true)?;
            }
        }
        let SimpleParts {
            stdin,
            args,
            assigns,
            write_target,
        } = parts;
        let has_cmd = !args.is_empty();
        for (name, val) in &assigns {
            self.assignment(name, val, has_cmd)?;
        }
        if args.iter().any(|a| a.dynamic) {
            self.impure = true;
        }
        self.written_content(&args, &stdin, write_target.as_deref(), piped)?;
        if !has_cmd {
            return Ok(());
        }
        self.argv(&args, &stdin)
    }

    /// One prefix or suffix item of a simple command: a redirect, a word, an assignment or a
    /// process substitution. `in_suffix`: after the command name (`export X=1`).
    fn simple_item(
        &mut self,
        item: &ast::CommandPrefixOrSuffixItem,
        parts: &mut SimpleParts,
        in_suffix: bool,
    ) -> R {
        match item {
            ast::CommandPrefixOrSuffixItem::IoRedirect(io) => {
                if let ast::IoRedirect::File(_, kind, ast::IoFileRedirectTarget::Filename(w)) = io
                    && !matches!(
                        kind,
                        ast::IoFileRedirectKind::Read | ast::IoFileRedirectKind::DuplicateInput
                    )
                {
                    parts.write_target = Some(w.value.clone());
                }
                if let Some(s) = self.redirect(io)? {
                    parts.stdin = s;
                }
            }
            ast::CommandPrefixOrSuffixItem::Word(w) => {
                let a = self.resolve(&w.value, false)?;
                parts.args.push(a);
            }
            ast::CommandPrefixOrSuffixItem::AssignmentWord(asg, _) => {
                self.impure = true;
                let name = match &asg.name {
                    ast::AssignmentName::VariableName(n) => n.clone(),
                    ast::AssignmentName::ArrayElementName(n, _) => n.clone(),
                };
                let val = match &asg.value {
                    ast::AssignmentValue::Scalar(w) => self.resolve(&w.value, false)?,
                    ast::AssignmentValue::Array(items) => {
                        for (k, v) in items {
                            if let Some(k) = k {
                                self.resolve(&k.value, false)?;
                            }
                            self.resolve(&v.value, false)?;
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
                    parts.args.push(Arg {
                        text: format!("{name}={}", val.text),
                        ..val.clone()
                    });
                }
                parts.assigns.push((name, val));
            }
            ast::CommandPrefixOrSuffixItem::ProcessSubstitution(_, sub) => {
                self.impure = true;
                self.compound_list(&sub.list, false)?;
                parts.args.push(Arg {
                    text: DYN.to_string(),
                    dynamic: true,
                    procsub: true,
                    ..Default::default()
                });
            }
        }
        Ok(())
    }

    /// Scans what a command writes into a file when the guard can see it (a heredoc or
    /// here-string, `echo`/`printf` into a redirect) and remembers files written from
    /// content it cannot see, so that running them later in the same command is refused.
    fn written_content(
        &mut self,
        args: &[Arg],
        stdin: &Stdin,
        write_target: Option<&str>,
        piped: bool,
    ) -> R {
        let mut seen_content = false;
        let name = args
            .first()
            .map(|a| a.s().rsplit('/').next().unwrap_or("").to_string())
            .unwrap_or_default();
        let mut content = None;
        if let Stdin::Text { body, .. } = stdin {
            let target = write_target.unwrap_or("heredoc");
            code::scan_file_content(body, target)?;
            seen_content = true;
            if name == "cat" && args.len() == 1 {
                content = Some(body.clone());
            }
        }
        if let Some(target) = write_target {
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
                content = Some(joined);
            }
            let t = self.resolve(target, false)?;
            let path = self.pe.norm(&t.text.replace(DYN, ""));
            if !seen_content || piped {
                self.unseen_files.insert(path);
            } else if let Some(c) = content {
                // Running it later in this command runs this text (see `scripts`).
                self.seen_files.insert(path, c);
            }
        }
        Ok(())
    }
}

/// The parts of a simple command collected while walking its prefix, name and suffix.
struct SimpleParts {
    /// What the command reads on standard input.
    stdin: Stdin,
    /// The resolved words (command name first).
    args: Vec<Arg>,
    /// `NAME=value` assignments, applied once the words are known.
    assigns: Vec<(String, Arg)>,
    /// The raw target of the last writing file redirect.
    write_target: Option<String>,
}
