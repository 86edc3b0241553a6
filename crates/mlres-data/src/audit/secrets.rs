//! PII and secrets: emails, Luhn-valid card numbers (in a card's grouping, with an issuer's
//! prefix), the validated kinds of [`super::pii`] (phone numbers, SSNs, IBANs, IP and street
//! addresses), tokens recognised by their prefix, private keys, JWTs, and high-entropy values
//! assigned to `key`, `token`, `secret` or `password`. Findings carry only a redacted excerpt.

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
    pii: super::pii::Patterns,
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
            pii: super::pii::Patterns::new(),
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
        // IBANs first: their digits in groups of four can look like a card number.
        let pii = self.pii.scan(text);
        for h in pii.iter().filter(|h| h.kind == "iban") {
            if !overlaps(&hits, h.start, h.end) {
                hits.push(Hit {
                    kind: h.kind,
                    class: Class::Pii,
                    start: h.start,
                    end: h.end,
                });
            }
        }
        for m in self.card.find_iter(text) {
            let digits: Vec<u8> = m
                .as_str()
                .bytes()
                .filter(u8::is_ascii_digit)
                .map(|b| b - b'0')
                .collect();
            // An ungrouped run among other long numbers is a table's id, unless a payment
            // word says otherwise.
            let bare = m.as_str().bytes().all(|b| b.is_ascii_digit());
            if bare
                && numeric_neighbours(text, m.start(), m.end())
                && !payment_word(text, m.start())
            {
                continue;
            }
            if card_shape(m.as_str())
                && issuer_prefix(&digits)
                && luhn(&digits)
                && super::pii::isolated(text, m.start(), m.end())
                && !digit_group_beside(text, m.start(), m.end())
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
        for h in pii {
            if !overlaps(&hits, h.start, h.end) {
                hits.push(Hit {
                    kind: h.kind,
                    class: Class::Pii,
                    start: h.start,
                    end: h.end,
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

/// A card number as cards print it: 13–19 digits in one run, or groups of 4-4-4-4 (with an
/// optional 1–3 digit tail), 4-6-5 or 4-6-4 with one kind of separator. A run of small
/// numbers (`12 34 56 78 …`) in a table is not a card.
pub fn card_shape(s: &str) -> bool {
    let seps: Vec<char> = s.chars().filter(|c| !c.is_ascii_digit()).collect();
    if seps.windows(2).any(|w| w[0] != w[1]) {
        return false;
    }
    let groups: Vec<usize> = s
        .split(|c: char| !c.is_ascii_digit())
        .map(str::len)
        .collect();
    match groups.as_slice() {
        [n] => (13..=19).contains(n),
        [4, 4, 4, 4] | [4, 6, 5] | [4, 6, 4] => true,
        [4, 4, 4, 4, t] => (1..=3).contains(t),
        _ => false,
    }
}

/// The number starts like a payment card: Visa 4, Mastercard 51–55 and 2221–2720, American
/// Express 34/37, Diners 30/36/38/39, JCB 35, Discover and UnionPay 6, Maestro 50/56–58.
pub fn issuer_prefix(digits: &[u8]) -> bool {
    let head = |n: usize| -> u32 { digits.iter().take(n).fold(0, |a, &d| a * 10 + u32::from(d)) };
    match digits.first() {
        Some(4 | 6) => true,
        Some(5) => matches!(head(2), 50..=58),
        Some(3) => matches!(head(2), 30 | 34..=39),
        Some(2) => (2221..=2720).contains(&head(4)),
        _ => false,
    }
}

/// Another group of digits one space or dash away (`DE89 3704 0044 0532 0130 00`): the match
/// is part of a longer number.
fn digit_group_beside(text: &str, start: usize, end: usize) -> bool {
    let b = text.as_bytes();
    let sep = |c: u8| c == b' ' || c == b'-';
    (start >= 2 && sep(b[start - 1]) && b[start - 2].is_ascii_digit())
        || (end + 1 < b.len() && sep(b[end]) && b[end + 1].is_ascii_digit())
}

/// Another run of six digits or more within 40 bytes of `start..end`.
fn numeric_neighbours(text: &str, start: usize, end: usize) -> bool {
    let long_run = |s: &[u8]| s.split(|b| !b.is_ascii_digit()).any(|run| run.len() >= 6);
    let b = text.as_bytes();
    long_run(&b[start.saturating_sub(40)..start]) || long_run(&b[end..(end + 40).min(b.len())])
}

/// A payment word in the 40 bytes before `at`.
fn payment_word(text: &str, at: usize) -> bool {
    let w = String::from_utf8_lossy(&text.as_bytes()[at.saturating_sub(40)..at]).to_lowercase();
    [
        "card",
        "visa",
        "mastercard",
        "amex",
        "credit",
        "debit",
        "payment",
        "cc",
    ]
    .iter()
    .any(|k| w.contains(k))
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
