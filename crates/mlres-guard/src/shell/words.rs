//! Words: quote removal, `$'…'` decoding, tilde and static variable expansion. Command and
//! process substitutions inside a word are analysed as shell programs of their own. The only
//! rules here are about expansions themselves: secret variables, `$IFS` and `${!x}` are
//! denied; anything the guard cannot know statically is marked dynamic.

use brush_parser::word::{TildeExpr, WordPiece, WordPieceWithSource};

use super::parse::{decode_ansi_c, parse_word};
use super::{Analyzer, Arg, DYN, MAX_DEPTH, R, deny_obf};
use crate::code::is_sensitive_var;

impl Analyzer<'_> {
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
                        // A `[` only globs with a `]` after it (`[` itself is the test command).
                        let bracket = s.find('[').is_some_and(|i| s[i + 1..].contains(']'));
                        if s.contains(['*', '?']) || bracket {
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
                    a.subs.push(s.clone());
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
}
