//! Secret detection and redaction for tool output (PostToolUse) and request arguments.
//! Hand-written scanners, no regex: each pattern is a prefix plus a run of allowed bytes.

/// One secret pattern: a literal prefix, the allowed alphabet after it and a minimum run.
struct Pattern {
    kind: &'static str,
    prefix: &'static str,
    min_run: usize,
    alphabet: fn(u8) -> bool,
    /// The byte before the prefix must not be alphanumeric.
    boundary: bool,
}

fn alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}
fn alnum_us(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}
fn alnum_dash_us(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}
fn upper_digit(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit()
}

const PATTERNS: &[Pattern] = &[
    Pattern {
        kind: "hf-token",
        prefix: "hf_",
        min_run: 30,
        alphabet: alnum,
        boundary: true,
    },
    Pattern {
        kind: "anthropic-key",
        prefix: "sk-ant-",
        min_run: 20,
        alphabet: alnum_dash_us,
        boundary: true,
    },
    Pattern {
        kind: "openai-key",
        prefix: "sk-proj-",
        min_run: 20,
        alphabet: alnum_dash_us,
        boundary: true,
    },
    Pattern {
        kind: "github-token",
        prefix: "ghp_",
        min_run: 30,
        alphabet: alnum,
        boundary: true,
    },
    Pattern {
        kind: "github-token",
        prefix: "gho_",
        min_run: 30,
        alphabet: alnum,
        boundary: true,
    },
    Pattern {
        kind: "github-token",
        prefix: "ghu_",
        min_run: 30,
        alphabet: alnum,
        boundary: true,
    },
    Pattern {
        kind: "github-token",
        prefix: "ghs_",
        min_run: 30,
        alphabet: alnum,
        boundary: true,
    },
    Pattern {
        kind: "github-token",
        prefix: "ghr_",
        min_run: 30,
        alphabet: alnum,
        boundary: true,
    },
    Pattern {
        kind: "github-pat",
        prefix: "github_pat_",
        min_run: 20,
        alphabet: alnum_us,
        boundary: true,
    },
    Pattern {
        kind: "aws-access-key",
        prefix: "AKIA",
        min_run: 16,
        alphabet: upper_digit,
        boundary: true,
    },
    Pattern {
        kind: "aws-access-key",
        prefix: "ASIA",
        min_run: 16,
        alphabet: upper_digit,
        boundary: true,
    },
    Pattern {
        kind: "slack-token",
        prefix: "xoxb-",
        min_run: 20,
        alphabet: alnum_dash_us,
        boundary: true,
    },
    Pattern {
        kind: "slack-token",
        prefix: "xoxp-",
        min_run: 20,
        alphabet: alnum_dash_us,
        boundary: true,
    },
];

/// A found secret: byte range and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hit {
    pub start: usize,
    pub end: usize,
    pub kind: &'static str,
}

/// All secrets in `text`, non-overlapping, in order.
pub(crate) fn find_secrets(text: &str) -> Vec<Hit> {
    let b = text.as_bytes();
    let mut hits: Vec<Hit> = Vec::new();
    for p in PATTERNS {
        let mut from = 0;
        while let Some(pos) = text[from..].find(p.prefix) {
            let start = from + pos;
            let mut end = start + p.prefix.len();
            from = end;
            if p.boundary && start > 0 && b[start - 1].is_ascii_alphanumeric() {
                continue;
            }
            while end < b.len() && (p.alphabet)(b[end]) {
                end += 1;
            }
            if end - start - p.prefix.len() >= p.min_run {
                hits.push(Hit {
                    start,
                    end,
                    kind: p.kind,
                });
                from = end;
            }
        }
    }
    // Private key blocks.
    let mut from = 0;
    while let Some(pos) = text[from..].find("-----BEGIN ") {
        let start = from + pos;
        let header_end = text[start..]
            .find('\n')
            .map(|n| start + n)
            .unwrap_or(text.len());
        let header = &text[start..header_end];
        from = start + 11;
        if !header.contains("PRIVATE KEY") {
            continue;
        }
        let end = text[start..]
            .find("-----END ")
            .and_then(|e| {
                text[start + e..]
                    .find("KEY-----")
                    .map(|k| start + e + k + 8)
            })
            .unwrap_or(text.len());
        hits.push(Hit {
            start,
            end,
            kind: "private-key",
        });
        from = end;
    }
    hits.sort_by_key(|h| h.start);
    let mut out: Vec<Hit> = Vec::new();
    for h in hits {
        if out.last().is_some_and(|l| h.start < l.end) {
            continue;
        }
        out.push(h);
    }
    out
}

/// Kind of the first secret in `text`, if any.
pub(crate) fn first_secret(text: &str) -> Option<&'static str> {
    find_secrets(text).first().map(|h| h.kind)
}

/// Replaces every secret with `[REDACTED:<kind>]`; returns the text and the count.
pub(crate) fn redact_str(text: &str) -> (String, usize) {
    let hits = find_secrets(text);
    if hits.is_empty() {
        return (text.to_string(), 0);
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for h in &hits {
        out.push_str(&text[last..h.start]);
        out.push_str("[REDACTED:");
        out.push_str(h.kind);
        out.push(']');
        last = h.end;
    }
    out.push_str(&text[last..]);
    (out, hits.len())
}

/// Redacts every string inside a JSON value; returns the count and the kinds found.
pub(crate) fn redact_value(v: &mut serde_json::Value, kinds: &mut Vec<&'static str>) -> usize {
    match v {
        serde_json::Value::String(s) => {
            let hits = find_secrets(s);
            if hits.is_empty() {
                return 0;
            }
            for h in &hits {
                if !kinds.contains(&h.kind) {
                    kinds.push(h.kind);
                }
            }
            let (r, n) = redact_str(s);
            *s = r;
            n
        }
        serde_json::Value::Array(a) => a.iter_mut().map(|x| redact_value(x, kinds)).sum(),
        serde_json::Value::Object(o) => o.values_mut().map(|x| redact_value(x, kinds)).sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_redacts_hf_token() {
        let t = "token=hf_abcdefghijklmnopqrstuvwxyzABCDEFGH done";
        let (r, n) = redact_str(t);
        assert_eq!(n, 1);
        assert_eq!(r, "token=[REDACTED:hf-token] done");
    }

    #[test]
    fn ignores_identifiers() {
        assert!(find_secrets("from huggingface_hub import hf_hub_download").is_empty());
        assert!(find_secrets("AKIAshort").is_empty());
    }

    #[test]
    fn private_key_block() {
        let t = "x\n-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\ny";
        let (r, n) = redact_str(t);
        assert_eq!(n, 1);
        assert_eq!(r, "x\n[REDACTED:private-key]\ny");
    }
}
