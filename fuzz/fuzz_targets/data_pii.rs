#![no_main]
//! The PII and secret scanner on any text: hits are in bounds and on character boundaries,
//! redaction never panics, and the validators take any input.

use libfuzzer_sys::fuzz_target;
use mlres_data::audit::{pii, secrets};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let scanner = secrets::Scanner::new();
    for h in scanner.scan(text) {
        assert!(h.start < h.end && h.end <= text.len());
        assert!(text.is_char_boundary(h.start) && text.is_char_boundary(h.end));
    }
    let _ = scanner.redact_all(text);
    let _ = pii::iban_valid(text);
    let _ = pii::calling_code(data);
    if text.len() >= 9 && text.is_char_boundary(3) && text.is_char_boundary(5) {
        let _ = pii::ssn_valid(&text[..3], &text[3..5], &text[5..]);
    }
});
