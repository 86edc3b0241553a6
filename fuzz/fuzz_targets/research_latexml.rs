#![no_main]
//! The LaTeXML reader (arXiv HTML, ar5iv) must read any input without panicking; every
//! section it finds is an `h2` or `h3`, and section lookup works on whatever it found.

use libfuzzer_sys::fuzz_target;
use mlres_research::latexml::{find_section, parse};

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let d = parse(&s);
    for sec in &d.sections {
        assert!(sec.level == 2 || sec.level == 3);
        let _ = find_section(&d.sections, &sec.title);
    }
    let _ = find_section(&d.sections, "1");
});
