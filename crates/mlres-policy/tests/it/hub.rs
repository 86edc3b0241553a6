use std::path::Path;

use mlres_policy::{
    Envelope, TokenScopes, check_create, check_delete, check_repo_scope, check_upload,
    check_upload_source, contains_hf_token, credential_reason, parse_program, token_breadth,
};
use proptest::prelude::*;

const FIXTURE: &str = include_str!("fixtures/program.md");

fn envelope(repos: &[&str], deletes: bool, ns: Option<&str>) -> Envelope {
    let mut e = parse_program(FIXTURE).unwrap().envelope;
    e.output_repos = repos.iter().map(|s| s.to_string()).collect();
    e.allow_deletes = deletes;
    e.namespace = ns.map(str::to_string);
    e
}

#[test]
fn repo_scope_delete_overwrite_and_visibility() {
    let e = envelope(&["alice/results", "acme-ml/run-*"], false, Some("alice"));
    assert!(check_repo_scope(&e, "alice/results").is_ok());
    assert!(check_repo_scope(&e, "acme-ml/run-7").is_ok());
    let r = check_repo_scope(&e, "alice/other").unwrap_err();
    assert!(r.0.contains("out of scope"), "{r}");
    assert!(
        check_repo_scope(&envelope(&[], true, None), "alice/results")
            .unwrap_err()
            .0
            .contains("empty")
    );

    assert!(
        check_delete(&e, "alice/results", "a")
            .unwrap_err()
            .0
            .contains("allow_deletes")
    );
    let del = envelope(&["alice/results"], true, None);
    assert!(check_delete(&del, "alice/results", "a").is_ok());
    assert!(check_delete(&del, "bob/x", "a").is_err());

    assert!(check_upload(&e, "alice/results", "new.txt", false).is_ok());
    assert!(
        check_upload(&e, "alice/results", "kept.txt", true)
            .unwrap_err()
            .0
            .contains("counts as a delete")
    );
    assert!(check_upload(&del, "alice/results", "kept.txt", true).is_ok());

    assert!(check_create(&e, "alice/results", false, false).is_ok());
    assert!(
        check_create(&e, "alice/results", true, false)
            .unwrap_err()
            .0
            .contains("public_repos")
    );
    assert!(check_create(&e, "alice/results", true, true).is_ok());
    assert!(check_create(&e, "bob/results", false, true).is_err());
}

#[test]
fn upload_sources() {
    let proj = Path::new("/p/proj");
    let state = Path::new("/s/state");
    assert!(check_upload_source(Path::new("/p/proj/out/model.txt"), proj, state).is_ok());
    assert!(
        check_upload_source(Path::new("/s/state/attempts/a1/work/out.bin"), proj, state).is_ok()
    );
    assert!(check_upload_source(Path::new("/s/state/ledger.db"), proj, state).is_err());
    assert!(check_upload_source(Path::new("/s/state/attempts/work"), proj, state).is_err());
    assert!(check_upload_source(Path::new("/p/project2/x"), proj, state).is_err());
    assert!(check_upload_source(Path::new("/etc/passwd"), proj, state).is_err());
}

#[test]
fn credential_files_by_name_and_content() {
    let ok = credential_reason(Path::new("/p/results.json"), b"{\"score\": 1}");
    assert_eq!(ok, None);
    for name in [
        ".env",
        ".env.local",
        ".netrc",
        ".git-credentials",
        "id_rsa",
        "id_ed25519.pub",
        "server.pem",
        "tls.key",
        "token",
        "stored_tokens",
    ] {
        assert!(
            credential_reason(&Path::new("/p").join(name), b"").is_some(),
            "{name}"
        );
    }
    assert!(credential_reason(Path::new("/h/.cache/huggingface/token"), b"").is_some());
    assert!(
        credential_reason(
            Path::new("/p/notes.md"),
            b"use hf_mlresCANARYtoken0123456789abcdefXYZ here"
        )
        .is_some()
    );
    assert!(
        credential_reason(
            Path::new("/p/k.txt"),
            b"-----BEGIN OPENSSH PRIVATE KEY-----"
        )
        .is_some()
    );
    // Words that merely start with hf_ are not tokens.
    assert!(credential_reason(Path::new("/p/code.py"), b"def hf_login(): pass").is_none());
}

#[test]
fn token_breadth_by_role() {
    let e = envelope(&["alice/results"], false, Some("alice"));
    let classic = TokenScopes {
        role: "write".into(),
        namespaces: vec!["alice".into(), "acme-ml".into()],
        ..Default::default()
    };
    assert_eq!(token_breadth(&e, &classic).len(), 1);
    let read = TokenScopes {
        role: "read".into(),
        ..Default::default()
    };
    assert!(token_breadth(&e, &read).is_empty());
    let fitted = TokenScopes {
        role: "fineGrained".into(),
        scoped: vec![(
            "alice".into(),
            vec!["repo.write".into(), "job.write".into()],
        )],
        ..Default::default()
    };
    assert!(
        token_breadth(&e, &fitted).is_empty(),
        "{:?}",
        token_breadth(&e, &fitted)
    );
    let other_ns = TokenScopes {
        role: "fineGrained".into(),
        scoped: vec![("acme-ml".into(), vec!["job.write".into()])],
        ..Default::default()
    };
    let b = token_breadth(&e, &other_ns);
    assert!(b.iter().any(|m| m.contains("acme-ml")), "{b:?}");
    let global = TokenScopes {
        role: "fineGrained".into(),
        global: vec!["repo.write".into()],
        ..Default::default()
    };
    assert!(token_breadth(&e, &global)[0].contains("all repos"));
    let repo_only = TokenScopes {
        role: "fineGrained".into(),
        scoped: vec![("alice/results".into(), vec!["repo.write".into()])],
        ..Default::default()
    };
    assert!(token_breadth(&e, &repo_only).is_empty());
}

proptest! {
    #[test]
    fn any_embedded_token_is_found(prefix in "[ -~]{0,20}", body in "[A-Za-z0-9]{20,40}", suffix in "[ -~]{0,20}") {
        let sep = if prefix.chars().last().is_some_and(|c| c.is_ascii_alphanumeric()) { " " } else { "" };
        let text = format!("{prefix}{sep}hf_{body}{suffix}");
        prop_assert!(contains_hf_token(text.as_bytes()));
    }

    #[test]
    fn short_hf_words_are_not_tokens(body in "[A-Za-z0-9]{0,19}", tail in "[ .;]{1,3}") {
        let text = format!("x = hf_{body}{tail}");
        prop_assert!(!contains_hf_token(text.as_bytes()));
    }
}
