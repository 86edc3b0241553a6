#![no_main]
//! The docs sidebar extractor must never panic on any HTML, and every link it returns is on
//! the page's host.

use libfuzzer_sys::fuzz_target;
use mlres_research::docs::extract_sidebar;
use mlres_research::fetch::host_of;

fuzz_target!(|data: &[u8]| {
    let html = String::from_utf8_lossy(data);
    for l in extract_sidebar(&html, "https://huggingface.co/docs/trl/index") {
        assert_eq!(host_of(&l.url).as_deref(), Some("huggingface.co"), "{}", l.url);
    }
});
