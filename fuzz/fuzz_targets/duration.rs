//! Durations decide budgets: parsing must never panic and must round-trip.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(secs) = mlres_policy::parse_duration(s) {
            assert_eq!(mlres_policy::parse_duration(&mlres_policy::format_duration(secs)), Ok(secs));
        }
    }
});
