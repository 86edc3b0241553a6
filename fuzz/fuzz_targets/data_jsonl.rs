#![no_main]
//! JSON Lines reader on any bytes at any buffer size: rows or counted row errors, never a
//! panic; and on input serde_json reads as one object per line, exactly serde_json's rows.

use std::io::{BufReader, Cursor};

use libfuzzer_sys::fuzz_target;
use mlres_data::read::JsonLines;

fuzz_target!(|data: &[u8]| {
    let Some((&cap, body)) = data.split_first() else {
        return;
    };
    let cap = usize::from(cap).max(1);
    let rows: Vec<_> = JsonLines::new(BufReader::with_capacity(cap, Cursor::new(body))).collect();
    for r in &rows {
        if let Err(e) = r {
            assert!(!e.message.is_empty() && e.row > 0);
        }
    }
    // Differential check against serde_json, line by line.
    let Ok(text) = std::str::from_utf8(body) else {
        return;
    };
    let expected: Option<Vec<serde_json::Map<String, serde_json::Value>>> = text
        .split('\n')
        .filter(|l| !l.bytes().all(|b| b.is_ascii_whitespace()))
        .map(|l| match serde_json::from_str(l) {
            Ok(serde_json::Value::Object(m)) => Some(m),
            _ => None,
        })
        .collect();
    if let Some(expected) = expected {
        let got: Vec<_> = rows.into_iter().map(|r| r.expect("valid line")).collect();
        assert_eq!(got, expected);
    }
});
