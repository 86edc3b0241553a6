//! Reading metrics from job output lines.
//!
//! Four shapes are understood: `key=value` pairs (`eval_accuracy=0.81 step=200`), JSON
//! object lines (`{"eval_loss": 1.2}`), the Python dict lines printed by Transformers/TRL
//! (`{'eval_loss': 1.23, 'epoch': 1.0}`; Transformers 5 quotes the numbers:
//! `{'eval_loss': '5.361'}`), possibly after a prefix such as a progress bar, and the
//! `  key = value` lines of `Trainer.log_metrics`. In objects, a string that is exactly a
//! number counts as that number; other strings, booleans, `None` and nested values are
//! skipped. Job output is untrusted: nothing here can panic, and work per line is bounded.

use std::collections::BTreeMap;

use crate::program::is_metric_key;

const MAX_OBJECT_ATTEMPTS: usize = 16;
const MAX_DEPTH: usize = 32;
/// Distinct keys a [`MetricScan`] keeps; later new keys are ignored.
pub const MAX_METRIC_KEYS: usize = 10_000;

enum Val {
    Num(f64),
    Other,
}

fn parse_number(token: &str) -> Option<f64> {
    if token.is_empty() || token.len() > 64 {
        return None;
    }
    let lower = token.to_ascii_lowercase();
    // Rust also reads `inf`/`infinity`/`nan`; `0x…`, `_` are refused by it.
    lower.parse::<f64>().ok()
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ws(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// A quoted string (`'…'` or `"…"`, backslash escapes skipped), raw content.
    fn string(&mut self) -> Option<String> {
        let q = self.peek()?;
        if q != b'"' && q != b'\'' {
            return None;
        }
        self.i += 1;
        let start = self.i;
        while let Some(c) = self.peek() {
            if c == b'\\' {
                self.i += 2;
                continue;
            }
            if c == q {
                let raw = self.s.get(start..self.i)?;
                self.i += 1;
                return std::str::from_utf8(raw).ok().map(str::to_string);
            }
            self.i += 1;
        }
        None
    }

    fn token(&mut self) -> &str {
        let start = self.i;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || b"_.+-".contains(&c))
        {
            self.i += 1;
        }
        self.s
            .get(start..self.i)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("")
    }

    fn value(&mut self, depth: usize) -> Option<Val> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.ws();
        match self.peek()? {
            b'{' => {
                self.object(depth + 1)?;
                Some(Val::Other)
            }
            b'[' | b'(' => {
                let close = if self.peek() == Some(b'[') {
                    b']'
                } else {
                    b')'
                };
                self.i += 1;
                self.ws();
                if self.eat(close) {
                    return Some(Val::Other);
                }
                loop {
                    self.value(depth + 1)?;
                    self.ws();
                    if self.eat(b',') {
                        self.ws();
                        if self.eat(close) {
                            return Some(Val::Other);
                        }
                        continue;
                    }
                    return self.eat(close).then_some(Val::Other);
                }
            }
            b'"' | b'\'' => {
                // Transformers 5 logs numbers as strings (`{'eval_loss': '5.361'}`): a
                // string that is exactly a number counts as that number; any other
                // string is not a metric.
                let s = self.string()?;
                Some(parse_number(&s).map_or(Val::Other, Val::Num))
            }
            _ => {
                let tok = self.token().to_string();
                if tok.is_empty() {
                    return None;
                }
                if self.peek() == Some(b'(') {
                    // Wrapped numbers such as np.float64(0.5) or tensor(0.5).
                    self.i += 1;
                    let inner = self.value(depth + 1)?;
                    self.ws();
                    if !self.eat(b')') {
                        return None;
                    }
                    return Some(inner);
                }
                match tok.as_str() {
                    "True" | "False" | "None" | "true" | "false" | "null" => Some(Val::Other),
                    _ => parse_number(&tok).map(Val::Num),
                }
            }
        }
    }

    /// A `{…}` object; numeric fields with metric-like keys are returned.
    fn object(&mut self, depth: usize) -> Option<Vec<(String, f64)>> {
        if depth > MAX_DEPTH || !self.eat(b'{') {
            return None;
        }
        let mut out = Vec::new();
        self.ws();
        if self.eat(b'}') {
            return Some(out);
        }
        loop {
            self.ws();
            let key = self.string()?;
            self.ws();
            if !self.eat(b':') {
                return None;
            }
            if let Val::Num(v) = self.value(depth)?
                && is_metric_key(&key)
            {
                out.push((key, v));
            }
            self.ws();
            if self.eat(b',') {
                self.ws();
                if self.eat(b'}') {
                    return Some(out);
                }
                continue;
            }
            return self.eat(b'}').then_some(out);
        }
    }
}

fn key_values(text: &str, out: &mut Vec<(String, f64)>) {
    for token in text.split(|c: char| c.is_whitespace() || c == ',') {
        let token = token.trim_matches(|c: char| "[](){}\"';|".contains(c));
        let Some((key, value)) = token.split_once('=') else {
            continue;
        };
        if !is_metric_key(key) {
            continue;
        }
        if let Some(v) = parse_number(value) {
            out.push((key.to_string(), v));
        }
    }
}

/// A line that is exactly `key = value` with blanks around the `=`: how
/// `Trainer.log_metrics` (and so the Transformers example scripts) print final metrics,
/// e.g. `  eval_loss               =     3.3979`. Its non-numbers (`0:00:04.79`, `0GF`)
/// are not metrics.
fn aligned_pair(line: &str) -> Option<(String, f64)> {
    let mut words = line.split_whitespace();
    let (key, eq, value) = (words.next()?, words.next()?, words.next()?);
    if eq != "=" || words.next().is_some() || !is_metric_key(key) {
        return None;
    }
    Some((key.to_string(), parse_number(value)?))
}

/// Extracts `(key, value)` metric pairs from one line of job output, in order of
/// appearance. `nan`/`inf` are kept as NaN/infinity (they are evidence of divergence),
/// whether written bare or as a string (`'nan'`). Never panics.
pub fn parse_metric_line(line: &str) -> Vec<(String, f64)> {
    if let Some(pair) = aligned_pair(line) {
        return vec![pair];
    }
    let bytes = line.as_bytes();
    let mut out = Vec::new();
    let mut plain_from = 0usize;
    let mut search_from = 0usize;
    let mut attempts = 0usize;
    while attempts < MAX_OBJECT_ATTEMPTS {
        let Some(rel) = line.get(search_from..).and_then(|r| r.find('{')) else {
            break;
        };
        attempts += 1;
        let start = search_from + rel;
        let mut cur = Cursor { s: bytes, i: start };
        match cur.object(0) {
            Some(fields) => {
                if let Some(text) = line.get(plain_from..start) {
                    key_values(text, &mut out);
                }
                out.extend(fields);
                plain_from = cur.i;
                search_from = cur.i;
            }
            None => search_from = start + 1,
        }
    }
    if let Some(text) = line.get(plain_from..) {
        key_values(text, &mut out);
    }
    out
}

/// Accumulates metrics over a stream of lines: the last value of each key and the
/// number of lines that carried at least one metric.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricScan {
    last: BTreeMap<String, f64>,
    metric_lines: u64,
}

impl MetricScan {
    /// An empty scan.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads one line (use [`parse_metric_line`] rules).
    pub fn push_line(&mut self, line: &str) {
        let pairs = parse_metric_line(line);
        if pairs.is_empty() {
            return;
        }
        self.metric_lines += 1;
        for (k, v) in pairs {
            if self.last.len() < MAX_METRIC_KEYS || self.last.contains_key(&k) {
                self.last.insert(k, v);
            }
        }
    }

    /// The last value seen for `key`.
    pub fn last(&self, key: &str) -> Option<f64> {
        self.last.get(key).copied()
    }

    /// Last value of every key.
    pub fn all(&self) -> BTreeMap<String, f64> {
        self.last.clone()
    }

    /// Number of lines that carried at least one metric.
    pub fn metric_lines(&self) -> u64 {
        self.metric_lines
    }
}

/// The point of a learning curve one line carries: `(step, value)` when the line reports both
/// `step_key` and `metric` (e.g. `step=3 val_acc=0.71`), the last of each if repeated.
pub fn curve_point(line: &str, metric: &str, step_key: &str) -> Option<(f64, f64)> {
    let pairs = parse_metric_line(line);
    let step = pairs.iter().rev().find(|(k, _)| k == step_key)?.1;
    let value = pairs.iter().rev().find(|(k, _)| k == metric)?.1;
    step.is_finite().then_some((step, value))
}
