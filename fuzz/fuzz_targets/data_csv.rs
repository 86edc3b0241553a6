#![no_main]
//! The CSV reader on any file content: rows, counted row errors or a clear whole-file
//! error, never a panic or an unbounded allocation.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("mlres-fuzz-csv-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let p = dir.join("input.csv");
    if std::fs::write(&p, data).is_err() {
        return;
    }
    match mlres_data::read::open(&p) {
        Ok(rows) => {
            for row in rows.take(100_000) {
                if let Err(e) = row {
                    assert!(!e.message.is_empty());
                }
            }
        }
        Err(e) => assert!(e.to_string().contains("input.csv")),
    }
});
