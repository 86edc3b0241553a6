#![no_main]
//! Every dataset reader (JSON Lines, JSON array, CSV, parquet, compressed or not) must turn any bytes into rows,
//! counted row errors or a clear whole-file error, never a panic or an unbounded allocation.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("mlres-fuzz-data-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    for ext in ["jsonl", "json", "csv", "parquet"] {
        let p = dir.join(format!("input.{ext}"));
        if std::fs::write(&p, data).is_err() {
            return;
        }
        if let Ok(rows) = mlres_data::read::open(&p) {
            for row in rows.take(10_000) {
                if let Err(e) = row {
                    assert!(!e.message.is_empty());
                }
            }
        }
    }
    // Compressed inputs (by name; any bytes with a codec's magic are decoded under any name),
    // with a small decompressed-size cap so a bomb ends quickly.
    for ext in ["jsonl.gz", "csv.zst", "json.bz2"] {
        let p = dir.join(format!("input.{ext}"));
        if std::fs::write(&p, data).is_err() {
            return;
        }
        if let Ok(rows) = mlres_data::read::open_capped(&p, 1 << 24) {
            for row in rows.take(10_000) {
                if let Err(e) = row {
                    assert!(!e.message.is_empty());
                }
            }
        }
    }
    let _ = mlres_data::read::jsonl_from_bytes(data.to_vec()).count();
    let _ = mlres_data::read::json_array_from_bytes(data.to_vec()).count();
});
