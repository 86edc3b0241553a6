#![no_main]
//! The Jobs log-stream line parser must classify any input without panicking, and a line it
//! calls a log line must really start with `data: {`.

use libfuzzer_sys::fuzz_target;
use mlres_hf::sse::{SseLine, parse_line};

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    for line in s.split('\n') {
        if let SseLine::Log { .. } | SseLine::Banner = parse_line(line) {
            assert!(line.starts_with("data: {"));
        }
    }
});
