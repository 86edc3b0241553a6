//! Exact parsing of durations, sizes and money. No floating point anywhere.

use serde::{Deserialize, Serialize};

use crate::error::{DurationError, SizeError};

/// Outcome of [`exact_decimal`] when it fails.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ExactError {
    /// Not `(0|[1-9][0-9]*)(\.[0-9]+)?`.
    Syntax,
    /// The product is not a whole number.
    NotWhole,
    /// The product does not fit in u64.
    Overflow,
}

/// True if `s` is `0|[1-9][0-9]*`.
pub(crate) fn is_plain_uint(s: &str) -> bool {
    let b = s.as_bytes();
    match b {
        [] => false,
        [b'0'] => true,
        [first, rest @ ..] => (b'1'..=b'9').contains(first) && rest.iter().all(u8::is_ascii_digit),
    }
}

/// Computes `num * mult` exactly where `num` is `(0|[1-9][0-9]*)(\.[0-9]+)?`.
/// The result must be a whole number that fits in u64.
pub(crate) fn exact_decimal(num: &str, mult: u64) -> Result<u64, ExactError> {
    let (int_part, frac_part) = match num.split_once('.') {
        Some((i, f)) => {
            if f.is_empty() || !f.bytes().all(|c| c.is_ascii_digit()) {
                return Err(ExactError::Syntax);
            }
            (i, f)
        }
        None => (num, ""),
    };
    if !is_plain_uint(int_part) {
        return Err(ExactError::Syntax);
    }
    let frac = frac_part.trim_end_matches('0');
    // More decimals than this are refused as "not whole"; no sane input has them.
    if frac.len() > 30 {
        return Err(ExactError::NotWhole);
    }
    if int_part.len() > 30 {
        return Err(ExactError::Overflow);
    }
    let mut total: u128 = 0;
    for c in int_part.bytes().chain(frac.bytes()) {
        total = total
            .checked_mul(10)
            .and_then(|t| t.checked_add(u128::from(c - b'0')))
            .ok_or(ExactError::Overflow)?;
    }
    let scaled = total
        .checked_mul(u128::from(mult))
        .ok_or(ExactError::Overflow)?;
    let mut value = scaled;
    for _ in 0..frac.len() {
        if value % 10 != 0 {
            return Err(ExactError::NotWhole);
        }
        value /= 10;
    }
    u64::try_from(value).map_err(|_| ExactError::Overflow)
}

/// Parses a duration into whole seconds.
///
/// Accepted: `<decimal><unit>` with unit `s`, `m`, `h` or `d` (`30m`, `1.5h` = 5400,
/// `0.25d`), computed exactly, and bare whole seconds (`3600`). The result must be a
/// whole number of seconds. Refused: signs, exponents, underscores, compound forms
/// (`2h30m`), decimals without unit, whitespace, empty strings, overflow.
pub fn parse_duration(s: &str) -> Result<u64, DurationError> {
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    let own = || s.to_string();
    if s.chars().any(char::is_whitespace) {
        return Err(DurationError::Whitespace(own()));
    }
    if s.starts_with('+') || s.starts_with('-') {
        return Err(DurationError::Sign(own()));
    }
    if s.contains('_') {
        return Err(DurationError::Invalid(
            own(),
            "; digit separators `_` are not accepted",
        ));
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if unit.is_empty() {
        if is_plain_uint(num) {
            return num
                .parse::<u64>()
                .map_err(|_| DurationError::Overflow(own()));
        }
        if num.contains('.') && exact_decimal(num, 1) != Err(ExactError::Syntax) {
            return Err(DurationError::NoUnit(own()));
        }
        return Err(DurationError::Invalid(own(), ""));
    }
    if num.is_empty() {
        return Err(DurationError::Invalid(own(), ""));
    }
    let mut unit_chars = unit.chars();
    let first = unit_chars.next().unwrap_or(' ');
    let rest = unit_chars.as_str();
    let mult = match first {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'e' | 'E' => {
            return Err(DurationError::Invalid(
                own(),
                "; exponents are not accepted",
            ));
        }
        _ => {
            return Err(DurationError::Invalid(
                own(),
                "; the unit must be s, m, h or d",
            ));
        }
    };
    if !rest.is_empty() {
        if rest.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(DurationError::Compound(own()));
        }
        return Err(DurationError::Invalid(
            own(),
            "; the unit must be s, m, h or d",
        ));
    }
    match exact_decimal(num, mult) {
        Ok(v) => Ok(v),
        Err(ExactError::Syntax) => Err(DurationError::Invalid(own(), "")),
        Err(ExactError::NotWhole) => Err(DurationError::NotWholeSeconds(own())),
        Err(ExactError::Overflow) => Err(DurationError::Overflow(own())),
    }
}

/// Human rendering of seconds, e.g. `1h30m`, `45s`, `2d`, `0s`.
///
/// This compound form is for display only: [`parse_duration`] refuses it. Use
/// [`format_duration_exact`] for text that must be parsed back.
pub fn format_duration(secs: u64) -> String {
    if secs == 0 {
        return "0s".to_string();
    }
    let parts = [
        (secs / 86_400, "d"),
        (secs % 86_400 / 3600, "h"),
        (secs % 3600 / 60, "m"),
        (secs % 60, "s"),
    ];
    parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, u)| format!("{n}{u}"))
        .collect()
}

/// Single-unit rendering that [`parse_duration`] reads back exactly: the largest of
/// `d`, `h`, `m`, `s` that divides `secs` (e.g. `90m`, `2h`, `45s`, `0s`).
pub fn format_duration_exact(secs: u64) -> String {
    if secs == 0 {
        "0s".to_string()
    } else if secs.is_multiple_of(86_400) {
        format!("{}d", secs / 86_400)
    } else if secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

/// Parses a size into bytes: bare whole bytes (`1048576`) or `<decimal><unit>` with
/// unit `B`, `KB`, `MB`, `GB`, `TB` (powers of 1000) or `KiB`, `MiB`, `GiB`, `TiB`
/// (powers of 1024), exactly; the result must be whole bytes.
pub fn parse_size(s: &str) -> Result<u64, SizeError> {
    let fail = |reason: &str| SizeError {
        input: s.to_string(),
        reason: reason.to_string(),
    };
    if s.is_empty() {
        return Err(fail("empty"));
    }
    if s.chars().any(char::is_whitespace) {
        return Err(fail("whitespace is not allowed, write e.g. `2GiB`"));
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let mult: u64 = match unit {
        "" | "B" => 1,
        "KB" => 1000,
        "MB" => 1000_u64.pow(2),
        "GB" => 1000_u64.pow(3),
        "TB" => 1000_u64.pow(4),
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        _ => {
            return Err(fail(
                "expected <number><unit> with unit B, KB, MB, GB, TB, KiB, MiB, GiB or TiB",
            ));
        }
    };
    if unit.is_empty() && !is_plain_uint(num) {
        return Err(fail(
            "a bare number must be whole bytes; otherwise add a unit such as MiB",
        ));
    }
    match exact_decimal(num, mult) {
        Ok(v) => Ok(v),
        Err(ExactError::Syntax) => Err(fail(
            "expected <number><unit> such as `512MiB` or `1.5GB` (no sign, exponent or `_`)",
        )),
        Err(ExactError::NotWhole) => Err(fail("not a whole number of bytes")),
        Err(ExactError::Overflow) => Err(fail("too large")),
    }
}

/// An amount of US dollars, exact to the micro-dollar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Money {
    /// Millionths of a US dollar.
    pub micro_usd: u64,
}

impl Money {
    /// Parses a non-negative decimal amount with at most 6 decimals (`12`, `12.50`),
    /// exactly, never through floating point.
    pub fn parse(s: &str) -> Result<Money, String> {
        if let Some((_, frac)) = s.split_once('.')
            && frac.len() > 6
        {
            return Err(format!(
                "`{s}` has more than 6 decimals; amounts are exact to the micro-dollar"
            ));
        }
        match exact_decimal(s, 1_000_000) {
            Ok(micro_usd) => Ok(Money { micro_usd }),
            Err(ExactError::Overflow) => Err(format!("`{s}` is too large")),
            Err(_) => Err(format!(
                "`{s}` is not an amount; write a plain decimal such as `12.50` (no sign, exponent, `$` or `_`)"
            )),
        }
    }
}

impl std::fmt::Display for Money {
    /// `12.50`, `0.05`, `3.141593`: at least two decimals, trailing zeros trimmed beyond.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let whole = self.micro_usd / 1_000_000;
        let frac = format!("{:06}", self.micro_usd % 1_000_000);
        let mut frac = frac.trim_end_matches('0').to_string();
        while frac.len() < 2 {
            frac.push('0');
        }
        write!(f, "{whole}.{frac}")
    }
}
