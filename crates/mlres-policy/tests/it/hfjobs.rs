//! Envelope fields and job rules for the hf-jobs backend.

use mlres_policy::{Backend, TokenScope, approval_document, parse_program};

use crate::common::{doc, env_doc, expect_err};

const ENV: &str = "max_jobs: 3\nmax_walltime: 8h\nallowed_flavors: [cpu-basic]\nmax_timeout: 1h\nbackends: [hf-jobs]\nnamespace: alice\nimages: [\"python:3.12\"]";

/// Envelope, job, then the objective and search space every runnable job needs.
fn hf_doc(env: &str, job: &str) -> (String, Vec<usize>) {
    doc(&[
        ("Budget envelope", env),
        ("Job", job),
        ("Objective", "metric: score\ngoal: maximize"),
        (
            "Search space",
            "method: grid\nparameters:\n  x: {values: [1]}",
        ),
    ])
}

#[test]
fn defaults_are_warn_private_and_no_user_token() {
    let p = parse_program(&env_doc(ENV)).unwrap();
    assert_eq!(p.envelope.token_scope, TokenScope::Warn);
    assert!(!p.envelope.public_repos);
    assert!(!p.envelope.user_token_in_jobs);
    let p = parse_program(&env_doc(&format!(
        "{ENV}\ntoken_scope: strict\npublic_repos: true\nuser_token_in_jobs: true"
    )))
    .unwrap();
    assert_eq!(p.envelope.token_scope, TokenScope::Strict);
    assert!(p.envelope.public_repos);
    assert!(p.envelope.user_token_in_jobs);
}

#[test]
fn valid_hf_job_parses_and_is_in_the_approval_document() {
    let (src, _) = hf_doc(
        ENV,
        "backend: hf-jobs\nimage: \"python:3.12\"\ncommand: [python3, -c, \"print(1)\"]\ntimeout: 10m\nenv:\n  A: \"1\"\nsecrets: [HF_TOKEN]",
    );
    let p = parse_program(&src).unwrap_or_else(|e| panic!("{e}"));
    let job = p.job.as_ref().unwrap();
    assert_eq!(job.backend, Backend::HfJobs);
    assert_eq!(job.image.as_deref(), Some("python:3.12"));
    let d = approval_document(&p);
    assert!(d.contains("\"image\": \"python:3.12\""), "{d}");
    assert!(d.contains("\"token_scope\": \"warn\""), "{d}");
    assert!(d.contains("\"user_token_in_jobs\": false"), "{d}");
    assert!(d.contains("\"public_repos\": false"), "{d}");
    // Changing any of them changes the approved document.
    let p2 = parse_program(&src.replace("max_jobs: 3", "max_jobs: 3\nuser_token_in_jobs: true"))
        .unwrap();
    assert_ne!(approval_document(&p2), d);
}

#[test]
fn bad_token_scope_and_flags() {
    let src = env_doc(&format!("{ENV}\ntoken_scope: strikt"));
    let e = expect_err(&src, 13, 14, "`token_scope` must be strict or warn");
    assert_eq!(e.help.as_deref(), Some("did you mean `strict`?"));
    let src = env_doc(&format!("{ENV}\npublic_repos: yes"));
    expect_err(&src, 13, 15, "`public_repos` must be true or false");
    let src = env_doc(&format!("{ENV}\nuser_token_in_jobs: \"true\""));
    expect_err(&src, 13, 21, "`user_token_in_jobs` must be true or false");
}

#[test]
fn hf_job_without_image_is_refused() {
    let (src, s) = hf_doc(ENV, "backend: hf-jobs\ncommand: [python3]\ntimeout: 10m");
    expect_err(&src, s[1], 1, "needs an `image`");
}

#[test]
fn hf_job_image_not_in_envelope_is_refused() {
    let (src, s) = hf_doc(
        ENV,
        "backend: hf-jobs\nimage: evil/miner\ncommand: [python3]\ntimeout: 10m",
    );
    expect_err(
        &src,
        s[1] + 1,
        8,
        "job image `evil/miner` is not in the envelope's images",
    );
}

#[test]
fn hf_job_without_namespace_is_refused() {
    let env = ENV.replace("namespace: alice\n", "");
    let (src, s) = hf_doc(
        &env,
        "backend: hf-jobs\nimage: \"python:3.12\"\ncommand: [python3]\ntimeout: 10m",
    );
    expect_err(&src, s[1], 1, "needs a `namespace`");
}

#[test]
fn hf_job_with_pass_env_is_refused() {
    let (src, s) = hf_doc(
        ENV,
        "backend: hf-jobs\nimage: \"python:3.12\"\ncommand: [python3]\ntimeout: 10m\npass_env: [HOME]",
    );
    expect_err(&src, s[1] + 4, 11, "`pass_env` is not allowed for hf-jobs");
}

#[test]
fn hf_job_timeout_and_flavor_still_checked() {
    let (src, s) = hf_doc(
        ENV,
        "backend: hf-jobs\nimage: \"python:3.12\"\ncommand: [python3]\ntimeout: 2h",
    );
    expect_err(&src, s[1] + 3, 10, "over the envelope's max_timeout");
    let (src, s) = hf_doc(
        ENV,
        "backend: hf-jobs\nimage: \"python:3.12\"\nflavor: a100x8\ncommand: [python3]\ntimeout: 10m",
    );
    expect_err(&src, s[1] + 2, 9, "not in allowed_flavors");
}

#[test]
fn image_on_a_local_job_is_refused() {
    let env = ENV.replace("backends: [hf-jobs]", "backends: [local]");
    let (src, s) = hf_doc(
        &env,
        "image: \"python:3.12\"\ncommand: [python3]\ntimeout: 10m",
    );
    expect_err(&src, s[1], 8, "`image` is only used by the hf-jobs backend");
}
