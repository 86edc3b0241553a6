#![no_main]
//! JSON array splitter on any bytes at any buffer size: rows or counted row errors, never a
//! panic; and on a valid array of objects, exactly serde_json's elements.

use std::io::{BufReader, Cursor};

use libfuzzer_sys::fuzz_target;
use mlres_data::read::JsonArray;

fuzz_target!(|data: &[u8]| {
    let Some((&cap, body)) = data.split_first() else {
        return;
    };
    let cap = usize::from(cap).max(1);
    let rows: Vec<_> = JsonArray::new(BufReader::with_capacity(cap, Cursor::new(body))).collect();
    for r in &rows {
        if let Err(e) = r {
            assert!(!e.message.is_empty() && e.row > 0);
        }
    }
    if let Ok(serde_json::Value::Array(items)) = serde_json::from_slice::<serde_json::Value>(body)
        && items.iter().all(|v| v.is_object())
    {
        let got: Vec<serde_json::Value> = rows
            .into_iter()
            .map(|r| serde_json::Value::Object(r.expect("valid element")))
            .collect();
        assert_eq!(got, items);
    }
});
