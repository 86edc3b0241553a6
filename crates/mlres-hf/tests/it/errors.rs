use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::mpsc;

use mlres_fakehf::{Injection, TokenConfig};
use mlres_hf::{HfError, JobSpec};

use crate::{client, client_token, fake, no_canary};

fn inject(f: &mlres_fakehf::FakeHf, method: &str, prefix: &str, status: u16, count: u32) {
    f.state().inject(Injection {
        method: method.into(),
        path_prefix: prefix.into(),
        status,
        count,
        location: None,
        message: None,
    });
}

pub fn spec() -> JobSpec {
    JobSpec {
        command: vec!["/bin/sh".into(), "-c".into(), "echo hi".into()],
        environment: BTreeMap::new(),
        secrets: BTreeMap::new(),
        flavor: "cpu-basic".into(),
        docker_image: "python:3.12".into(),
        timeout_seconds: 60,
        labels: BTreeMap::new(),
    }
}

fn show(e: &HfError) -> String {
    let s = format!("{e} {e:?}");
    no_canary(&s);
    s
}

#[test]
fn whoami_decodes_and_is_cached() {
    let f = fake();
    let c = client(&f);
    let w = c.whoami().unwrap();
    assert_eq!(w.name, "alice");
    assert_eq!(
        w.namespaces(),
        vec!["alice".to_string(), "acme-ml".to_string()]
    );
    assert_eq!(w.token_role(), Some("write"));
    c.whoami().unwrap();
    assert_eq!(f.state().whoami_calls(), 1);
}

#[test]
fn whoami_fine_grained_scopes() {
    let f = fake();
    f.state().add_token(TokenConfig {
        token: "hf_mlresCANARYfine".into(),
        user: "bob".into(),
        orgs: vec![],
        role: "fineGrained".into(),
        fine_grained: Some(serde_json::json!({
            "global": ["discussion.write"],
            "scoped": [{"entity": {"type": "user", "name": "bob"}, "permissions": ["repo.write", "job.write"]}]
        })),
        display_name: "ci".into(),
    });
    let w = client_token(&f, "hf_mlresCANARYfine").whoami().unwrap();
    let fg = w.access_token().unwrap().fine_grained.clone().unwrap();
    assert_eq!(fg.global, vec!["discussion.write"]);
    assert_eq!(fg.scoped[0].entity.name, "bob");
    assert!(fg.scoped[0].permissions.contains(&"job.write".to_string()));
}

#[test]
fn unknown_token_is_401_with_message() {
    let f = fake();
    let e = client_token(&f, "hf_mlresCANARYunknown")
        .whoami()
        .unwrap_err();
    let s = show(&e);
    assert!(matches!(e, HfError::Unauthorized { .. }), "{s}");
    assert!(
        s.contains("Invalid credentials in Authorization header"),
        "{s}"
    );
}

#[test]
fn payment_required_is_explained_and_nothing_started() {
    let f = fake();
    f.state().set_credits("alice", 0);
    let e = client(&f).create_job("alice", &spec()).unwrap_err();
    let s = show(&e);
    assert!(matches!(e, HfError::PaymentRequired { .. }), "{s}");
    assert!(
        s.contains("no credits")
            && s.contains("/settings/billing")
            && s.contains("nothing was started"),
        "{s}"
    );
    assert_eq!(f.state().snapshot()["jobs"].as_array().unwrap().len(), 0);
}

#[test]
fn forbidden_namespace_and_not_found() {
    let f = fake();
    let c = client(&f);
    let e = c.create_job("someone-else", &spec()).unwrap_err();
    assert!(matches!(e, HfError::Forbidden { .. }), "{}", show(&e));
    let e = c.get_job("alice", "000000000000000000000000").unwrap_err();
    match &e {
        HfError::NotFound { code, .. } => assert_eq!(code.as_deref(), Some("JobNotFound")),
        other => panic!("{other}"),
    }
    show(&e);
}

#[test]
fn rate_limit_is_retried_then_succeeds_and_gives_up_when_bounded() {
    let f = fake();
    inject(&f, "GET", "/api/jobs/hardware", 429, 2);
    let hw = client(&f).hardware().unwrap();
    assert!(hw.iter().any(|h| h.name == "cpu-basic"));
    inject(&f, "GET", "/api/jobs/hardware", 429, 10);
    let e = client(&f).hardware().unwrap_err();
    assert!(matches!(e, HfError::RateLimited { .. }), "{}", show(&e));
}

#[test]
fn server_errors_retried_for_get_never_for_create() {
    let f = fake();
    let c = client(&f);
    inject(&f, "GET", "/api/whoami-v2", 503, 2);
    assert_eq!(c.whoami().unwrap().name, "alice");
    inject(&f, "POST", "/api/jobs/alice", 500, 1);
    let e = c.create_job("alice", &spec()).unwrap_err();
    assert!(
        matches!(e, HfError::Server { status: 500, .. }),
        "{}",
        show(&e)
    );
    let creates = f.state().snapshot()["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["method"] == "POST" && r["path"] == "/api/jobs/alice")
        .count();
    assert_eq!(creates, 1, "create must not be retried");
    // The injection was consumed by the single attempt: the next create works.
    assert!(c.create_job("alice", &spec()).is_ok());
}

#[test]
fn redirect_to_another_host_never_carries_the_token() {
    let other = TcpListener::bind("127.0.0.1:0").unwrap();
    let other_url = format!("http://{}/steal", other.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        if let Ok((s, _)) = other.accept() {
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut head = String::new();
            loop {
                let mut l = String::new();
                if r.read_line(&mut l).unwrap_or(0) == 0 || l == "\r\n" {
                    break;
                }
                head.push_str(&l);
            }
            let _ = (&s).write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}");
            let _ = tx.send(head);
        }
    });
    let f = fake();
    f.state().inject(Injection {
        method: "GET".into(),
        path_prefix: "/api/whoami-v2".into(),
        status: 302,
        count: 1,
        location: Some(other_url),
        message: None,
    });
    let e = client(&f).whoami().unwrap_err();
    assert!(matches!(e, HfError::Redirect { .. }), "{}", show(&e));
    // The other host was never contacted (and so never saw a token).
    assert!(
        rx.recv_timeout(std::time::Duration::from_millis(300))
            .is_err()
    );
}

#[test]
fn same_host_redirect_is_followed_without_the_token() {
    let f = fake();
    f.state().inject(Injection {
        method: "GET".into(),
        path_prefix: "/api/jobs/hardware".into(),
        status: 302,
        count: 1,
        location: Some("/api/jobs/hardware?again=1".into()),
        message: None,
    });
    assert!(!client(&f).hardware().unwrap().is_empty());
    let reqs = f.state().snapshot()["requests"].as_array().unwrap().clone();
    let followed = reqs
        .iter()
        .find(|r| r["path"] == "/api/jobs/hardware?again=1")
        .unwrap();
    assert_eq!(followed["auth"], false);
}

#[test]
fn every_error_class_hides_the_token() {
    let f = fake();
    let c = client(&f);
    for status in [401u16, 402, 403, 404, 409, 422, 429, 500, 503] {
        inject(&f, "GET", "/api/jobs/alice/x", status, 20);
        let e = c.get_job("alice", "x").unwrap_err();
        show(&e);
    }
    let snap = f.state().snapshot().to_string();
    no_canary(&snap);
    no_canary(&format!("{c:?}"));
    no_canary(&format!(
        "{:?}",
        mlres_hf::resolve_token(
            &[(
                "HF_TOKEN".to_string(),
                crate::CANARY_TOKEN_VALUE.to_string()
            )]
            .into_iter()
            .collect(),
            &|_| None,
        )
    ));
}
