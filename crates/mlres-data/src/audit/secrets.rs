//! PII and secrets: emails, phone numbers, Luhn-valid card numbers, tokens recognised by
//! their prefix, private keys, JWTs, and high-entropy values assigned to `key`, `token`,
//! `secret` or `password`. Findings carry only a redacted excerpt.

use regex::Regex;

/// What kind of sensitive value a match is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Pii,
    Secret,
}

/// One match in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub kind: &'static str,
    pub class: Class,
    pub start: usize,
    pub end: usize,
}

/// Compiled patterns (build once, share between threads).
#[derive(Debug)]
pub struct Scanner {
    tokens: Vec<(&'static str, Regex)>,
    email: Regex,
    phone: Regex,
    card: Regex,
    generic: Regex,
}

fn re(s: &str) -> Regex {
    // The patterns are constants of this module; a failure is a bug caught by every test.
    Regex::new(s).unwrap_or_else(|e| panic!("bad built-in pattern {s}: {e}"))
}

impl Default for Scanner {
    fn default() -> Self {
        Self::new()
    }
}

/// Secrets recognised by their shape alone: `(kind, pattern)`. Shared by the text scanner and
/// the byte scanner, so a binary file is checked for the same tokens as a text one.
const TOKEN_PATTERNS: &[(&str, &str)] = &[
    (
        "private_key",
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----",
    ),
    ("anthropic_key", r"\bsk-ant-[A-Za-z0-9_\-]{20,}"),
    ("openai_key", r"\bsk-(?:proj-|svcacct-)?[A-Za-z0-9_\-]{20,}"),
    ("huggingface_token", r"\bhf_[A-Za-z0-9]{30,}"),
    ("aws_access_key", r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"),
    (
        "github_token",
        r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,})",
    ),
    ("slack_token", r"\bxox[abposr]-[A-Za-z0-9\-]{10,}"),
    ("gitlab_token", r"\bglpat-[A-Za-z0-9_\-]{20,}"),
    ("google_api_key", r"\bAIza[0-9A-Za-z_\-]{35}"),
    (
        "jwt",
        r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
    ),
];

/// The token patterns over raw bytes (ASCII classes and word boundaries), for files that are
/// not text; optionally also exact values (secrets granted to a job), found wherever they are.
#[derive(Debug)]
pub struct ByteScanner {
    tokens: Vec<(&'static str, regex::bytes::Regex)>,
    literals: Vec<(String, regex::bytes::Regex)>,
}

impl Default for ByteScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl ByteScanner {
    pub fn new() -> Self {
        ByteScanner {
            tokens: TOKEN_PATTERNS
                .iter()
                .map(|(k, p)| {
                    let r = regex::bytes::Regex::new(&format!("(?-u){p}"))
                        .unwrap_or_else(|e| panic!("bad built-in pattern {p}: {e}"));
                    (*k, r)
                })
                .collect(),
            literals: Vec::new(),
        }
    }

    /// Also finds these exact values, each reported under its name. Empty values are ignored.
    pub fn with_literals<'a>(
        mut self,
        values: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        for (name, value) in values {
            if value.is_empty() {
                continue;
            }
            // An escaped literal always compiles; the size limit is generous for one value.
            if let Ok(r) = regex::bytes::Regex::new(&format!("(?-u){}", regex::escape(value))) {
                self.literals.push((name.to_string(), r));
            }
        }
        self
    }

    /// The first secret in `hay`: its kind (a token kind, or a literal's name) and byte range.
    pub fn find(&self, hay: &[u8]) -> Option<(String, std::ops::Range<usize>)> {
        let tokens = self
            .tokens
            .iter()
            .filter_map(|(k, r)| r.find(hay).map(|m| (k.to_string(), m.range())));
        let literals = self
            .literals
            .iter()
            .filter_map(|(k, r)| r.find(hay).map(|m| (k.clone(), m.range())));
        tokens.chain(literals).min_by_key(|(_, r)| r.start)
    }

    /// The longest literal, in bytes (a scan over chunks must overlap by at least this).
    pub fn longest_literal(&self) -> usize {
        self.literals
            .iter()
            .map(|(_, r)| r.as_str().len())
            .max()
            .unwrap_or(0)
    }
}

impl Scanner {
    pub fn new() -> Self {
        let tokens = TOKEN_PATTERNS.iter().map(|(k, p)| (*k, re(p))).collect();
        Scanner {
            tokens,
            email: re(
                r"\b[A-Za-z0-9][A-Za-z0-9._%+\-]*@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}\b",
            ),
            phone: re(
                r"(?:\+\d{1,3}[ .\-]?)?(?:\(\d{2,4}\)[ .\-]?|\b\d{3}[ .\-])\d{3}[ .\-]\d{4}\b|\+\d{1,3}(?:[ .\-]\d{2,4}){3,5}\b",
            ),
            card: re(r"\b\d(?:[ \-]?\d){12,18}\b"),
            generic: re(
                r#"(?i)(?:\b|_)(?:[a-z0-9_\-]*(?:api[_\-]?key|access[_\-]?key|secret|token|password|passwd|pwd|credentials?|auth)|key|bearer)\b["']?(?:\s*[:=]\s*|\s+)["']?([^\s"'`,;<>()\[\]{}]{12,})"#,
            ),
        }
    }

    /// All matches in `text`, non-overlapping, by position.
    pub fn scan(&self, text: &str) -> Vec<Hit> {
        let mut hits: Vec<Hit> = Vec::new();
        let overlaps =
            |hits: &[Hit], s: usize, e: usize| hits.iter().any(|h| s < h.end && h.start < e);
        for (kind, r) in &self.tokens {
            for m in r.find_iter(text) {
                if !overlaps(&hits, m.start(), m.end()) {
                    hits.push(Hit {
                        kind,
                        class: Class::Secret,
                        start: m.start(),
                        end: m.end(),
                    });
                }
            }
        }
        for c in self.generic.captures_iter(text) {
            let Some(v) = c.get(1) else { continue };
            if high_entropy(v.as_str()) && !overlaps(&hits, v.start(), v.end()) {
                hits.push(Hit {
                    kind: "generic_secret",
                    class: Class::Secret,
                    start: v.start(),
                    end: v.end(),
                });
            }
        }
        if text.contains('@') {
            for m in self.email.find_iter(text) {
                if !overlaps(&hits, m.start(), m.end()) {
                    hits.push(Hit {
                        kind: "email",
                        class: Class::Pii,
                        start: m.start(),
                        end: m.end(),
                    });
                }
            }
        }
        for m in self.card.find_iter(text) {
            let digits: Vec<u8> = m
                .as_str()
                .bytes()
                .filter(u8::is_ascii_digit)
                .map(|b| b - b'0')
                .collect();
            if (13..=19).contains(&digits.len())
                && luhn(&digits)
                && !overlaps(&hits, m.start(), m.end())
            {
                hits.push(Hit {
                    kind: "card_number",
                    class: Class::Pii,
                    start: m.start(),
                    end: m.end(),
                });
            }
        }
        for m in self.phone.find_iter(text) {
            let digits = m.as_str().bytes().filter(u8::is_ascii_digit).count();
            if (10..=15).contains(&digits) && !overlaps(&hits, m.start(), m.end()) {
                hits.push(Hit {
                    kind: "phone",
                    class: Class::Pii,
                    start: m.start(),
                    end: m.end(),
                });
            }
        }
        hits.sort_by_key(|h| h.start);
        hits
    }

    /// `text` with every match replaced by its redaction.
    pub fn redact_all(&self, text: &str) -> String {
        let hits = self.scan(text);
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for h in hits {
            out.push_str(&text[at..h.start]);
            out.push_str(&redact(&text[h.start..h.end]));
            at = h.end;
        }
        out.push_str(&text[at..]);
        out
    }
}

/// The Luhn checksum over decimal digits.
pub fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, &d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d);
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

/// Shannon entropy in bits per character.
pub fn entropy(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    let mut n = 0u32;
    for b in s.bytes() {
        counts[b as usize] += 1;
        n += 1;
    }
    if n == 0 {
        return 0.0;
    }
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / f64::from(n);
            -p * p.log2()
        })
        .sum()
}

/// A value that looks machine-generated: letters and digits mixed, long enough, and
/// high-entropy (so `password: changeme` or `token: approximately` are not flagged).
pub fn high_entropy(v: &str) -> bool {
    let letters = v.bytes().filter(u8::is_ascii_alphabetic).count();
    let digits = v.bytes().filter(u8::is_ascii_digit).count();
    v.len() >= 8 && letters > 0 && digits > 0 && entropy(v) >= 3.0
}

/// The first four characters of a value and a redaction mark; never the whole value.
pub fn redact(v: &str) -> String {
    let n = v.chars().count();
    let keep = if n > 8 { 4 } else { n / 3 };
    let head: String = v.chars().take(keep).collect();
    format!("{head}…[redacted]")
}
