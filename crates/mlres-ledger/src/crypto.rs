//! Hashing and MACs: the unambiguous encodings the chain relies on.
//!
//! Every MAC input starts with a distinct, NUL-terminated domain tag so that a MAC produced
//! for one purpose (an event, the head, an approval, a caller document via
//! [`crate::Ledger::mac_hex`]) can never be replayed as a MAC for another.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// Length of the ledger key in bytes.
pub const KEY_LEN: usize = 32;

/// `prev_hash` of the first event: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

pub(crate) const TAG_EVENT_HASH: &[u8] = b"mlres-ledger/event-hash/v1\0";
pub(crate) const TAG_EVENT_MAC: &[u8] = b"mlres-ledger/event-mac/v1\0";
pub(crate) const TAG_HEAD_MAC: &[u8] = b"mlres-ledger/head-mac/v1\0";
pub(crate) const TAG_APPROVAL_MAC: &[u8] = b"mlres-ledger/approval-mac/v1\0";
pub(crate) const TAG_CALLER_MAC: &[u8] = b"mlres-ledger/caller-mac/v1\0";

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

fn unhex(s: &[u8]) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    fn nib(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    s.chunks(2)
        .map(|p| Some((nib(p[0])? << 4) | nib(p[1])?))
        .collect()
}

/// Appends a length-prefixed field (u64 big-endian length, then the bytes).
pub(crate) fn put_lp(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    buf.extend_from_slice(bytes);
}

/// Appends an optional length-prefixed field: 0x00 for none, 0x01 + field for some.
pub(crate) fn put_opt(buf: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => buf.push(0),
        Some(b) => {
            buf.push(1);
            put_lp(buf, b);
        }
    }
}

/// Hex SHA-256 of `data`.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// The chain hash of one event, over raw column bytes (used by `verify`, which must cope with
/// whatever an attacker wrote).
pub(crate) fn event_hash_bytes(
    seq: u64,
    ts_ms: u64,
    campaign: Option<&[u8]>,
    kind: &[u8],
    payload: &[u8],
    prev_hash: &[u8],
) -> String {
    let mut buf = Vec::with_capacity(64 + kind.len() + payload.len() + prev_hash.len());
    buf.extend_from_slice(TAG_EVENT_HASH);
    buf.extend_from_slice(&seq.to_be_bytes());
    buf.extend_from_slice(&ts_ms.to_be_bytes());
    put_opt(&mut buf, campaign);
    put_lp(&mut buf, kind);
    put_lp(&mut buf, payload);
    put_lp(&mut buf, prev_hash);
    sha256_hex(&buf)
}

/// The chain hash of one event: SHA-256 over a domain tag, `seq` and `ts_ms` as 8-byte
/// big-endian integers, `campaign` as 0x00 (none) or 0x01 + length-prefixed bytes, then
/// `kind`, `payload` and `prev_hash`, each prefixed with its length as an 8-byte big-endian
/// integer. Public so that tools (and tamper tests) can recompute it; it needs no key.
pub fn event_hash(
    seq: u64,
    ts_ms: u64,
    campaign: Option<&str>,
    kind: &str,
    payload: &str,
    prev_hash: &str,
) -> String {
    event_hash_bytes(
        seq,
        ts_ms,
        campaign.map(str::as_bytes),
        kind.as_bytes(),
        payload.as_bytes(),
        prev_hash.as_bytes(),
    )
}

fn hmac(key: &[u8; KEY_LEN], tag: &[u8], data: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length, so this cannot fail for a 32-byte key.
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    m.update(tag);
    m.update(data);
    m
}

/// Hex HMAC-SHA256 of `tag || data`.
pub(crate) fn mac_hex(key: &[u8; KEY_LEN], tag: &[u8], data: &[u8]) -> String {
    hex(&hmac(key, tag, data).finalize().into_bytes())
}

/// Constant-time check of a hex MAC of `tag || data`.
pub(crate) fn mac_ok(key: &[u8; KEY_LEN], tag: &[u8], data: &[u8], expected_hex: &[u8]) -> bool {
    match unhex(expected_hex) {
        Some(tag_bytes) => hmac(key, tag, data).verify_slice(&tag_bytes).is_ok(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_roundtrip() {
        let b = [0u8, 1, 0xab, 0xff, 0x10];
        assert_eq!(hex(&b), "0001abff10");
        assert_eq!(unhex(hex(&b).as_bytes()).as_deref(), Some(&b[..]));
        assert_eq!(unhex(b"0g"), None);
        assert_eq!(unhex(b"abc"), None);
        assert_eq!(unhex(b"AB"), None);
    }

    #[test]
    fn event_hash_is_unambiguous() {
        // Moving bytes between adjacent fields must change the hash.
        let a = event_hash(1, 2, Some("c"), "ab", "c", GENESIS_HASH);
        let b = event_hash(1, 2, Some("c"), "a", "bc", GENESIS_HASH);
        assert_ne!(a, b);
        let c = event_hash(1, 2, None, "ab", "c", GENESIS_HASH);
        let d = event_hash(1, 2, Some(""), "ab", "c", GENESIS_HASH);
        assert_ne!(c, d);
        assert_ne!(a, c);
        assert_ne!(a, event_hash(2, 1, Some("c"), "ab", "c", GENESIS_HASH));
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn mac_checks_tag_and_data() {
        let key = [7u8; KEY_LEN];
        let m = mac_hex(&key, TAG_EVENT_MAC, b"x");
        assert!(mac_ok(&key, TAG_EVENT_MAC, b"x", m.as_bytes()));
        assert!(!mac_ok(&key, TAG_EVENT_MAC, b"y", m.as_bytes()));
        assert!(!mac_ok(&key, TAG_CALLER_MAC, b"x", m.as_bytes()));
        assert!(!mac_ok(&[8u8; KEY_LEN], TAG_EVENT_MAC, b"x", m.as_bytes()));
        assert!(!mac_ok(&key, TAG_EVENT_MAC, b"x", b"zz"));
    }
}
