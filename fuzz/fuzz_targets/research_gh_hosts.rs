#![no_main]
//! gh's hosts.yml parser must never panic, and a token it returns is a non-empty value of an
//! `oauth_token` line of the input.

use libfuzzer_sys::fuzz_target;
use mlres_research::github::gh_hosts_token;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    for host in ["github.com", "ghe.example.com"] {
        if let Some(t) = gh_hosts_token(&s, host) {
            assert!(!t.is_empty());
            assert!(s.lines().any(|l| l.contains("oauth_token") && l.contains(t.as_str())));
        }
    }
});
