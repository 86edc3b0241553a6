//! `mlres hub` against the in-process fake Hub: whoami, files, repo create, and every
//! refusal (exit 3, reason printed, nothing written on the fake).

use std::process::Output;

use mlres_fakehf::{CANARY_TOKEN, FakeConfig, FakeHf};

use crate::support::{Env, Fast, code, stderr};

struct Hub {
    env: Env,
    fake: FakeHf,
}

fn setup(allow_deletes: bool) -> Hub {
    setup_with(allow_deletes, "")
}

fn setup_with(allow_deletes: bool, extra_envelope: &str) -> Hub {
    let env = Env::new();
    let program = Fast::default()
        .program()
        .replace(
            "output_repos: []",
            "output_repos: [alice/results, datasets/alice/data-*]",
        )
        .replace(
            "allow_deletes: false",
            &format!("allow_deletes: {allow_deletes}\n{extra_envelope}"),
        );
    env.write_program(&program);
    env.approve();
    let fake = FakeHf::start(FakeConfig {
        work_root: Some(env!("CARGO_TARGET_TMPDIR").into()),
        ..FakeConfig::default()
    })
    .unwrap();
    fake.state()
        .seed_file("models", "alice/results", "kept.txt", b"kept\n");
    Hub { env, fake }
}

impl Hub {
    fn run(&self, args: &[&str]) -> Output {
        let out = self
            .env
            .cmd()
            .env("HF_ENDPOINT", self.fake.url())
            .env("HF_TOKEN", CANARY_TOKEN)
            .env("HF_HOME", self.env.path().join("hfhome"))
            .env_remove("HUGGING_FACE_HUB_TOKEN")
            .env_remove("HF_TOKEN_PATH")
            .env_remove("HF_HUB_DISABLE_IMPLICIT_TOKEN")
            .current_dir(&self.env.project)
            .args(args)
            .output()
            .unwrap();
        self.env.record(args, &out);
        for s in [&out.stdout, &out.stderr] {
            assert!(
                !String::from_utf8_lossy(s).contains("mlresCANARY"),
                "canary leaked by {args:?}"
            );
        }
        out
    }

    fn commits(&self) -> usize {
        self.fake.state().snapshot()["requests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| {
                r["method"] == "POST"
                    && (r["path"].as_str().unwrap().contains("/commit/")
                        || r["path"] == "/api/repos/create")
            })
            .count()
    }

    fn refused(&self, args: &[&str], reason: &str) {
        let before = self.commits();
        let out = self.run(args);
        let err = stderr(&out);
        assert_eq!(code(&out), 3, "{args:?}: {err}");
        assert!(err.contains(reason), "{args:?}: {err}");
        assert_eq!(self.commits(), before, "{args:?} wrote to the Hub");
    }
}

fn no_canary_in_state(h: &Hub) {
    for entry in walk(&h.env.state) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        assert!(
            !bytes.windows(11).any(|w| w == b"mlresCANARY"),
            "canary in {}",
            entry.display()
        );
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn whoami_reports_user_scopes_source_and_breadth() {
    let h = setup(false);
    let out = h.run(&["hub", "whoami"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(text.contains("user: alice"), "{text}");
    assert!(text.contains("acme-ml"), "{text}");
    assert!(text.contains("token role: write"), "{text}");
    assert!(text.contains("HF_TOKEN"), "{text}");
    assert!(text.contains("broader than the envelope needs"), "{text}");
    let out = h.run(&["hub", "whoami", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["user"], "alice");
    assert_eq!(v["token_role"], "write");
    assert!(!v["broader_than_envelope"].as_array().unwrap().is_empty());
}

#[test]
fn upload_list_read_and_create_in_scope() {
    let h = setup(false);
    std::fs::write(h.env.project.join("report.md"), "# results\n").unwrap();
    let out = h.run(&["hub", "files", "upload", "alice/results", "report.md"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = h.run(&["hub", "files", "list", "alice/results"]);
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        listing.contains("report.md") && listing.contains("kept.txt"),
        "{listing}"
    );
    let out = h.run(&["hub", "files", "read", "alice/results", "report.md"]);
    assert_eq!(out.stdout, b"# results\n");
    let out = h.run(&["hub", "repo", "create", "datasets/alice/data-1"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let snap = h.fake.state().snapshot();
    let repo = snap["repos"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "alice/data-1")
        .unwrap()
        .clone();
    assert_eq!(repo["private"], true);
    // Each write is in the ledger.
    let events = h.env.ok(&["ledger", "events", "--json"]);
    assert_eq!(events.matches("hub_write").count(), 2, "{events}");
    no_canary_in_state(&h);
}

#[test]
fn refusals_exit_3_and_write_nothing() {
    let h = setup(false);
    let p = &h.env.project;
    std::fs::write(p.join("ok.txt"), "fine\n").unwrap();
    std::fs::write(p.join("kept.txt"), "new\n").unwrap();
    std::fs::write(p.join(".env"), "A=1\n").unwrap();
    std::fs::write(p.join("notes.txt"), format!("token {CANARY_TOKEN}\n")).unwrap();
    // A credential-bearing file the test plants to prove it is never uploaded.
    h.env.tmp.allow(p.join("notes.txt"));
    std::fs::write(p.join("id_rsa"), "x\n").unwrap();
    let outside = h.env.path().join("outside.txt");
    std::fs::write(&outside, "outside\n").unwrap();
    std::os::unix::fs::symlink(&outside, p.join("link.txt")).unwrap();

    h.refused(
        &["hub", "files", "upload", "alice/other", "ok.txt"],
        "out of scope",
    );
    h.refused(
        &["hub", "files", "delete", "alice/results", "kept.txt"],
        "allow_deletes",
    );
    h.refused(
        &["hub", "files", "upload", "alice/results", "kept.txt"],
        "counts as a delete",
    );
    h.refused(
        &["hub", "files", "upload", "alice/results", ".env"],
        "credential",
    );
    h.refused(
        &["hub", "files", "upload", "alice/results", "notes.txt"],
        "Hugging Face token",
    );
    h.refused(
        &["hub", "files", "upload", "alice/results", "id_rsa"],
        "SSH private key",
    );
    h.refused(
        &[
            "hub",
            "files",
            "upload",
            "alice/results",
            outside.to_str().unwrap(),
        ],
        "outside the project",
    );
    h.refused(
        &["hub", "files", "upload", "alice/results", "link.txt"],
        "outside the project",
    );
    h.refused(&["hub", "repo", "create", "alice/results2"], "out of scope");
    h.refused(
        &["hub", "repo", "create", "alice/results", "--public"],
        "public_repos",
    );
    no_canary_in_state(&h);
}

#[test]
fn delete_allowed_when_the_envelope_says_so() {
    let h = setup(true);
    let out = h.run(&["hub", "files", "delete", "alice/results", "kept.txt"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let snap = h.fake.state().snapshot();
    assert!(snap["repos"][0]["files"].as_array().unwrap().is_empty());
}

#[test]
fn writes_need_an_approved_program() {
    let h = setup(false);
    let prog = std::fs::read_to_string(h.env.project.join("program.md")).unwrap();
    h.env
        .write_program(&prog.replace("max_jobs: 6", "max_jobs: 7"));
    std::fs::write(h.env.project.join("ok.txt"), "fine\n").unwrap();
    h.refused(
        &["hub", "files", "upload", "alice/results", "ok.txt"],
        "approve",
    );
}

#[test]
fn uploads_from_a_job_work_dir_but_not_elsewhere_in_the_state_dir() {
    let h = setup(false);
    let work = h.env.state.join("attempts").join("a1").join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("metrics.json"), "{}").unwrap();
    std::fs::write(h.env.state.join("loose.txt"), "x").unwrap();
    let w = work.join("metrics.json");
    let out = h.run(&[
        "hub",
        "files",
        "upload",
        "alice/results",
        w.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let loose = h.env.state.join("loose.txt");
    h.refused(
        &[
            "hub",
            "files",
            "upload",
            "alice/results",
            loose.to_str().unwrap(),
        ],
        "outside the project",
    );
}

#[test]
fn strict_token_scope_refuses_a_broad_token() {
    let h = setup_with(false, "token_scope: strict");
    std::fs::write(h.env.project.join("ok.txt"), "fine\n").unwrap();
    let out = h.run(&["hub", "whoami"]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("token_scope: strict"),
        "{}",
        stderr(&out)
    );
    h.refused(
        &["hub", "files", "upload", "alice/results", "ok.txt"],
        "broader",
    );
    h.refused(&["hub", "repo", "create", "alice/results"], "broader");
}

#[test]
fn strict_token_scope_accepts_a_fitted_fine_grained_token() {
    let h = setup_with(false, "token_scope: strict");
    h.fake.state().add_token(mlres_fakehf::TokenConfig {
        token: "hf_mlresCANARYfitted0123456789abcdef".into(),
        user: "alice".into(),
        orgs: vec!["acme-ml".into()],
        role: "fineGrained".into(),
        fine_grained: Some(serde_json::json!({
            "global": [],
            "scoped": [{"entity": {"type": "model", "name": "alice/results"}, "permissions": ["repo.write"]}]
        })),
        display_name: "fitted".into(),
    });
    std::fs::write(h.env.project.join("ok.txt"), "fine\n").unwrap();
    let out = h
        .env
        .cmd()
        .env("HF_ENDPOINT", h.fake.url())
        .env("HF_TOKEN", "hf_mlresCANARYfitted0123456789abcdef")
        .current_dir(&h.env.project)
        .args(["hub", "files", "upload", "alice/results", "ok.txt"])
        .output()
        .unwrap();
    h.env.record(&["hub", "files", "upload"], &out);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("mlresCANARY"));
}

#[test]
fn public_repo_when_the_envelope_allows_it() {
    let h = setup_with(false, "public_repos: true");
    let out = h.run(&["hub", "repo", "create", "alice/results", "--public"]);
    // alice/results was seeded, so the Hub answers 409: the request was allowed through.
    assert_ne!(code(&out), 3, "{}", stderr(&out));
    let out = h.run(&["hub", "repo", "create", "datasets/alice/data-2", "--public"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let snap = h.fake.state().snapshot();
    let repo = snap["repos"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "alice/data-2")
        .unwrap()
        .clone();
    assert_eq!(repo["private"], false);
}
