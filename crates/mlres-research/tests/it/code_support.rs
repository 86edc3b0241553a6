//! Shared by the GitHub, docs and Hub-search tests: a fake per test, fetchers pointed at it,
//! canary tokens, and the fake's request log.

use mlres_fakehf::{FakeConfig, FakeHf, LoggedRequest, sha256_hex};
use mlres_research::{Cache, Endpoints, Fetcher, Pacing, Secrets};

/// Canary tokens (each carries a marker `mlres-testkit` sweeps for).
pub const HF_CANARY: &str = "hf_CANARYcodeDocs0123456789abcdefGHIJ";
pub const GH_CANARY: &str = "ghp_mlresCANARYgithub0123456789abcdefXY";

pub fn fake() -> FakeHf {
    FakeHf::start(FakeConfig::default()).expect("start the fake")
}

/// GitHub and HF both on one fake.
pub fn endpoints(f: &FakeHf) -> Endpoints {
    Endpoints {
        hf: f.url(),
        github: format!("{}/github", f.url()),
        ..Endpoints::default()
    }
}

/// No retries' sleeping in tests that provoke 429s and 5xx.
pub fn quick() -> Pacing {
    Pacing {
        retries: 0,
        ..Pacing::default()
    }
}

pub fn anonymous(f: &FakeHf) -> Fetcher {
    Fetcher::with_pacing(endpoints(f), Secrets::default(), None, quick())
}

pub fn with_tokens(f: &FakeHf, cache: Option<Cache>) -> Fetcher {
    Fetcher::with_pacing(endpoints(f), canaries(), cache, quick())
}

pub fn canaries() -> Secrets {
    Secrets {
        hf_token: Some(HF_CANARY.into()),
        github_token: Some(GH_CANARY.into()),
        s2_key: None,
    }
}

pub fn log(f: &FakeHf) -> Vec<LoggedRequest> {
    f.state().lock().requests.clone()
}

/// What the fake logs for `Authorization: Bearer {token}`.
pub fn bearer_sha(token: &str) -> String {
    sha256_hex(format!("Bearer {token}").as_bytes())
}
