#![no_main]
//! The arXiv Atom reader must read any input without panicking, and keep only entries whose
//! id is a valid arXiv id without a version (the version is kept apart).

use libfuzzer_sys::fuzz_target;
use mlres_research::papers::{parse_arxiv_id, parse_atom};

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let feed = parse_atom(&s);
    for e in feed.entries {
        assert!(parse_arxiv_id(&e.id).is_some_and(|(id, v)| id == e.id && v.is_none()));
    }
});
