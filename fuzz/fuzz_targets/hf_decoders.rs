#![no_main]
//! The JobInfo and whoami-v2 decoders must return a value or an error on any input.

use libfuzzer_sys::fuzz_target;
use mlres_hf::{JobInfo, WhoAmI};

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    if let Ok(j) = JobInfo::from_json(&s) {
        let _ = j.is_terminal();
    }
    if let Ok(w) = WhoAmI::from_json(&s) {
        let _ = w.namespaces();
    }
});
