//! Personal data beyond e-mail addresses: phone numbers (North American and international,
//! with extensions), US Social Security numbers, IBANs, IPv4 and IPv6 addresses and street
//! addresses. Each kind is a candidate pattern followed by a validator, so code, hex dumps,
//! UUIDs, version strings, timestamps and numeric tables stay quiet:
//!
//! - phone numbers: the country calling code must be an assigned ITU-T E.164 code and the
//!   whole number 8–15 digits; North American numbers follow the NANP rules (area code and
//!   exchange start with 2–9, no N11 area code) and, written with spaces only, need a phone
//!   word nearby;
//! - SSN: the SSA's rules (area not 000, 666 or 900–999; group not 00; serial not 0000; the
//!   advertising numbers excluded); unformatted or space-separated ones need an SSN word nearby;
//! - IBAN: the country's registered length (ISO 13616 registry) and the ISO 7064 mod-97
//!   check;
//! - IP addresses: parsed by the standard library; loopback, unspecified, broadcast,
//!   multicast, netmask-like and documentation addresses are not personal and are skipped, as
//!   are dotted numbers that look like versions (three single-digit parts, or a version word
//!   before them);
//! - street addresses: a house number, capitalised words and a street suffix (common suffixes
//!   alone; rarer ones only with a unit, a ZIP code or an address word), or a German-style
//!   `…straße 12`.
//!
//! Every numeric kind must also stand alone: not glued to letters, digits or dotted, dashed
//! or slashed numbers around it.

use regex::Regex;

/// A PII match: its kind and byte range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PiiHit {
    pub kind: &'static str,
    pub start: usize,
    pub end: usize,
}

/// Compiled candidate patterns.
#[derive(Debug)]
pub struct Patterns {
    nanp: Regex,
    intl: Regex,
    ssn: Regex,
    iban: Regex,
    ipv4: Regex,
    ipv6: Regex,
    street: Regex,
    strasse: Regex,
    ext: Regex,
}

fn re(s: &str) -> Regex {
    Regex::new(s).unwrap_or_else(|e| panic!("bad built-in pattern {s}: {e}"))
}

/// Street suffixes common enough in addresses and rare enough after a number and capitalised
/// words in prose to be accepted alone.
#[rustfmt::skip]
const STRONG_SUFFIXES: &[&str] = &[
    "Street", "St", "Avenue", "Ave", "Road", "Rd", "Boulevard", "Blvd", "Lane", "Ln", "Drive",
    "Dr", "Court", "Ct", "Place", "Pl", "Terrace", "Ter", "Way", "Parkway", "Pkwy", "Highway",
    "Hwy", "Circle", "Cir", "Square", "Sq", "Alley", "Plaza", "Crescent", "Expressway",
    "Freeway", "Turnpike", "Stravenue",
];

/// Other USPS street suffixes: accepted only with a unit, a ZIP code or an address word.
#[rustfmt::skip]
const WEAK_SUFFIXES: &[&str] = &[
    "Branch", "Bridge", "Brook", "Brooks", "Burg", "Burgs", "Bypass", "Camp", "Canyon", "Cape",
    "Causeway", "Center", "Centers", "Cliff", "Cliffs", "Club", "Common", "Commons", "Corner",
    "Corners", "Course", "Courts", "Cove", "Coves", "Creek", "Crest", "Crossing", "Crossroad",
    "Curve", "Dale", "Dam", "Divide", "Drives", "Estate", "Estates", "Extension", "Extensions",
    "Falls", "Ferry", "Field", "Fields", "Flat", "Flats", "Ford", "Fords", "Forest", "Forge",
    "Forges", "Fork", "Forks", "Fort", "Garden", "Gardens", "Gateway", "Glen", "Glens", "Green",
    "Greens", "Grove", "Groves", "Harbor", "Harbors", "Haven", "Heights", "Hill", "Hills",
    "Hollow", "Inlet", "Island", "Islands", "Isle", "Junction", "Junctions", "Key", "Keys",
    "Knoll", "Knolls", "Lake", "Lakes", "Land", "Landing", "Light", "Lights", "Loaf", "Lock",
    "Locks", "Lodge", "Loop", "Mall", "Manor", "Manors", "Meadow", "Meadows", "Mews", "Mill",
    "Mills", "Mission", "Motorway", "Mount", "Mountain", "Mountains", "Neck", "Orchard", "Oval",
    "Overpass", "Park", "Parks", "Parkways", "Pass", "Passage", "Path", "Pike", "Pine", "Pines",
    "Plain", "Plains", "Point", "Points", "Port", "Ports", "Prairie", "Radial", "Ramp", "Ranch",
    "Rapid", "Rapids", "Rest", "Ridge", "Ridges", "River", "Roads", "Route", "Row", "Rue",
    "Run", "Shoal", "Shoals", "Shore", "Shores", "Skyway", "Spring", "Springs", "Spur", "Spurs",
    "Squares", "Station", "Stream", "Streets", "Summit", "Terraces", "Throughway", "Trace",
    "Track", "Trafficway", "Trail", "Trailer", "Tunnel", "Underpass", "Union", "Unions",
    "Valley", "Valleys", "Via", "Viaduct", "View", "Views", "Village", "Villages", "Ville",
    "Vista", "Walk", "Walks", "Wall", "Ways", "Well", "Wells",
];

impl Default for Patterns {
    fn default() -> Self {
        Self::new()
    }
}

impl Patterns {
    pub fn new() -> Self {
        let suffixes: Vec<&str> = STRONG_SUFFIXES
            .iter()
            .chain(WEAK_SUFFIXES)
            .copied()
            .collect();
        Patterns {
            nanp: re(
                r"(?:\+1[ .\-]?|\b1[ .\-])?(?:\((\d{3})\)[ .\-]?|\b(\d{3})([ .\-]))(\d{3})[ .\-](\d{4})\b",
            ),
            intl: re(r"(?:\+|\b00)\d{1,4}(?:[ .\-]?(?:\(0\)[ .\-]?)?(?:\(\d{1,5}\)|\d{1,6})){1,6}"),
            ssn: re(r"\b(\d{3})([ \-]?)(\d{2})([ \-]?)(\d{4})\b"),
            iban: re(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){10,32}\b"),
            ipv4: re(r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b"),
            ipv6: re(r"(?i)[0-9a-f:]*:[0-9a-f]*:[0-9a-f:]*(?:\.\d{1,3}){0,3}"),
            street: re(&format!(
                r"\b\d{{1,5}}[A-Za-z]?(?: [NSEW]\.?| North| South| East| West)?(?: [A-Z][a-z]+\.?| [A-Z]\.| \d{{1,3}}(?:st|nd|rd|th)){{1,4}} (?:{})\b\.?",
                suffixes.join("|")
            )),
            strasse: re(
                r"\b[A-ZÄÖÜ][a-zäöüß]+(?:straße|strasse|str\.|weg|gasse|platz|allee|ring|damm) \d{1,4}[a-z]?\b",
            ),
            ext: re(r"^(?:,? ?(?:ext\.?|x|extension|#) ?\d{1,6}\b)"),
        }
    }

    /// Every PII match in `text` of the kinds this module knows, possibly overlapping (the
    /// caller keeps the first of overlapping matches, in the order returned).
    pub fn scan(&self, text: &str) -> Vec<PiiHit> {
        let mut out = Vec::new();
        let has_digit = text.bytes().any(|b| b.is_ascii_digit());
        if !has_digit {
            return out;
        }
        self.iban_hits(text, &mut out);
        self.ssn_hits(text, &mut out);
        self.nanp_hits(text, &mut out);
        self.intl_hits(text, &mut out);
        if text.contains(':') {
            self.ipv6_hits(text, &mut out);
        }
        if text.contains('.') {
            self.ipv4_hits(text, &mut out);
        }
        self.street_hits(text, &mut out);
        out
    }

    fn with_ext(&self, text: &str, end: usize) -> usize {
        match self.ext.find(&text[end..]) {
            Some(m) => end + m.end(),
            None => end,
        }
    }

    fn nanp_hits(&self, text: &str, out: &mut Vec<PiiHit>) {
        for c in self.nanp.captures_iter(text) {
            let m = c.get(0).expect("group 0");
            let area = c.get(1).or_else(|| c.get(2)).map_or("", |g| g.as_str());
            let exch = c.get(4).map_or("", |g| g.as_str());
            if !nanp_valid(area, exch) || !isolated(text, m.start(), m.end()) {
                continue;
            }
            let s = m.as_str();
            let marked =
                s.starts_with('+') || s.contains('(') || s.contains('-') || s.contains('.');
            if !marked && !near_word(text, m.start(), PHONE_WORDS) {
                continue;
            }
            out.push(PiiHit {
                kind: "phone",
                start: m.start(),
                end: self.with_ext(text, m.end()),
            });
        }
    }

    fn intl_hits(&self, text: &str, out: &mut Vec<PiiHit>) {
        for m in self.intl.find_iter(text) {
            let s = m.as_str().trim_end_matches(['(', ' ', '.', '-']);
            let end = m.start() + s.len();
            let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_digit).collect();
            let body = if let Some(rest) = s.strip_prefix("00") {
                rest.bytes().filter(u8::is_ascii_digit).collect::<Vec<u8>>()
            } else {
                digits
            };
            if !(8..=15).contains(&body.len()) || calling_code(&body).is_none() {
                continue;
            }
            // `00` as the international prefix is also how hex dumps and tables start.
            if s.starts_with("00") && !near_word(text, m.start(), PHONE_WORDS) {
                continue;
            }
            // The last group has two digits or more (`+35236450.6` is a float).
            let groups: Vec<&str> = s
                .split(|c: char| !c.is_ascii_digit())
                .filter(|g| !g.is_empty())
                .collect();
            if groups.last().is_some_and(|g| g.len() < 2) {
                continue;
            }
            // A bare run of digits after `+` is an arithmetic literal as often as a number.
            let separated = s.bytes().skip(1).any(|b| !b.is_ascii_digit());
            if !separated && (body.len() < 10 || !near_word(text, m.start(), PHONE_WORDS)) {
                continue;
            }
            // A `+` right after an operand is arithmetic (`x +4420…`), not a number.
            if s.starts_with('+') && follows_operand(text, m.start()) {
                continue;
            }
            if !isolated(text, m.start(), end) {
                continue;
            }
            out.push(PiiHit {
                kind: "phone",
                start: m.start(),
                end: self.with_ext(text, end),
            });
        }
    }

    fn ssn_hits(&self, text: &str, out: &mut Vec<PiiHit>) {
        for c in self.ssn.captures_iter(text) {
            let m = c.get(0).expect("group 0");
            let (s1, s2) = (c[2].to_string(), c[4].to_string());
            if s1 != s2 || !isolated(text, m.start(), m.end()) {
                continue;
            }
            if !ssn_valid(&c[1], &c[3], &c[5]) {
                continue;
            }
            if s1 != "-" && !near_word(text, m.start(), SSN_WORDS) {
                continue;
            }
            out.push(PiiHit {
                kind: "ssn",
                start: m.start(),
                end: m.end(),
            });
        }
    }

    fn iban_hits(&self, text: &str, out: &mut Vec<PiiHit>) {
        for m in self.iban.find_iter(text) {
            let s = m.as_str();
            let Some(len) = iban_length(&s[..2]) else {
                continue;
            };
            // Cut the candidate at the country's length (a greedy match may run into the
            // next capitalised word), then require a word end there.
            let mut n = 0;
            let mut cut = None;
            for (i, ch) in s.char_indices() {
                if ch != ' ' {
                    n += 1;
                    if n == len {
                        cut = Some(i + ch.len_utf8());
                        break;
                    }
                }
            }
            let Some(cut) = cut else { continue };
            let end = m.start() + cut;
            let compact: String = s[..cut].chars().filter(|c| *c != ' ').collect();
            let after = text[end..].chars().next();
            if after.is_some_and(|c| c.is_alphanumeric()) || !iban_valid(&compact) {
                continue;
            }
            out.push(PiiHit {
                kind: "iban",
                start: m.start(),
                end,
            });
        }
    }

    fn ipv4_hits(&self, text: &str, out: &mut Vec<PiiHit>) {
        for m in self.ipv4.find_iter(text) {
            // A port after the address is part of it for the isolation check.
            let rest = &text[m.end()..];
            let port = rest
                .strip_prefix(':')
                .map_or(0, |p| p.bytes().take_while(u8::is_ascii_digit).count());
            let tail = if (1..=5).contains(&port) {
                m.end() + 1 + port
            } else {
                m.end()
            };
            if !isolated(text, m.start(), tail) || version_before(text, m.start()) {
                continue;
            }
            let s = m.as_str();
            if s.split('.').any(|p| p.len() > 1 && p.starts_with('0')) {
                continue;
            }
            let Ok(ip) = s.parse::<std::net::Ipv4Addr>() else {
                continue;
            };
            if s.split('.').filter(|p| p.len() == 1).count() >= 3 || !ipv4_personal(ip) {
                continue;
            }
            out.push(PiiHit {
                kind: "ip_address",
                start: m.start(),
                end: m.end(),
            });
        }
    }

    fn ipv6_hits(&self, text: &str, out: &mut Vec<PiiHit>) {
        for m in self.ipv6.find_iter(text) {
            let (mut start, mut end) = (m.start(), m.end());
            // A trailing single colon is punctuation (`at fe80::1:`), a leading one too.
            while end > start && text[..end].ends_with(':') && !text[..end].ends_with("::") {
                end -= 1;
            }
            while start < end && text[start..].starts_with(':') && !text[start..].starts_with("::")
            {
                start += 1;
            }
            let s = &text[start..end];
            // Three groups or more, two of them with three digits or more (`a::b`, `1::2` and
            // `123:2:3:4:5:6:7:8` are slices, paths and examples), and a host rather than a
            // network prefix (`2001:4:112::`).
            let groups: Vec<&str> = s.split(':').filter(|g| !g.is_empty()).collect();
            if groups.len() < 3
                || groups.iter().filter(|g| g.len() >= 3).count() < 2
                || s.ends_with("::")
            {
                continue;
            }
            let before = text[..start].chars().next_back();
            let after = text[end..].chars().next();
            let glued = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
            if glued(before) || glued(after) {
                continue;
            }
            let Ok(ip) = s.parse::<std::net::Ipv6Addr>() else {
                continue;
            };
            if !ipv6_personal(ip) {
                continue;
            }
            out.push(PiiHit {
                kind: "ip_address",
                start,
                end,
            });
        }
    }

    fn street_hits(&self, text: &str, out: &mut Vec<PiiHit>) {
        for m in self.street.find_iter(text) {
            let s = m.as_str().trim_end_matches('.');
            let suffix = s.rsplit(' ').next().unwrap_or("");
            let before = text[..m.start()].chars().next_back();
            let numbered = text[..m.start()]
                .trim_end_matches(',')
                .ends_with(|c: char| c.is_ascii_digit());
            if before.is_some_and(|c| c == '.' || (c == ',' && numbered)) {
                continue;
            }
            // `Rule 12 Supreme Court`, `Chapter 3 The Long Way`: a numbered reference.
            let prev_word = text[..m.start()]
                .trim_end()
                .rsplit(|c: char| !c.is_alphabetic())
                .next()
                .unwrap_or("")
                .to_lowercase();
            if REFERENCE_WORDS.contains(&prev_word.as_str()) {
                continue;
            }
            if !STRONG_SUFFIXES.contains(&suffix) && !address_context(text, m.start(), m.end()) {
                continue;
            }
            out.push(PiiHit {
                kind: "street_address",
                start: m.start(),
                end: m.start() + s.len(),
            });
        }
        for m in self.strasse.find_iter(text) {
            out.push(PiiHit {
                kind: "street_address",
                start: m.start(),
                end: m.end(),
            });
        }
    }
}

/// Words that number a reference, not a house: `Rule 12 Supreme Court`.
#[rustfmt::skip]
const REFERENCE_WORDS: &[&str] = &[
    "rule", "section", "sec", "chapter", "ch", "article", "art", "part", "page", "p", "pp",
    "volume", "vol", "act", "scene", "verse", "psalm", "figure", "fig", "table", "step",
    "level", "grade", "room", "episode", "season", "book", "canto", "case",
    "item", "line", "lines", "version", "v", "route", "exit", "gate", "platform", "floor",
];

#[rustfmt::skip]
const PHONE_WORDS: &[&str] = &[
    "phone", "tel", "call", "mobile", "cell", "fax", "contact", "whatsapp", "sms", "text me",
    "telefon", "téléphone", "número", "numero",
];
const SSN_WORDS: &[&str] = &["ssn", "social security", "ss#", "ss no", "taxpayer"];
const ADDRESS_WORDS: &[&str] = &[
    "address",
    "lives at",
    "live at",
    "located at",
    "ship to",
    "mail to",
    "deliver to",
    "resides",
];

/// One of `words` (lower case) in the 40 characters before `at`.
fn near_word(text: &str, at: usize, words: &[&str]) -> bool {
    let mut from = at.saturating_sub(40);
    while !text.is_char_boundary(from) {
        from -= 1;
    }
    let window = text[from..at].to_lowercase();
    words.iter().any(|w| window.contains(w))
}

/// A unit, a ZIP code or state + ZIP after the address, or an address word before it.
fn address_context(text: &str, start: usize, end: usize) -> bool {
    let mut to = (end + 40).min(text.len());
    while !text.is_char_boundary(to) {
        to -= 1;
    }
    let after = &text[end..to];
    let unit = ["Apt", "Suite", "Ste", "Unit", "#", "Floor", "Fl"]
        .iter()
        .any(|u| after.trim_start_matches([',', ' ']).starts_with(u));
    let zip = after
        .split(|c: char| !c.is_ascii_digit())
        .any(|d| d.len() == 5);
    unit || zip || near_word(text, start, ADDRESS_WORDS)
}

/// The `+` at `start` is an operator: glued to an operand (`x+44…`), or after a number or a
/// closing bracket (`2 +1…`, `f(x) +44…`).
fn follows_operand(text: &str, start: usize) -> bool {
    let glued = text[..start]
        .chars()
        .next_back()
        .is_some_and(|c| c.is_alphanumeric() || matches!(c, ')' | ']' | '_'));
    let after_number = text[..start]
        .trim_end_matches(' ')
        .chars()
        .next_back()
        .is_some_and(|c| c.is_ascii_digit() || matches!(c, ')' | ']'));
    glued || after_number
}

/// A version word right before a dotted number.
fn version_before(text: &str, start: usize) -> bool {
    let mut from = start.saturating_sub(12);
    while !text.is_char_boundary(from) {
        from -= 1;
    }
    let w = text[from..start].to_lowercase();
    let w = w.trim_end();
    w.ends_with('v')
        || [
            "version", "ver", "release", "python", "==", ">=", "<=", "~=", "build", "oid",
        ]
        .iter()
        .any(|k| w.ends_with(k))
}

/// A numeric match stands alone: no letter, digit or `_` glued to it, and not part of a
/// longer dotted, dashed, slashed or colon-separated number.
pub fn isolated(text: &str, start: usize, end: usize) -> bool {
    let mut back = text[..start].chars().rev();
    let b1 = back.next();
    let b2 = back.next();
    let mut fwd = text[end..].chars();
    let a1 = fwd.next();
    let a2 = fwd.next();
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let joiner = |c: Option<char>| c.is_some_and(|c| matches!(c, '.' | '-' | '/' | ':' | ','));
    let digit = |c: Option<char>| c.is_some_and(|c| c.is_ascii_digit());
    if word(b1) || word(a1) {
        return false;
    }
    if joiner(b1) && digit(b2) || matches!(b1, Some('.' | '-' | '/')) && word(b2) {
        return false;
    }
    if joiner(a1) && digit(a2) {
        return false;
    }
    !matches!(b1, Some('$' | '%' | '+' | '*' | '^'))
}

/// North American Numbering Plan: area code and exchange start with 2–9; the area code is not
/// an N11 service code nor 37X/96X (reserved).
pub fn nanp_valid(area: &str, exchange: &str) -> bool {
    let ok3 =
        |s: &str| s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit()) && s.as_bytes()[0] >= b'2';
    if !ok3(area) || !ok3(exchange) {
        return false;
    }
    let a = area.as_bytes();
    let n11 = a[1] == b'1' && a[2] == b'1';
    let reserved = area.starts_with("37") || area.starts_with("96") || a[1] == b'9';
    let e = exchange.as_bytes();
    let n11_exchange = e[1] == b'1' && e[2] == b'1';
    !(n11 || reserved || n11_exchange)
}

/// The ITU-T E.164 country calling code `digits` starts with, if it is an assigned one (the
/// codes are prefix-free, so at most one fits).
pub fn calling_code(digits: &[u8]) -> Option<u16> {
    let mut code = 0u16;
    for &d in digits.iter().take(3) {
        if !d.is_ascii_digit() {
            return None;
        }
        code = code * 10 + u16::from(d - b'0');
        if CALLING_CODES.binary_search(&code).is_ok() {
            return Some(code);
        }
    }
    None
}

/// Assigned country calling codes (ITU-T E.164 list), sorted.
#[rustfmt::skip]
const CALLING_CODES: &[u16] = &[
    1, 7, 20, 27, 30, 31, 32, 33, 34, 36, 39, 40, 41, 43, 44, 45, 46, 47, 48, 49, 51, 52, 53,
    54, 55, 56, 57, 58, 60, 61, 62, 63, 64, 65, 66, 81, 82, 84, 86, 90, 91, 92, 93, 94, 95, 98,
    211, 212, 213, 216, 218, 220, 221, 222, 223, 224, 225, 226, 227, 228, 229, 230, 231, 232,
    233, 234, 235, 236, 237, 238, 239, 240, 241, 242, 243, 244, 245, 246, 247, 248, 249, 250,
    251, 252, 253, 254, 255, 256, 257, 258, 260, 261, 262, 263, 264, 265, 266, 267, 268, 269,
    290, 291, 297, 298, 299, 350, 351, 352, 353, 354, 355, 356, 357, 358, 359, 370, 371, 372,
    373, 374, 375, 376, 377, 378, 379, 380, 381, 382, 383, 385, 386, 387, 389, 420, 421, 423,
    500, 501, 502, 503, 504, 505, 506, 507, 508, 509, 590, 591, 592, 593, 594, 595, 596, 597,
    598, 599, 670, 672, 673, 674, 675, 676, 677, 678, 679, 680, 681, 682, 683, 685, 686, 687,
    688, 689, 690, 691, 692, 800, 808, 850, 852, 853, 855, 856, 870, 878, 880, 881, 882, 883,
    886, 888, 960, 961, 962, 963, 964, 965, 966, 967, 968, 970, 971, 972, 973, 974, 975, 976,
    977, 979, 992, 993, 994, 995, 996, 998,
];

/// A US Social Security number by the SSA's rules: area 001–899 except 666, group 01–99,
/// serial 0001–9999, and not one of the numbers published in advertising (078-05-1120,
/// 219-09-9999).
pub fn ssn_valid(area: &str, group: &str, serial: &str) -> bool {
    let num = |s: &str, len: usize| -> Option<u32> {
        (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let (Some(a), Some(g), Some(s)) = (num(area, 3), num(group, 2), num(serial, 4)) else {
        return false;
    };
    let advertised = (a, g, s) == (78, 5, 1120) || (a, g, s) == (219, 9, 9999);
    a != 0 && a != 666 && a < 900 && g != 0 && s != 0 && !advertised
}

/// The IBAN length registered for a country code (ISO 13616 / SWIFT IBAN registry).
pub fn iban_length(country: &str) -> Option<usize> {
    IBAN_LENGTHS
        .binary_search_by(|(c, _)| c.cmp(&country))
        .ok()
        .map(|i| IBAN_LENGTHS[i].1)
}

/// Countries in the IBAN registry and their IBAN lengths, sorted by country code.
#[rustfmt::skip]
const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24), ("AE", 23), ("AL", 28), ("AT", 20), ("AZ", 28), ("BA", 20), ("BE", 16),
    ("BG", 22), ("BH", 22), ("BI", 27), ("BR", 29), ("BY", 28), ("CH", 21), ("CR", 22),
    ("CY", 28), ("CZ", 24), ("DE", 22), ("DJ", 27), ("DK", 18), ("DO", 28), ("EE", 20),
    ("EG", 29), ("ES", 24), ("FI", 18), ("FK", 18), ("FO", 18), ("FR", 27), ("GB", 22),
    ("GE", 22), ("GI", 23), ("GL", 18), ("GR", 27), ("GT", 28), ("HN", 28), ("HR", 21),
    ("HU", 28), ("IE", 22), ("IL", 23), ("IQ", 23), ("IS", 26), ("IT", 27), ("JO", 30),
    ("KW", 30), ("KZ", 20), ("LB", 28), ("LC", 32), ("LI", 21), ("LT", 20), ("LU", 20),
    ("LV", 21), ("LY", 25), ("MC", 27), ("MD", 24), ("ME", 22), ("MK", 19), ("MN", 20),
    ("MR", 27), ("MT", 31), ("MU", 30), ("NI", 28), ("NL", 18), ("NO", 15), ("OM", 23),
    ("PK", 24), ("PL", 28), ("PS", 29), ("PT", 25), ("QA", 29), ("RO", 24), ("RS", 22),
    ("RU", 33), ("SA", 24), ("SC", 31), ("SD", 18), ("SE", 24), ("SI", 19), ("SK", 24),
    ("SM", 27), ("SO", 23), ("ST", 25), ("SV", 28), ("TL", 23), ("TN", 24), ("TR", 26),
    ("UA", 29), ("VA", 22), ("VG", 24), ("XK", 20), ("YE", 30),
];

/// An IBAN without spaces: a registered country, its length, check digits 02–98, and the ISO
/// 7064 mod-97 check (the first four characters moved to the end, letters as 10–35, the
/// number mod 97 is 1).
pub fn iban_valid(iban: &str) -> bool {
    let b = iban.as_bytes();
    if b.len() < 5 || !iban.is_ascii() {
        return false;
    }
    if iban_length(&iban[..2]) != Some(b.len()) {
        return false;
    }
    if !b[2].is_ascii_digit() || !b[3].is_ascii_digit() {
        return false;
    }
    let check = (b[2] - b'0') * 10 + (b[3] - b'0');
    if !(2..=98).contains(&check) {
        return false;
    }
    let mut rem = 0u32;
    for &c in b[4..].iter().chain(&b[..4]) {
        let v = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'Z' => u32::from(c - b'A') + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// An IPv4 address that can point at a person or their machine: not unspecified (0/8),
/// loopback, link-local, broadcast, multicast, reserved (240/4), a netmask (255.x) or a
/// documentation network (RFC 5737).
pub fn ipv4_personal(ip: std::net::Ipv4Addr) -> bool {
    let o = ip.octets();
    let documentation = matches!(o, [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _]);
    !(o[0] == 0
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || o[0] >= 240
        || documentation)
}

/// An IPv6 address that can point at a person or their machine: not unspecified, loopback,
/// multicast, documentation (2001:db8::/32), IETF protocol assignments (2001::/23), NAT64
/// (64:ff9b::/96, 64:ff9b:1::/48) or discard (100::/64); an IPv4-mapped address is personal
/// if its IPv4 address is.
pub fn ipv6_personal(ip: std::net::Ipv6Addr) -> bool {
    let s = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return ipv4_personal(v4);
    }
    let special = (s[0] == 0x2001 && (s[1] == 0x0db8 || s[1] < 0x200))
        || (s[0] == 0x64 && s[1] == 0xff9b)
        || (s[0] == 0x100 && s[1..4] == [0, 0, 0]);
    !(ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() || special)
}
