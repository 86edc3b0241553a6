//! Integration tests of mlres-hf against the in-process fake (mlres-fakehf).

mod errors;
mod hub;
mod jobs;
mod parity;
mod sse;
mod token;
mod viewer;

use std::time::Duration;

use mlres_fakehf::{CANARY_TOKEN, FakeConfig, FakeHf};

pub const CANARY_TOKEN_VALUE: &str = CANARY_TOKEN;
use mlres_hf::{Endpoint, HfClient, RetryPolicy, Token};

pub fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("mlres-hf-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
}

pub fn fake_with(mut cfg: FakeConfig) -> FakeHf {
    cfg.work_root = Some(std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    cfg.keepalive_ms = 50;
    cfg.scheduling_delay_ms = 5;
    FakeHf::start(cfg).unwrap()
}

pub fn fake() -> FakeHf {
    fake_with(FakeConfig::default())
}

pub fn client(f: &FakeHf) -> HfClient {
    client_token(f, CANARY_TOKEN)
}

pub fn client_token(f: &FakeHf, token: &str) -> HfClient {
    HfClient::new(Endpoint::parse(Some(&f.url())).unwrap(), Token::new(token))
        .with_retry(RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
        })
        .with_sse(Duration::from_secs(5), 50)
}

/// Assert the canary never shows in a string.
pub fn no_canary(s: &str) {
    assert!(!s.contains("mlresCANARY"), "canary leaked: {s}");
}
