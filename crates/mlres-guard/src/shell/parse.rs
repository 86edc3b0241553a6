//! Calls into `brush-parser`, fenced so that a parser panic or an absurdly nested command
//! becomes a denial instead of a crash, plus the decoding of `$'…'` strings. Nothing here
//! knows any rule: it turns text into syntax and nothing more.

use brush_parser::ast;
use brush_parser::word::{self, WordPieceWithSource};

/// Deepest `(`/`{`/`` ` `` nesting the guard hands to the parser.
const MAX_PAREN_NESTING: usize = 200;

fn opts() -> brush_parser::ParserOptions {
    brush_parser::ParserOptions::default()
}

/// Parses a whole shell program, catching panics inside the parser.
pub(super) fn parse_program(src: &str) -> Result<ast::Program, String> {
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

pub(super) fn parse_word(w: &str, heredoc: bool) -> Result<Vec<WordPieceWithSource>, String> {
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
pub(super) fn decode_ansi_c(s: &str) -> String {
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

/// Undoes printf's backslash escapes (`\n`, `\t`, `\xHH`, octal) for content scanning.
pub(super) fn code_unescape(s: &str) -> String {
    decode_ansi_c(s)
}
