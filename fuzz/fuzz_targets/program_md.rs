//! `program.md` is written by agents: the parser must never panic, and whatever it accepts must
//! render to an approval document deterministically.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(src) = std::str::from_utf8(data) {
        if let Ok(p) = mlres_policy::parse_program(src) {
            let a = mlres_policy::approval_document(&p);
            assert_eq!(a, mlres_policy::approval_document(&p));
        }
    }
});
