//! GitHub against the fake: each operation's happy path and error paths, tokens only on
//! their own hosts (also across redirects, with two fakes), the gh hosts.yml parser.

use std::time::Duration;

use mlres_fakehf::FakeHf;
use mlres_fakehf::research_code::{
    GITHUB_BAD_TOKEN, GITHUB_CONTROL_FILE, GITHUB_CONTROL_REPO, LARGE_FILE,
};
use mlres_research::github::{self, OwnerKind, RepoRef};
use mlres_research::{Cache, Endpoints, Fetcher, ResearchError, Secrets, docs, hubsearch};
use proptest::prelude::*;

use crate::code_support::*;

fn trl() -> RepoRef {
    RepoRef::parse("huggingface/trl").unwrap()
}

fn set_control(f: &FakeHf, json: &str) {
    f.state().seed_file(
        "models",
        GITHUB_CONTROL_REPO,
        GITHUB_CONTROL_FILE,
        json.as_bytes(),
    );
}

#[test]
fn find_examples_ranks_example_scripts_for_the_query_anonymously() {
    let fake = fake();
    let f = anonymous(&fake);
    let ex = github::find_examples(&f, &trl(), "dpo", 10).unwrap();
    assert!(ex.repo_found);
    assert_eq!(ex.default_branch.as_deref(), Some("main"));
    assert_eq!(ex.examples[0].path, "examples/scripts/dpo.py", "{ex:#?}");
    assert!(
        ex.examples.iter().all(|e| e.matched == vec!["dpo"]),
        "{ex:#?}"
    );
    assert!(
        !ex.examples.iter().any(|e| e.path.starts_with("trl/")),
        "library code is not an example"
    );
    assert_eq!(
        ex.examples[0].html_url,
        "https://github.com/huggingface/trl/blob/main/examples/scripts/dpo.py"
    );
    assert!(
        ex.description
            .as_ref()
            .unwrap()
            .text
            .contains("reinforcement")
    );
    // Anonymous: works, and says what the quota is.
    assert!(!ex.quota.authenticated);
    assert!(ex.quota.note.as_deref().unwrap().contains("60"));
    assert_eq!(ex.quota.limit, Some(60));
    assert!(ex.quota.remaining.is_some());
    // No query: every example, scripts and the notebook among them.
    let all = github::find_examples(&f, &trl(), "", 50).unwrap();
    let paths: Vec<&str> = all.examples.iter().map(|e| e.path.as_str()).collect();
    for p in [
        "examples/scripts/sft.py",
        "examples/scripts/grpo.py",
        "examples/notebooks/sft_trl_lora_qlora.ipynb",
    ] {
        assert!(paths.contains(&p), "{paths:?}");
    }
    // Words that match nothing: the unfiltered list, flagged.
    let none = github::find_examples(&f, &trl(), "zzzunknown", 5).unwrap();
    assert!(none.query_unmatched && !none.examples.is_empty());
    // REST with GitHub's media type, no token.
    for r in log(&fake).iter().filter(|r| r.path.starts_with("/github/")) {
        assert_eq!(r.accept.as_deref(), Some(github::ACCEPT_JSON), "{r:?}");
        assert!(!r.auth, "{r:?}");
    }
}

#[test]
fn a_missing_repository_answers_with_suggestions() {
    let fake = fake();
    let f = anonymous(&fake);
    let ex = github::find_examples(&f, &RepoRef::parse("huggingface/alignment").unwrap(), "", 5)
        .unwrap();
    assert!(!ex.repo_found && ex.examples.is_empty());
    assert_eq!(
        ex.suggestions[0].full_name, "huggingface/alignment-handbook",
        "{ex:#?}"
    );
    assert!(log(&fake).iter().any(|r| {
        r.path
            .starts_with("/github/search/repositories?q=org:huggingface alignment")
    }));
    // The other operations say not found, typed.
    let e = github::list_tree(
        &f,
        &RepoRef::parse("nobody/nothing").unwrap(),
        None,
        None,
        10,
    )
    .unwrap_err();
    assert!(
        matches!(e, ResearchError::NotFound(ref m) if m.contains("Not Found")),
        "{e}"
    );
}

#[test]
fn read_file_decodes_base64_converts_notebooks_fetches_large_files_raw_and_windows_lines() {
    let fake = fake();
    let f = with_tokens(&fake, None);
    let sft = github::read_file(&f, &trl(), "examples/scripts/sft.py", None, None, None).unwrap();
    assert!(sft.content.text.contains("SFTTrainer("), "{sft:#?}");
    assert!(!sft.fetched_raw && !sft.notebook && !sft.more_lines);
    assert_eq!((sft.line_start, sft.line_end), (1, sft.total_lines));
    assert!(sft.quota.authenticated && sft.quota.note.is_none());
    assert_eq!(sft.quota.limit, Some(5000));
    // A window.
    let w = github::read_file(
        &f,
        &trl(),
        "examples/scripts/sft.py",
        Some("main"),
        Some(3),
        Some(5),
    )
    .unwrap();
    let expected: Vec<&str> = sft.content.text.lines().skip(2).take(3).collect();
    assert_eq!(w.content.text, expected.join("\n"));
    assert!(w.more_lines);
    assert!(
        w.content.source.contains("@main lines 3-5"),
        "{}",
        w.content.source
    );
    // A notebook: markdown cells, fenced code, no outputs.
    let nb = github::read_file(
        &f,
        &trl(),
        "examples/notebooks/sft_trl_lora_qlora.ipynb",
        None,
        None,
        None,
    )
    .unwrap();
    assert!(nb.notebook);
    assert!(
        nb.content
            .text
            .starts_with("# Supervised fine-tuning with LoRA")
    );
    assert!(
        nb.content
            .text
            .contains("```python\nfrom peft import LoraConfig")
    );
    assert!(!nb.content.text.contains("trainable params"));
    // A large file: `encoding: none`, then the raw media type; 300 lines by default.
    let big = github::read_file(&f, &trl(), LARGE_FILE, None, None, None).unwrap();
    assert!(big.fetched_raw);
    assert_eq!((big.line_start, big.line_end), (1, 300));
    assert!(big.total_lines > 300 && big.more_lines);
    assert_eq!(big.content.text.lines().count(), 300);
    let raw: Vec<_> = log(&fake)
        .into_iter()
        .filter(|r| r.path.contains("large_sweep_config.py"))
        .collect();
    assert_eq!(raw.len(), 2, "{raw:?}");
    assert_eq!(raw[1].accept.as_deref(), Some(github::ACCEPT_RAW));
    // Errors: a directory, a missing file, an unknown ref, a window past the end.
    let e = github::read_file(&f, &trl(), "examples/scripts", None, None, None).unwrap_err();
    assert!(
        matches!(e, ResearchError::Usage(ref m) if m.contains("directory")),
        "{e}"
    );
    let e = github::read_file(&f, &trl(), "examples/nope.py", None, None, None).unwrap_err();
    assert!(matches!(e, ResearchError::NotFound(_)), "{e}");
    let e = github::read_file(&f, &trl(), "README.md", Some("v9"), None, None).unwrap_err();
    assert!(
        matches!(e, ResearchError::NotFound(ref m) if m.contains("No commit found")),
        "{e}"
    );
    let e = github::read_file(&f, &trl(), "README.md", None, Some(500), None).unwrap_err();
    assert!(matches!(e, ResearchError::Usage(_)), "{e}");
    let e = github::read_file(&f, &trl(), "../secrets", None, None, None).unwrap_err();
    assert!(matches!(e, ResearchError::Usage(_)), "{e}");
}

#[test]
fn tree_lists_under_a_prefix() {
    let fake = fake();
    let f = anonymous(&fake);
    let t = github::list_tree(&f, &trl(), None, Some("examples/scripts/"), 100).unwrap();
    assert_eq!(t.git_ref, "main");
    let paths: Vec<&str> = t.entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "examples/scripts",
            "examples/scripts/dpo.py",
            "examples/scripts/grpo.py",
            "examples/scripts/reward_modeling.py",
            "examples/scripts/sft.py"
        ]
    );
    assert_eq!(t.entries[0].kind, "tree");
    assert!(t.entries[1].size.unwrap() > 100);
    let all = github::list_tree(&f, &trl(), Some("main"), None, 3).unwrap();
    assert_eq!(all.entries.len(), 3);
    assert!(all.total > 10);
    let e = github::list_tree(&f, &trl(), Some("no-such-branch"), None, 3).unwrap_err();
    assert!(matches!(e, ResearchError::NotFound(_)), "{e}");
}

#[test]
fn owner_repositories_page_until_empty_or_the_limit() {
    let fake = fake();
    let f = anonymous(&fake);
    let org = github::list_repos(&f, "huggingface", OwnerKind::Auto, None, false, 100).unwrap();
    assert_eq!(org.kind, "org");
    assert_eq!(org.repos.len(), 5);
    let pages: Vec<String> = log(&fake)
        .into_iter()
        .map(|r| r.path)
        .filter(|p| p.starts_with("/github/orgs/huggingface/repos"))
        .collect();
    assert_eq!(pages.len(), 2, "page 1, then an empty page 2: {pages:?}");
    assert!(pages[1].contains("page=2"));
    // A description with an injection string is wrapped and flagged.
    let bait = org
        .repos
        .iter()
        .find(|r| r.name == "trl-examples-archive")
        .unwrap();
    assert!(!bait.description.as_ref().unwrap().injections.is_empty());
    // A user (the org route 404s first), sorting, the limit.
    let user = github::list_repos(
        &f,
        "octocat",
        OwnerKind::Auto,
        Some(github::RepoSort::Created),
        true,
        1,
    )
    .unwrap();
    assert_eq!(user.kind, "user");
    assert_eq!(user.repos.len(), 1);
    assert_eq!(user.repos[0].name, "Spoon-Knife");
    let e = github::list_repos(&f, "octocat", OwnerKind::Org, None, false, 5).unwrap_err();
    assert!(matches!(e, ResearchError::NotFound(_)), "{e}");
    let e = github::list_repos(&f, "no-such-owner", OwnerKind::Auto, None, false, 5).unwrap_err();
    assert!(matches!(e, ResearchError::NotFound(_)), "{e}");
    assert!(matches!(
        github::list_repos(&f, "a/b", OwnerKind::Auto, None, false, 5),
        Err(ResearchError::Usage(_))
    ));
}

#[test]
fn repository_search_and_the_code_search_refusal() {
    let fake = fake();
    let f = anonymous(&fake);
    let r = github::search_repos(&f, "rlhf", 10).unwrap();
    let names: Vec<&str> = r.repos.iter().map(|r| r.full_name.as_str()).collect();
    assert_eq!(names, ["huggingface/trl", "huggingface/alignment-handbook"]);
    assert_eq!(r.total_count, Some(2));
    assert!(r.repos[0].stars > r.repos[1].stars);
    assert!(matches!(
        github::search_repos(&f, "  ", 10),
        Err(ResearchError::Usage(_))
    ));
    let e = github::code_search(&f, "SFTTrainer").unwrap_err();
    assert!(
        matches!(e, ResearchError::Usage(ref m) if m.contains("requires authentication")),
        "{e}"
    );
    assert!(!log(&fake).iter().any(|r| r.path.contains("/search/code")));
}

#[test]
fn rate_limits_and_bad_tokens_are_typed_errors() {
    let fake = fake();
    let f = anonymous(&fake);
    // Primary limit as a 403 with an exhausted quota: the reset time comes back.
    set_control(
        &fake,
        r#"{"rate_limited": 403, "rate_limited_count": 1, "reset_in": 1800}"#,
    );
    let e = github::search_repos(&f, "trl", 5).unwrap_err();
    match e {
        ResearchError::RateLimited { retry_after, .. } => {
            let s = retry_after.unwrap().as_secs();
            assert!((1790..=1800).contains(&s), "{s}");
        }
        other => panic!("{other}"),
    }
    // As a 429 (the fetcher's retry sees the reset is an hour away and stops at once).
    set_control(&fake, r#"{"rate_limited": 429, "rate_limited_count": 5}"#);
    // Every wait the fetcher asks for is recorded instead of slept.
    #[derive(Clone, Default)]
    struct Waits(std::sync::Arc<std::sync::Mutex<Vec<Duration>>>);
    impl mlres_research::fetch::Sleeper for Waits {
        fn sleep(&self, d: Duration) {
            self.0.lock().unwrap().push(d);
        }
    }
    let waits = Waits::default();
    let g =
        Fetcher::new(endpoints(&fake), Secrets::default(), None).sleeper(Box::new(waits.clone()));
    let e = github::find_examples(&g, &trl(), "sft", 5).unwrap_err();
    assert!(
        matches!(e, ResearchError::RateLimited { retry_after: Some(d), .. } if d > Duration::from_secs(3000)),
        "{e}"
    );
    let asked = waits.0.lock().unwrap().clone();
    assert!(
        asked.iter().all(|d| *d < Duration::from_secs(60)),
        "no hour-long wait: {asked:?}"
    );
    // A secondary limit: 403 with Retry-After.
    set_control(
        &fake,
        r#"{"rate_limited": 403, "rate_limited_count": 1, "secondary": true}"#,
    );
    let e = github::list_tree(&f, &trl(), Some("main"), None, 5).unwrap_err();
    assert!(
        matches!(e, ResearchError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(120)),
        "{e}"
    );
    // The anonymous quota runs out by itself.
    set_control(&fake, r#"{"anonymous_limit": 1}"#);
    let e = github::search_repos(&f, "peft", 5).unwrap_err();
    assert!(matches!(e, ResearchError::RateLimited { .. }), "{e}");
    // A token GitHub rejects: 401, typed, naming where the token came from, never its value.
    set_control(&fake, "{}");
    let bad = Fetcher::with_pacing(
        endpoints(&fake),
        Secrets {
            github_token: Some(GITHUB_BAD_TOKEN.into()),
            ..Secrets::default()
        },
        None,
        quick(),
    );
    let e = github::search_repos(&bad, "trl", 5).unwrap_err();
    assert!(
        matches!(e, ResearchError::Api { status: 401, ref message, .. } if message.contains("Bad credentials") && message.contains("GITHUB_TOKEN")),
        "{e}"
    );
    assert!(!e.to_string().contains(GITHUB_BAD_TOKEN));
}

#[test]
fn server_errors_malformed_and_huge_bodies_are_typed() {
    let fake = fake();
    let f = anonymous(&fake);
    // A 502 (no retries configured): GitHub's status, typed.
    fake.state().inject(mlres_fakehf::Injection {
        method: "GET".into(),
        path_prefix: "/github/search/repositories".into(),
        status: 502,
        count: 1,
        location: None,
        message: Some("Server Error".into()),
    });
    let e = github::search_repos(&f, "trl", 5).unwrap_err();
    assert!(matches!(e, ResearchError::Api { status: 502, .. }), "{e}");
    // With retries, a transient 503 is retried and the call succeeds.
    fake.state().inject(mlres_fakehf::Injection {
        method: "GET".into(),
        path_prefix: "/github/search/repositories".into(),
        status: 503,
        count: 1,
        location: None,
        message: None,
    });
    let patient = Fetcher::with_pacing(
        endpoints(&fake),
        Secrets::default(),
        None,
        mlres_research::Pacing {
            retries: 2,
            backoff: Duration::from_millis(10),
            ..mlres_research::Pacing::default()
        },
    );
    assert!(github::search_repos(&patient, "trl", 5).is_ok());
    // Malformed JSON.
    set_control(&fake, r#"{"body": "{\"items\": [", "body_count": 1}"#);
    let e = github::search_repos(&f, "trl", 5).unwrap_err();
    assert!(matches!(e, ResearchError::Decode { .. }), "{e}");
    // A body over the cap is refused, not cut.
    set_control(
        &fake,
        r#"{"body": "0123456789abcdef", "body_repeat": 600000, "body_count": 1}"#,
    );
    let e = github::list_tree(&f, &trl(), Some("main"), None, 5).unwrap_err();
    assert!(matches!(e, ResearchError::TooLarge { .. }), "{e}");
}

/// Two fakes: GitHub on one, HF on the other; both canary tokens configured. Every request
/// GitHub's fake saw carried the GitHub token or nothing, every request HF's saw the HF token
/// or nothing, also when each redirects to the other; the outputs and the cache hold neither.
#[test]
fn each_token_reaches_only_its_own_host_even_across_redirects() {
    let gh = fake();
    let hf = fake();
    let swept = mlres_testkit::SweptDir::new_in(env!("CARGO_TARGET_TMPDIR"));
    let endpoints = Endpoints {
        hf: hf.url(),
        github: format!("{}/github", gh.url()),
        ..Endpoints::default()
    };
    let f = Fetcher::with_pacing(
        endpoints,
        canaries(),
        Some(Cache::new(swept.path().join("cache"))),
        quick(),
    );
    // GitHub redirects a file to the HF host (which serves the same fake routes).
    gh.state().inject(mlres_fakehf::Injection {
        method: "GET".into(),
        path_prefix: "/github/repos/huggingface/trl/contents/README.md".into(),
        status: 302,
        count: 1,
        location: Some(format!(
            "{}/github/repos/huggingface/trl/contents/README.md",
            hf.url()
        )),
        message: None,
    });
    // HF redirects a docs page to the GitHub host.
    hf.state().inject(mlres_fakehf::Injection {
        method: "GET".into(),
        path_prefix: "/docs/trl/dpo_trainer.md".into(),
        status: 302,
        count: 1,
        location: Some(format!("{}/docs/trl/dpo_trainer.md", gh.url())),
        message: None,
    });
    // The HF fake knows the HF canary (so the Hub search succeeds with it).
    hf.state().add_token(mlres_fakehf::TokenConfig {
        token: HF_CANARY.into(),
        user: "alice".into(),
        orgs: vec![],
        role: "read".into(),
        fine_grained: None,
        display_name: "canary".into(),
    });
    let mut outputs = Vec::new();
    let readme = github::read_file(&f, &trl(), "README.md", None, None, None).unwrap();
    assert!(readme.content.text.contains("TRL"));
    outputs.push(serde_json::to_string(&readme).unwrap());
    outputs.push(
        serde_json::to_string(&github::find_examples(&f, &trl(), "grpo", 5).unwrap()).unwrap(),
    );
    outputs.push(serde_json::to_string(&github::search_repos(&f, "trl", 5).unwrap()).unwrap());
    let page = docs::fetch_page(&f, "trl/dpo_trainer").unwrap();
    assert!(page.content.text.contains("beta"));
    outputs.push(serde_json::to_string(&page).unwrap());
    outputs.push(
        serde_json::to_string(&docs::explore(&f, "trl", Some("sft packing"), 3).unwrap()).unwrap(),
    );
    outputs
        .push(serde_json::to_string(&docs::find_api(&f, "list models", None, 3).unwrap()).unwrap());
    outputs.push(
        serde_json::to_string(
            &hubsearch::search(
                &f,
                &hubsearch::HubQuery {
                    task: Some("text-generation".into()),
                    ..Default::default()
                },
            )
            .unwrap(),
        )
        .unwrap(),
    );
    for (i, o) in outputs.iter().enumerate() {
        assert!(
            !o.contains(HF_CANARY) && !o.contains(GH_CANARY),
            "output {i}: {o}"
        );
        swept.record(&format!("output-{i}"), o.as_bytes());
    }
    let (gh_sha, hf_sha) = (bearer_sha(GH_CANARY), bearer_sha(HF_CANARY));
    let gh_log = log(&gh);
    let hf_log = log(&hf);
    // Each fake saw requests for both kinds of routes (through the redirects).
    assert!(
        gh_log
            .iter()
            .any(|r| r.path.starts_with("/docs/trl/dpo_trainer.md"))
    );
    assert!(hf_log.iter().any(|r| {
        r.path
            .starts_with("/github/repos/huggingface/trl/contents/README.md")
    }));
    for r in &gh_log {
        assert_ne!(
            r.auth_sha256.as_deref(),
            Some(hf_sha.as_str()),
            "HF token at GitHub: {r:?}"
        );
        if r.path.starts_with("/github/") {
            assert_eq!(r.auth_sha256.as_deref(), Some(gh_sha.as_str()), "{r:?}");
        } else {
            assert!(!r.auth, "a redirected request carried a token: {r:?}");
        }
    }
    for r in &hf_log {
        assert_ne!(
            r.auth_sha256.as_deref(),
            Some(gh_sha.as_str()),
            "GitHub token at HF: {r:?}"
        );
        if r.path.starts_with("/github/") {
            assert!(!r.auth, "a redirected request carried a token: {r:?}");
        }
    }
    // The HF token did go to HF where it belongs (docs and search), not to the OpenAPI spec.
    assert!(hf_log.iter().any(|r| r.path.starts_with("/docs/trl/index")
        && r.auth_sha256.as_deref() == Some(hf_sha.as_str())));
    assert!(
        hf_log
            .iter()
            .any(|r| r.path.starts_with("/.well-known/openapi.json") && !r.auth)
    );
    let s = swept.sweep().unwrap();
    assert!(s.files > 3 && s.leaks.is_empty(), "{s:?}");
}

#[test]
fn the_cache_answers_github_offline_with_its_age() {
    let fake = fake();
    let dir = tempfile::tempdir().unwrap();
    let f = with_tokens(&fake, Some(Cache::new(dir.path())));
    let live = github::find_examples(&f, &trl(), "sft", 5).unwrap();
    assert_eq!(live.cache_age, None);
    let endpoints = endpoints(&fake);
    drop(fake);
    // The fake is gone: offline, the cache answers, saying how old the answer is.
    let off =
        Fetcher::new(endpoints.clone(), canaries(), Some(Cache::new(dir.path()))).offline(true);
    let cached = github::find_examples(&off, &trl(), "sft", 5).unwrap();
    assert_eq!(cached.examples, live.examples);
    assert!(cached.cache_age.is_some(), "{cached:?}");
    // Online but unreachable: the stale entry answers too.
    let down = Fetcher::with_pacing(endpoints, canaries(), Some(Cache::new(dir.path())), quick());
    let r = github::find_examples(&down, &trl(), "sft", 5).unwrap();
    assert!(r.cache_age.is_some());
    // What was never fetched is a typed offline error.
    let e = github::read_file(&off, &trl(), "README.md", None, None, None).unwrap_err();
    assert!(matches!(e, ResearchError::Offline { .. }), "{e}");
}

#[test]
fn gh_hosts_yml_from_a_real_shaped_file() {
    let text = "github.com:\n    users:\n        octocat:\n            oauth_token: gho_16C7e42F292c6912E7710c838347Ae178B4a\n    git_protocol: https\n    user: octocat\n";
    assert_eq!(
        github::gh_hosts_token(text, "github.com").as_deref(),
        Some("gho_16C7e42F292c6912E7710c838347Ae178B4a")
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn gh_hosts_parser_never_panics(text in ".{0,400}", host in "[a-z.]{0,20}") {
        if let Some(t) = github::gh_hosts_token(&text, &host) {
            prop_assert!(!t.is_empty());
            prop_assert!(text.lines().any(|l| l.contains("oauth_token") && l.contains(t.as_str())));
        }
    }

    #[test]
    fn gh_hosts_parser_never_panics_on_yaml_soup(
        parts in prop::collection::vec(prop::sample::select(vec![
            "github.com:", "\n", "  ", "    ", "\t", "oauth_token:", " gho_x", "users:", "user:", " a",
            "\"", "'", "#", " #c", "- ", ":", "é", "\r\n", "\"github.com\":", "oauth_token: ''",
        ]), 0..50)
    ) {
        let text: String = parts.concat();
        if let Some(t) = github::gh_hosts_token(&text, "github.com") {
            prop_assert!(!t.is_empty());
            prop_assert!(text.lines().any(|l| l.contains("oauth_token") && l.contains(t.as_str())));
        }
    }

    #[test]
    fn gh_hosts_parser_finds_the_token_in_generated_files(
        indent in 1usize..6,
        token in "gh[opsu]_[A-Za-z0-9]{10,40}",
        user in "[a-z][a-z0-9-]{0,15}",
        nested in any::<bool>(),
        quote in prop::sample::select(vec!["", "\"", "'"]),
        other_host in any::<bool>(),
    ) {
        let i = " ".repeat(indent);
        let mut text = String::new();
        if other_host {
            text.push_str(&format!("ghe.example.com:\n{i}oauth_token: not_this_one\n"));
        }
        text.push_str("github.com:\n");
        if nested {
            text.push_str(&format!("{i}users:\n{i}{i}{user}:\n{i}{i}{i}oauth_token: {quote}{token}{quote}\n"));
        } else {
            text.push_str(&format!("{i}oauth_token: {quote}{token}{quote}\n"));
        }
        text.push_str(&format!("{i}git_protocol: https\n{i}user: {user}\n"));
        prop_assert_eq!(github::gh_hosts_token(&text, "github.com"), Some(token));
    }
}
