//! Prompt-injection strings: instruction overrides, role hijacks, system-prompt reveal,
//! chat-template role markers, markdown-image exfiltration and base64 blobs that decode to
//! any of these. Text is normalised first (lowercase, common homoglyphs and full-width
//! forms folded, zero-width characters stripped, whitespace collapsed).

use regex::Regex;

/// Compiled patterns.
#[derive(Debug)]
pub struct Detector {
    patterns: Vec<(&'static str, Regex)>,
    markers: Vec<&'static str>,
    exfil: Regex,
    base64: Regex,
}

fn re(s: &str) -> Regex {
    Regex::new(s).unwrap_or_else(|e| panic!("bad built-in pattern {s}: {e}"))
}

impl Default for Detector {
    fn default() -> Self {
        Self::new()
    }
}

/// One detected string: its kind and the byte range in the normalised text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub kind: &'static str,
    /// The matched normalised text (short; callers redact secrets before showing it).
    pub matched: String,
}

impl Detector {
    pub fn new() -> Self {
        let patterns = vec![
            (
                "instruction_override",
                re(
                    r"\b(?:ignore|disregard|forget|override|bypass|skip|drop)\s+(?:(?:all|any|every|the|your|my|of|these|those|previous|prior|above|earlier|preceding|initial|original|system|safety)\s+){0,4}(?:previous|prior|above|earlier|preceding|initial|original|system|safety|developer)\s+(?:instructions?|prompts?|rules|directions|guidelines|messages|context|guardrails|constraints)\b",
                ),
            ),
            (
                "role_hijack",
                re(
                    r"\byou are (?:now|no longer)\s+(?:an?\s+|in\s+|my\s+)?(?:dan\b|jailbroken|unrestricted|unfiltered|uncensored|evil|free\b|developer mode|god mode|bound|restricted|limited|an? ai (?:with|without)|without (?:any )?(?:rules|restrictions|limits))",
                ),
            ),
            (
                "new_instructions",
                re(r"\b(?:new|updated|real|actual|true)\s+(?:system\s+)?instructions?\s*:"),
            ),
            (
                "system_prompt",
                re(
                    r"\b(?:reveal|print|show|repeat|output|leak|display|tell me|dump|give me|recite)\s+(?:me\s+)?(?:your|the|all|its)\s+(?:(?:full|entire|hidden|secret|original|initial)\s+)?(?:system\s+prompt|system\s+message|hidden\s+instructions|initial\s+instructions|instructions\s+above|developer\s+message)|\bsystem\s+prompt\s*(?:override|:)|\b(?:override|replace|ignore|disable)\s+(?:the|your)\s+system\s+prompt",
                ),
            ),
        ];
        Detector {
            patterns,
            markers: vec![
                "<|im_start|>",
                "<|im_end|>",
                "[inst]",
                "[/inst]",
                "<<sys>>",
                "### system:",
                "<|system|>",
                "<|start_header_id|>",
                "<|eot_id|>",
                "<|endoftext|>",
            ],
            exfil: re(r"!\[[^\]]*\]\(\s*https?://[^)\s]+\?[^)\s]*=[^)\s]*\)"),
            base64: re(r"[A-Za-z0-9+/]{24,}={0,2}"),
        }
    }

    /// Every kind of injection found in `text` (at most one hit per kind).
    pub fn scan(&self, text: &str) -> Vec<Hit> {
        let norm = normalise(text);
        let mut out = self.scan_norm(&norm);
        if let Some(m) = self.exfil.find(text) {
            push(&mut out, "markdown_exfiltration", m.as_str());
        }
        for m in self.base64.find_iter(text).take(16) {
            if let Some(decoded) = decode_base64(m.as_str())
                && let Ok(s) = String::from_utf8(decoded)
            {
                let inner = self.scan_norm(&normalise(&s));
                if !inner.is_empty() {
                    push(&mut out, "base64_encoded", &inner[0].matched);
                    break;
                }
            }
        }
        out
    }

    fn scan_norm(&self, norm: &str) -> Vec<Hit> {
        let mut out = Vec::new();
        for (kind, r) in &self.patterns {
            if let Some(m) = r.find(norm) {
                push(&mut out, kind, m.as_str());
            }
        }
        for mk in &self.markers {
            if norm.contains(mk) {
                push(&mut out, "role_marker", mk);
                break;
            }
        }
        out
    }
}

fn push(out: &mut Vec<Hit>, kind: &'static str, m: &str) {
    if out.iter().all(|h| h.kind != kind) {
        out.push(Hit {
            kind,
            matched: m.chars().take(80).collect(),
        });
    }
}

/// Lowercase, fold full-width forms and common Cyrillic/Greek homoglyphs to ASCII, strip
/// zero-width and soft-hyphen characters, collapse whitespace.
pub fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    for c in text.chars() {
        let c = fold(c);
        if matches!(
            c,
            '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{00AD}'
        ) {
            continue;
        }
        if c.is_whitespace() {
            if !space {
                out.push(' ');
            }
            space = true;
            continue;
        }
        space = false;
        for l in c.to_lowercase() {
            out.push(l);
        }
    }
    out
}

fn fold(c: char) -> char {
    let u = c as u32;
    if (0xFF01..=0xFF5E).contains(&u) {
        return char::from_u32(u - 0xFEE0).unwrap_or(c);
    }
    match c {
        '\u{3000}' => ' ',
        'а' | 'А' | 'α' | 'Α' => 'a',
        'в' | 'В' | 'β' | 'Β' => 'b',
        'с' | 'С' | 'ϲ' => 'c',
        'е' | 'Е' | 'ε' | 'Ε' => 'e',
        'н' | 'Н' | 'η' | 'Η' => 'h',
        'і' | 'І' | 'ι' | 'Ι' | 'ı' => 'i',
        'ј' | 'Ј' => 'j',
        'к' | 'К' | 'κ' | 'Κ' => 'k',
        'м' | 'М' | 'Μ' => 'm',
        'п' | 'ո' => 'n',
        'о' | 'О' | 'ο' | 'Ο' => 'o',
        'р' | 'Р' | 'ρ' | 'Ρ' => 'p',
        'ѕ' | 'Ѕ' => 's',
        'т' | 'Т' | 'τ' | 'Τ' => 't',
        'у' | 'У' | 'υ' => 'y',
        'х' | 'Х' | 'χ' | 'Χ' => 'x',
        'ν' => 'v',
        'ԁ' => 'd',
        'ɡ' => 'g',
        'ⅼ' | 'ӏ' => 'l',
        _ => c,
    }
}

/// Standard or URL-safe base64 (padding optional); `None` when not valid.
pub fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for b in s.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}
