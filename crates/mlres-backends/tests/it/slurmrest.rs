//! The slurmrestd client without a cluster: URL checks (property-tested), decoding of v0.0.38
//! job objects (raw wait statuses), and the token kept out of `Debug` and error messages.
//! The client against a real slurmrestd is tested in the `mlres` crate (`slurm.rs`).

use mlres_backends::{SlurmRest, SlurmRestClient, SlurmRestError, SlurmToken, slurm_rest_job_info};
use proptest::prelude::*;
use serde_json::json;

const CANARY: &str = "mlresCANARY-jwt-3f9a0c";

#[test]
fn only_loopback_http_urls_with_a_port_are_accepted() {
    assert_eq!(
        SlurmRest::parse_url("http://127.0.0.1:6820/").unwrap(),
        "http://127.0.0.1:6820"
    );
    assert!(SlurmRest::parse_url("http://localhost:1").is_ok());
    assert!(SlurmRest::parse_url("http://[::1]:6820").is_ok());
    for bad in [
        "https://127.0.0.1:6820",
        "http://10.0.0.1:6820",
        "http://127.0.0.1",
        "http://127.0.0.1:68x0",
        "http://127.0.0.1:65536",
        "http://127.0.0.1:0",
        "http://127.0.0.1:+80",
        "http://127.0.0.1:6820/slurm",
        "http://evil.example:6820",
        "127.0.0.1:6820",
        "",
    ] {
        assert!(SlurmRest::parse_url(bad).is_err(), "{bad:?} accepted");
    }
}

proptest! {
    #[test]
    fn an_accepted_url_is_loopback_and_never_panics(s in "\\PC{0,40}") {
        if let Ok(u) = SlurmRest::parse_url(&s) {
            let host = u.strip_prefix("http://").unwrap().rsplit_once(':').unwrap().0;
            prop_assert!(matches!(host, "127.0.0.1" | "localhost" | "[::1]"));
        }
    }
}

#[test]
fn job_objects_decode_raw_wait_statuses() {
    let j = |state: &str, code: i64| {
        slurm_rest_job_info(&json!({
            "job_id": 7, "job_state": state, "state_reason": "NonZeroExitCode",
            "exit_code": code, "start_time": 100, "end_time": 130, "time_limit": 2,
            "comment": "mlres:x", "name": "mlres.x", "partition": "debug", "restart_cnt": 1
        }))
    };
    let f = j("FAILED", 768);
    assert_eq!((f.exit_code, f.signal), (Some(3), None));
    assert_eq!(f.id, "7");
    assert_eq!(f.elapsed_secs, 30);
    assert_eq!(f.time_limit_secs, Some(120));
    assert_eq!(f.restarts, 1);
    assert!(f.is_terminal());
    assert_eq!(j("CANCELLED", 36608).exit_code, Some(143));
    let k = j("FAILED", 9);
    assert_eq!((k.exit_code, k.signal), (None, Some(9)));
    assert_eq!(j("COMPLETED", 0).exit_code, Some(0));
}

#[test]
fn the_token_is_never_in_debug_or_errors() {
    let t = SlurmToken::new(&format!("SLURM_JWT={CANARY}\n"));
    assert_eq!(t.expose(), CANARY);
    assert!(!format!("{t:?}").contains(CANARY));
    // A port nothing listens on: the transport error names the URL, not the token.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let c = SlurmRestClient::new(
        SlurmRest {
            url: format!("http://127.0.0.1:{port}"),
            user: "root".into(),
        },
        t,
    );
    assert!(!format!("{c:?}").contains(CANARY));
    let e = c.ping().unwrap_err();
    assert!(matches!(e, SlurmRestError::Unreachable { .. }), "{e:?}");
    assert!(!e.to_string().contains(CANARY) && !format!("{e:?}").contains(CANARY));
    let e = c.job("1").unwrap_err();
    assert!(!e.to_string().contains(CANARY));
}
