//! The research commands as users and agents type them (`mlres github|docs|hub search`,
//! and `mlres papers` where present), against the local fake: external text comes back
//! between the markers with its warnings, the tokens go only to their own hosts, `--offline`
//! answers from the cache with its age, and bad input is a usage error that touches nothing.

use std::process::{Command, Output};

use mlres_fakehf::{FakeConfig, FakeHf, sha256_hex};
use serde_json::Value;

use crate::support::{BIN, code};

const HF_CANARY: &str = mlres_fakehf::CANARY_TOKEN;
const GH_CANARY: &str = "ghp_mlresCANARYcli0123456789abcdefGHIJ";

struct R {
    fake: FakeHf,
    tmp: mlres_testkit::SweptDir,
}

impl R {
    fn new() -> R {
        R {
            fake: FakeHf::start(FakeConfig::default()).unwrap(),
            tmp: mlres_testkit::SweptDir::new_in(env!("CARGO_TARGET_TMPDIR")),
        }
    }
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.tmp.path())
            .env("HF_ENDPOINT", self.fake.url())
            .env(
                "MLRES_GITHUB_ENDPOINT",
                format!("{}/github", self.fake.url()),
            )
            .env("HF_TOKEN", HF_CANARY)
            .env("GITHUB_TOKEN", GH_CANARY)
            .env(
                "MLRES_ARXIV_ENDPOINT",
                format!("{}/arxiv-export", self.fake.url()),
            )
            .env(
                "MLRES_ARXIV_HTML_ENDPOINT",
                format!("{}/arxiv", self.fake.url()),
            )
            .env("MLRES_AR5IV_ENDPOINT", format!("{}/ar5iv", self.fake.url()))
            .env("MLRES_S2_ENDPOINT", format!("{}/s2", self.fake.url()))
            .env("MLRES_CACHE_DIR", self.tmp.path().join("cache"));
        c
    }
    fn run(&self, args: &[&str]) -> Output {
        let o = self.cmd(args).output().unwrap();
        let label = args.iter().take(3).copied().collect::<Vec<_>>().join(" ");
        self.tmp.record(&format!("{label} stdout"), &o.stdout);
        self.tmp.record(&format!("{label} stderr"), &o.stderr);
        o
    }
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "{args:?}: {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }
    fn auth_seen(&self) -> Vec<(String, Option<String>)> {
        self.fake
            .state()
            .lock()
            .requests
            .iter()
            .map(|r| (r.path.clone(), r.auth_sha256.clone()))
            .collect()
    }
}

#[test]
fn github_docs_and_hub_search_answer_with_external_text_wrapped() {
    let r = R::new();
    let out = r.ok(&["github", "examples", "huggingface/trl", "dpo"]);
    assert!(out.contains("dpo.py"), "{out}");
    let v = r.json(&[
        "github",
        "read",
        "huggingface/trl",
        "examples/scripts/dpo.py",
        "--lines",
        "1:5",
        "--json",
    ]);
    assert_eq!(v["line_start"], 1);
    assert!(
        v["content"]["text"].is_string() && v["content"]["injections"].is_array(),
        "{v}"
    );
    let text = r.ok(&[
        "github",
        "read",
        "huggingface/trl",
        "examples/scripts/dpo.py",
    ]);
    assert!(
        text.contains(mlres_research::untrusted::BEGIN)
            && text.contains(mlres_research::untrusted::END),
        "{text}"
    );

    // The docs page with an injection: flagged, wrapped, the token-shaped string redacted.
    let page = r.ok(&["docs", "fetch", "trl/community_tutorials"]);
    assert!(
        page.contains("looks like instructions to an AI agent"),
        "{page}"
    );
    assert!(
        !page.contains("hf_LeakedTokenInDocs0123456789abcdefAB"),
        "{page}"
    );
    let begin = page.find(mlres_research::untrusted::BEGIN).unwrap();
    assert!(page.find("Ignore all previous").unwrap() > begin);
    let hits = r.json(&["docs", "explore", "trl", "DPO", "beta", "--json"]);
    assert!(
        hits["hits"].as_array().is_some_and(|h| !h.is_empty()),
        "{hits}"
    );

    let models = r.json(&[
        "hub",
        "search",
        "models",
        "--task",
        "text-generation",
        "--limit",
        "3",
        "--json",
    ]);
    assert!(
        models["items"]
            .as_array()
            .is_some_and(|a| !a.is_empty() && a.len() <= 3),
        "{models}"
    );

    // Each token went only to its own routes: the GitHub token to /github, the HF token
    // never there.
    let (hf, gh) = (
        sha256_hex(format!("Bearer {HF_CANARY}").as_bytes()),
        sha256_hex(format!("Bearer {GH_CANARY}").as_bytes()),
    );
    for (path, auth) in r.auth_seen() {
        if path.starts_with("/github") {
            assert_ne!(
                auth.as_deref(),
                Some(hf.as_str()),
                "HF token sent to GitHub: {path}"
            );
        } else {
            assert_ne!(
                auth.as_deref(),
                Some(gh.as_str()),
                "GitHub token sent to HF: {path}"
            );
        }
    }
}

#[test]
fn offline_answers_from_the_cache_with_its_age_and_bad_input_is_a_usage_error() {
    let r = R::new();
    r.ok(&["github", "tree", "huggingface/trl", "--prefix", "examples"]);
    let before = r.auth_seen().len();
    let out = r.ok(&[
        "github",
        "tree",
        "huggingface/trl",
        "--prefix",
        "examples",
        "--offline",
    ]);
    assert!(out.starts_with("(from the cache, "), "{out}");
    assert_eq!(r.auth_seen().len(), before, "--offline touched the network");
    let o = r.run(&["github", "repos", "huggingface", "--offline"]);
    assert_eq!(code(&o), 1, "nothing cached: an error");
    assert!(String::from_utf8_lossy(&o.stderr).contains("offline and nothing cached"));
    for (args, what) in [
        (
            vec![
                "github",
                "read",
                "huggingface/trl",
                "x.py",
                "--lines",
                "a:b",
            ],
            "bad --lines",
        ),
        (vec!["github", "examples", "not a repo"], "bad repo"),
        (
            vec!["docs", "explore", "no-such-library"],
            "unknown library",
        ),
        (
            vec!["hub", "search", "models", "--sort", "best"],
            "bad sort",
        ),
        (vec!["hub", "search", "spaces"], "bad kind"),
    ] {
        let n = r.auth_seen().len();
        let o = r.run(&args);
        assert_eq!(
            code(&o),
            2,
            "{what}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(r.auth_seen().len(), n, "{what} sent a request");
    }
}

#[test]
fn papers_as_the_researcher_agent_is_told_to_type_them() {
    let r = R::new();
    // The exact commands plugin/agents/researcher.md gives (against the fake's papers).
    let out = r.ok(&["papers", "search", "direct preference optimization"]);
    assert!(out.contains("2305.18290"), "{out}");
    let v = r.json(&["papers", "search", "lora", "--source", "arxiv", "--json"]);
    assert!(v["papers"].as_array().is_some_and(|p| !p.is_empty()), "{v}");
    r.ok(&["papers", "trending"]);
    let d = r.json(&["papers", "details", "2305.18290", "--json"]);
    assert!(
        d.to_string().contains("Direct Preference Optimization"),
        "{d}"
    );
    let outline = r.json(&["papers", "read", "2305.18290", "--json"]);
    assert!(outline.to_string().contains("Experiments"), "{outline}");
    let sec = r.ok(&["papers", "read", "2305.18290", "--section", "Experiments"]);
    assert!(sec.contains(mlres_research::untrusted::BEGIN), "{sec}");
    for args in [
        vec!["papers", "citations", "2305.18290"],
        vec!["papers", "references", "2305.18290"],
        vec!["papers", "recommend", "2305.18290"],
        vec!["papers", "snippets", "2305.18290", "learning rate"],
        vec!["papers", "linked", "2305.18290", "--kind", "models"],
    ] {
        r.ok(&args);
    }
    // A paper whose text carries an injection: flagged, between the markers, the bidi
    // override shown.
    let inj = r.ok(&["papers", "read", "2501.00001", "--section", "1"]);
    assert!(
        inj.contains("looks like instructions to an AI agent"),
        "{inj}"
    );
    assert!(inj.contains("⟨U+202E⟩"), "{inj}");
    // Every occurrence of the injected sentence sits inside a BEGIN … END pair.
    let lower = inj.to_lowercase();
    let (begin, end) = (
        mlres_research::untrusted::BEGIN.to_lowercase(),
        mlres_research::untrusted::END.to_lowercase(),
    );
    let mut found = 0;
    for (i, _) in lower.match_indices("ignore all previous") {
        found += 1;
        let b = lower[..i].rfind(&begin).expect("a begin marker before it");
        assert!(
            !lower[b..i].contains(&end),
            "outside the markers at {i}: {inj}"
        );
        assert!(lower[i..].contains(&end), "no end marker after it: {inj}");
    }
    assert!(found > 0, "{inj}");
    // arXiv and Semantic Scholar never saw the HF token.
    let hf = sha256_hex(format!("Bearer {HF_CANARY}").as_bytes());
    for (path, auth) in r.auth_seen() {
        if path.starts_with("/arxiv") || path.starts_with("/ar5iv") || path.starts_with("/s2") {
            assert_ne!(
                auth.as_deref(),
                Some(hf.as_str()),
                "HF token sent to {path}"
            );
        }
    }
    // Bad ids and flags are usage errors that send nothing.
    for args in [
        vec!["papers", "details", "../../etc/passwd"],
        vec!["papers", "search", "x", "--source", "google"],
        vec!["papers", "linked", "2305.18290", "--kind", "models;rm"],
        vec!["papers", "search"],
    ] {
        let n = r.auth_seen().len();
        let o = r.run(&args);
        assert_eq!(
            code(&o),
            2,
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(r.auth_seen().len(), n, "{args:?} sent a request");
    }
}
