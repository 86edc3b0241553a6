//! Names assembled in interpreter code. Denies code that builds the name of a credential
//! store, the mlres state, a hook or a setting out of pieces the path checks cannot see
//! whole: string literals joined by `+`, `.` (Perl), implicit concatenation, `os.path.join`
//! or pathlib's `/` (`'led'+'ger.key'`, `os.path.join('~', '.cache', 'hugg'+'ingface')`),
//! characters from numbers (`chr(116)`, `''.join(map(chr, [...]))`, `bytes([...])`,
//! `String.fromCharCode(...)`), and literals decoded in the code (base64, hex, rot13, reversed
//! with `[::-1]`). Each assembled or decoded name is checked like a literal path, and a
//! sensitive word that only appears across the joints of the pieces (or inside decoded text)
//! is refused by itself. Pure text processing: nothing is evaluated.

use crate::code::{check_literal_path, string_literal_spans};
use crate::paths::PathEnv;

/// Words that name credentials, the state, hooks or settings. Lower case.
const NEEDLES: &[&str] = &[
    "huggingface",
    "token",
    "ledger",
    "credential",
    "netrc",
    "id_rsa",
    "id_ed25519",
    "id_ecdsa",
    "approv",
    "settings.json",
    "settings.local",
    "hooks.json",
    "claude",
    "mlres",
    ".local/state",
    "hmac",
    ".aws",
    ".ssh",
    ".docker",
    ".kaggle",
    "gcloud",
    "environ",
    "disableallhooks",
    "bypasspermissions",
    "hosts.yml",
    ".git-cred",
    ".pypirc",
];

/// One piece of text in the code: a literal, a decoded literal or characters built from
/// numbers, with its position (in chars) in the code.
#[derive(Debug, Clone)]
struct Piece {
    text: String,
    start: usize,
    end: usize,
    /// Produced by decoding or from numbers rather than written as a literal.
    derived: bool,
}

const REASON: &str = "Name files literally: the guard reads a name put together at run time as \
     hiding what the code touches. mlres uses the credentials and its state itself; \
     `mlres exp submit`/`mlres loop run` spend, and settings and hooks are the user's";

/// Checks code for assembled or decoded names (see the module doc).
pub(crate) fn check(code: &str, pe: &PathEnv) -> Result<(), String> {
    if code.len() > 200_000 {
        return Ok(());
    }
    let chars: Vec<char> = code.chars().collect();
    let mut pieces: Vec<Piece> = string_literal_spans(&chars)
        .into_iter()
        .map(|(text, start, end)| Piece {
            text,
            start,
            end,
            derived: false,
        })
        .collect();
    pieces.extend(from_numbers(&chars));
    let decoded = decodings(code, &pieces);
    pieces.sort_by_key(|p| p.start);
    for d in &decoded {
        check_derived(&d.text, pe)?;
    }
    for p in pieces.iter().filter(|p| p.derived) {
        check_derived(&p.text, pe)?;
    }
    let join_in_code = code.contains("join");
    for group in groups(&chars, &pieces, join_in_code) {
        if group.len() < 2 {
            continue;
        }
        let plain: String = group.iter().map(|(p, _)| p.text.as_str()).collect();
        let mut pathy = String::new();
        for (i, (p, slash)) in group.iter().enumerate() {
            if i > 0 && *slash {
                pathy.push('/');
            }
            pathy.push_str(&p.text);
        }
        for candidate in [&pathy, &plain] {
            if candidate.contains('/') || candidate.starts_with('.') || candidate.starts_with('~') {
                check_literal_path(candidate, pe)
                    .map_err(|e| format!("{e} (the path is put together from pieces). {REASON}"))?;
            }
        }
        if let Some(n) = crossing_needle(&group) {
            return Err(format!(
                "inline code assembles `{n}` from pieces (`{}`), the name of a credential store, \
                 the mlres state, a hook or a setting. {REASON}",
                group
                    .iter()
                    .map(|(p, _)| p.text.as_str())
                    .collect::<Vec<_>>()
                    .join("` + `")
            ));
        }
    }
    Ok(())
}

/// A decoded literal or characters from numbers: checked whole, like a literal path, and
/// refused if a sensitive word is in it at all.
fn check_derived(text: &str, pe: &PathEnv) -> Result<(), String> {
    if text.is_empty() || text.len() > 4096 {
        return Ok(());
    }
    check_literal_path(text, pe).map_err(|e| format!("{e} (the text is decoded). {REASON}"))?;
    let lower = text.to_ascii_lowercase();
    if let Some(n) = NEEDLES.iter().find(|n| lower.contains(*n)) {
        return Err(format!(
            "inline code decodes or builds from numbers the text `{text}`, which names `{n}` (a \
             credential store, the mlres state, a hook or a setting). {REASON}"
        ));
    }
    Ok(())
}

/// Runs of pieces joined only by concatenation, path joins or list commas. Each member
/// carries whether a `/` stands between it and the previous one in a path join (a comma or a
/// `/` in the joint, as in `os.path.join('a', 'b')` or `Path('a') / 'b'`). Commas join pieces
/// only when the code calls some `join`.
fn groups<'p>(
    chars: &[char],
    pieces: &'p [Piece],
    join_in_code: bool,
) -> Vec<Vec<(&'p Piece, bool)>> {
    let mut out: Vec<Vec<(&Piece, bool)>> = Vec::new();
    let mut prev: Option<&Piece> = None;
    for p in pieces {
        let joint = prev.and_then(|q| {
            if p.start < q.end || p.start - q.end > 40 {
                return None;
            }
            let between: String = chars[q.end..p.start].iter().collect();
            joint_kind(&between, join_in_code)
        });
        match joint {
            Some(slash) => out.last_mut().expect("a group is open").push((p, slash)),
            None => out.push(vec![(p, false)]),
        }
        prev = Some(p);
    }
    out
}

/// Whether the text between two pieces only joins them: `Some(true)` for a path join (comma
/// or slash), `Some(false)` for plain concatenation (`+`, `.`, nothing), `None` otherwise.
fn joint_kind(between: &str, join_in_code: bool) -> Option<bool> {
    let mut t: String = between.chars().filter(|c| !c.is_whitespace()).collect();
    // String prefixes of the next literal (`b'…'`, `r"…"`, `f'…'`) and the `join` call.
    for w in ["os.path.join", "path.join", "join"] {
        t = t.replace(w, "");
    }
    let t = t.trim_end_matches(['r', 'b', 'f', 'u', 'R', 'B', 'F', 'U']);
    if !t
        .chars()
        .all(|c| matches!(c, '+' | ',' | '(' | ')' | '[' | ']' | '/' | '.'))
    {
        return None;
    }
    let comma = t.contains(',');
    if comma && !join_in_code {
        return None;
    }
    Some(comma || t.contains('/'))
}

/// A sensitive word that appears in the concatenation of a group but in none of its pieces
/// whole: it was split on purpose.
fn crossing_needle(group: &[(&Piece, bool)]) -> Option<&'static str> {
    let mut plain = String::new();
    let mut bounds = Vec::new();
    for (p, _) in group {
        plain.push_str(&p.text.to_ascii_lowercase());
        bounds.push(plain.len());
    }
    for n in NEEDLES {
        let mut from = 0;
        while let Some(i) = plain[from..].find(n) {
            let (s, e) = (from + i, from + i + n.len());
            if bounds.iter().any(|&b| b > s && b < e) {
                return Some(n);
            }
            from = s + 1;
            if from >= plain.len() {
                break;
            }
        }
    }
    None
}

/// Characters built from numbers: `chr(116)`, and lists or argument lists of character codes
/// next to `chr`, `bytes(`, `bytearray(`, `fromCharCode` or `pack(`.
fn from_numbers(chars: &[char]) -> Vec<Piece> {
    let mut out = Vec::new();
    let text: String = chars.iter().collect();
    // chr(N)
    let mut i = 0;
    while i + 4 < chars.len() {
        if chars[i..].starts_with(&['c', 'h', 'r', '('])
            && (i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_'))
        {
            let mut j = i + 4;
            let mut num = String::new();
            while j < chars.len() && (chars[j].is_ascii_alphanumeric()) {
                num.push(chars[j]);
                j += 1;
            }
            if j < chars.len()
                && chars[j] == ')'
                && let Some(c) = parse_int(&num).and_then(char::from_u32)
            {
                out.push(Piece {
                    text: c.to_string(),
                    start: i,
                    end: j + 1,
                    derived: false,
                });
                i = j + 1;
                continue;
            }
        }
        i += 1;
    }
    // Lists of numbers near a character-building call.
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '[' || chars[i] == '(' {
            let close = if chars[i] == '[' { ']' } else { ')' };
            let mut j = i + 1;
            let mut nums = Vec::new();
            let mut cur = String::new();
            let mut ok = true;
            while j < chars.len() && chars[j] != close {
                let c = chars[j];
                if c.is_ascii_alphanumeric() {
                    cur.push(c);
                } else if c == ',' || c.is_whitespace() {
                    if !cur.is_empty() {
                        match parse_int(&cur) {
                            Some(n) => nums.push(n),
                            None => {
                                ok = false;
                                break;
                            }
                        }
                        cur.clear();
                    }
                } else {
                    ok = false;
                    break;
                }
                j += 1;
            }
            if ok && j < chars.len() && !cur.is_empty() {
                match parse_int(&cur) {
                    Some(n) => nums.push(n),
                    None => ok = false,
                }
            }
            if ok && j < chars.len() && nums.len() >= 3 {
                let before: String = chars[i.saturating_sub(40)..i].iter().collect();
                let after: String = chars[j..(j + 20).min(chars.len())].iter().collect();
                let builds = ["chr", "bytes(", "bytearray(", "fromCharCode", "pack("]
                    .iter()
                    .any(|k| before.contains(k) || after.contains(k))
                    || text.contains("map(chr");
                if builds {
                    let s: Option<String> = nums.iter().map(|&n| char::from_u32(n)).collect();
                    if let Some(s) = s.filter(|s| s.chars().all(|c| !c.is_control())) {
                        out.push(Piece {
                            text: s,
                            start: i,
                            end: j + 1,
                            derived: true,
                        });
                    }
                }
                i = j + 1;
                continue;
            }
        }
        i += 1;
    }
    out
}

fn parse_int(s: &str) -> Option<u32> {
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return u32::from_str_radix(h, 16).ok();
    }
    if let Some(o) = s.strip_prefix("0o") {
        return u32::from_str_radix(o, 8).ok();
    }
    s.parse().ok().filter(|n| *n < 0x11_0000)
}

/// The literals decoded the ways the code itself decodes (base64, hex, rot13, reversal).
fn decodings(code: &str, pieces: &[Piece]) -> Vec<Piece> {
    let b64 = [
        "b64decode",
        "base64",
        "atob(",
        "decodebytes",
        "a85decode",
        "b32decode",
    ]
    .iter()
    .any(|d| code.contains(d));
    let hex = [
        "fromhex",
        "unhexlify",
        "'hex'",
        "\"hex\"",
        "hex2bin",
        "pack('H",
        "pack(\"H",
    ]
    .iter()
    .any(|d| code.contains(d));
    let rot = code.contains("rot13") || code.contains("rot_13") || code.contains("str_rot13");
    let rev = code.contains("[::-1]") || code.contains("reverse") || code.contains("strrev");
    let mut out = Vec::new();
    for p in pieces.iter().filter(|p| !p.derived && p.text.len() >= 4) {
        let mut add = |text: Option<String>| {
            if let Some(t) = text.filter(|t| printable(t)) {
                out.push(Piece {
                    text: t,
                    start: p.start,
                    end: p.end,
                    derived: true,
                });
            }
        };
        if b64 {
            add(base64_decode(&p.text));
        }
        if hex {
            add(hex_decode(&p.text));
        }
        if rot {
            add(Some(rot13(&p.text)));
        }
        if rev {
            add(Some(p.text.chars().rev().collect()));
        }
    }
    out
}

fn printable(t: &str) -> bool {
    t.len() >= 3 && t.chars().all(|c| (' '..='~').contains(&c))
}

fn rot13(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'a'..='z' => (((c as u8 - b'a') + 13) % 26 + b'a') as char,
            'A'..='Z' => (((c as u8 - b'A') + 13) % 26 + b'A') as char,
            _ => c,
        })
        .collect()
}

fn hex_decode(s: &str) -> Option<String> {
    let t: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if t.len() < 8 || !t.len().is_multiple_of(2) || !t.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..t.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&t[i..i + 2], 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// Standard and URL-safe base64, padding optional.
fn base64_decode(s: &str) -> Option<String> {
    let t = s.trim().trim_end_matches('=');
    if t.len() < 4 {
        return None;
    }
    let val = |c: char| -> Option<u32> {
        Some(match c {
            'A'..='Z' => c as u32 - 'A' as u32,
            'a'..='z' => c as u32 - 'a' as u32 + 26,
            '0'..='9' => c as u32 - '0' as u32 + 52,
            '+' | '-' => 62,
            '/' | '_' => 63,
            _ => return None,
        })
    };
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in t.chars() {
        acc = (acc << 6) | val(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoders() {
        assert_eq!(base64_decode("aGVsbG8=").as_deref(), Some("hello"));
        assert_eq!(base64_decode("aGVsbG8").as_deref(), Some("hello"));
        assert_eq!(hex_decode("68656c6c6f").as_deref(), Some("hello"));
        assert_eq!(rot13("uryyb"), "hello");
    }

    #[test]
    fn joints() {
        assert_eq!(joint_kind(" + ", false), Some(false));
        assert_eq!(joint_kind(" ", false), Some(false));
        assert_eq!(joint_kind(", ", true), Some(true));
        assert_eq!(joint_kind(", ", false), None);
        assert_eq!(joint_kind(" / ", false), Some(true));
        assert_eq!(joint_kind("), b", true), Some(true));
        assert_eq!(joint_kind(" if x else ", true), None);
    }
}
