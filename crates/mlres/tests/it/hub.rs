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

/// The secret granted to the pushed job (a canary: the sweep fails the test if it leaks).
const PUSH_GRANTED: &str = "canary-7f3a9c1e-push-0451";

/// A job that writes a checkpoint folder (a binary model, a large text file, a small config)
/// and an eval file holding the granted secret and a token it assembles at run time.
const PUSH_JOB: &str = r#"set -e
mkdir -p checkpoint
head -c 300000 /dev/urandom > checkpoint/model.bin
seq 1 40000 > checkpoint/big.txt
printf '{"hidden_size": 64}\n' > checkpoint/config.json
t=hf_CANA
t=$t'RY0123456789abcdefghijklmnopqrstuv'
printf '{"eval_accuracy": 0.9, "granted": "%s", "note": "token %s"}\n' "$MLRES_GRANTED" "$t" > eval_results.json
echo score=$1
"#;

/// An approved local campaign with `outputs:` and output repos, one finished experiment, and
/// a fake whose preupload sends files of 100 kB and more to LFS, multipart above 150 kB.
fn push_setup() -> (Hub, String) {
    let env = Env::new();
    std::fs::write(env.project.join("job.sh"), PUSH_JOB).unwrap();
    let program = Fast {
        script: "/bin/sh {code}/job.sh {x}",
        values: "[1]",
        extra_job: "code: [job.sh]\nsecrets: [MLRES_GRANTED]\noutputs: [checkpoint/, eval_results.json]",
        ..Default::default()
    }
    .program()
    .replace(
        "output_repos: []",
        "output_repos: [alice/results, datasets/alice/data-*]",
    );
    env.write_program(&program);
    env.approve();
    env.tmp.allow(env.state.join("jobs"));
    let fake = FakeHf::start(FakeConfig {
        work_root: Some(env!("CARGO_TARGET_TMPDIR").into()),
        lfs_threshold: 100_000,
        lfs_multipart_threshold: 150_000,
        lfs_chunk_size: 100_000,
        ..FakeConfig::default()
    })
    .unwrap();
    fake.state()
        .seed_file("models", "alice/results", "kept.txt", b"kept\n");
    let out = env
        .cmd()
        .env("MLRES_GRANTED", PUSH_GRANTED)
        .args([
            "exp",
            "submit",
            "--config",
            "x=1",
            "--hypothesis",
            "push",
            "--json",
        ])
        .output()
        .unwrap();
    env.record(&["exp", "submit"], &out);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["id"].to_string();
    env.ok(&["exp", "wait", &id, "--timeout", "2m"]);
    (Hub { env, fake }, id)
}

fn requests(h: &Hub) -> Vec<serde_json::Value> {
    h.fake.state().snapshot()["requests"]
        .as_array()
        .unwrap()
        .clone()
}

fn body(r: &serde_json::Value) -> serde_json::Value {
    serde_json::from_str(r["body"].as_str().unwrap()).unwrap()
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (what huggingface_hub's `b64encode` produces).
fn b64(b: &[u8]) -> String {
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = c
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, x)| n | u32::from(*x) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= c.len() {
                B64[(n >> (18 - 6 * i) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

fn unb64(s: &str) -> Vec<u8> {
    let vals: Vec<u32> = s
        .bytes()
        .filter(|c| *c != b'=')
        .map(|c| B64.iter().position(|x| *x == c).unwrap() as u32)
        .collect();
    let mut out = Vec::new();
    for q in vals.chunks(4) {
        let n = q
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, v)| n | v << (18 - 6 * i));
        for i in 0..q.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

#[test]
fn push_uploads_the_outputs_in_one_commit_with_lfs_for_large_files() {
    let (h, id) = push_setup();
    let work = walk(&h.env.state.join("jobs"))
        .into_iter()
        .find(|p| p.ends_with("work/checkpoint/model.bin"))
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let out = h.run(&["hub", "push", &id, "alice/results", "--json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let url = format!("{}/alice/results", h.fake.url());
    assert_eq!(v["url"], url.as_str());
    let modes: Vec<(String, bool)> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["lfs"].as_bool().unwrap(),
            )
        })
        .collect();
    let want = [
        ("checkpoint/big.txt", true),
        ("checkpoint/config.json", false),
        ("checkpoint/model.bin", true),
        ("eval_results.json", false),
    ];
    assert_eq!(modes, want.map(|(p, l)| (p.to_string(), l)).to_vec());

    // What landed on the Hub: every file, the binary ones byte for byte, the eval redacted.
    let (files, commit) = {
        let g = h.fake.state().lock();
        let repo = &g.repos[&("models".to_string(), "alice/results".to_string())];
        (repo.files.clone(), repo.commit.clone())
    };
    assert_eq!(v["commit"], commit.as_str());
    for (p, lfs) in want {
        let f = &files[p];
        assert_eq!(f.lfs, lfs, "{p}");
        if p != "eval_results.json" {
            assert_eq!(f.bytes, std::fs::read(work.join(p)).unwrap(), "{p}");
        }
    }
    assert!(files.contains_key("kept.txt"));
    let eval = String::from_utf8(files["eval_results.json"].bytes.clone()).unwrap();
    assert!(
        !eval.contains("canary") && !eval.contains("CANARY"),
        "{eval}"
    );
    assert!(
        eval.contains("[REDACTED:MLRES_GRANTED]") && eval.contains("[REDACTED:huggingface_token]"),
        "{eval}"
    );

    // The requests, as huggingface_hub (without hf_xet) sends them: preupload, the LFS batch,
    // token-free storage uploads, verify with the token, one NDJSON commit.
    let reqs = requests(&h);
    let pre: Vec<&serde_json::Value> = reqs
        .iter()
        .filter(|r| r["path"] == "/api/models/alice/results/preupload/main")
        .collect();
    assert_eq!(pre.len(), 1);
    let sizes: Vec<(String, u64)> = want
        .iter()
        .map(|(p, _)| (p.to_string(), files[*p].bytes.len() as u64))
        .collect();
    let expected_files: Vec<serde_json::Value> = sizes
        .iter()
        .map(|(p, n)| {
            let b = &files[p.as_str()].bytes;
            serde_json::json!({"path": p, "sample": b64(&b[..b.len().min(512)]), "size": n})
        })
        .collect();
    assert_eq!(body(pre[0]), serde_json::json!({"files": expected_files}));
    let batch: Vec<&serde_json::Value> = reqs
        .iter()
        .filter(|r| r["path"] == "/alice/results.git/info/lfs/objects/batch")
        .collect();
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0]["accept"], "application/vnd.git-lfs+json");
    assert_eq!(batch[0]["contentType"], "application/vnd.git-lfs+json");
    assert_eq!(batch[0]["auth"], true);
    let sha = |p: &str| mlres_fakehf::sha256_hex(&files[p].bytes);
    assert_eq!(
        body(batch[0]),
        serde_json::json!({
            "operation": "upload",
            "transfers": ["basic", "multipart"],
            "objects": [
                {"oid": sha("checkpoint/big.txt"), "size": files["checkpoint/big.txt"].bytes.len()},
                {"oid": sha("checkpoint/model.bin"), "size": 300_000},
            ],
            "hash_algo": "sha256",
            "ref": {"name": "main"},
        })
    );
    let store: Vec<&serde_json::Value> = reqs
        .iter()
        .filter(|r| r["path"].as_str().unwrap().starts_with("/lfs-store/"))
        .collect();
    // Both are multipart (over 150 kB, in 100 kB parts): 3 parts and a completion each.
    assert_eq!(
        store.iter().filter(|r| r["method"] == "PUT").count(),
        6,
        "{store:?}"
    );
    assert_eq!(store.iter().filter(|r| r["method"] == "POST").count(), 2);
    assert!(
        store
            .iter()
            .all(|r| r["auth"] == false && r["status"] == 200)
    );
    let verify: Vec<&serde_json::Value> = reqs
        .iter()
        .filter(|r| r["path"] == "/alice/results.git/info/lfs/objects/verify")
        .collect();
    assert_eq!(verify.len(), 2);
    assert!(verify.iter().all(|r| r["auth"] == true));
    let commits: Vec<&serde_json::Value> = reqs
        .iter()
        .filter(|r| r["path"] == "/api/models/alice/results/commit/main")
        .collect();
    assert_eq!(commits.len(), 1);
    assert_eq!(commits[0]["contentType"], "application/x-ndjson");
    let lines: Vec<serde_json::Value> = commits[0]["body"]
        .as_str()
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[0]["key"], "header");
    assert_eq!(
        lines[0]["value"]["summary"],
        format!("mlres: outputs of experiment {id}")
    );
    let desc = lines[0]["value"]["description"].as_str().unwrap();
    assert!(
        desc.contains(&format!("experiment {id}")) && desc.contains("score = 1"),
        "{desc}"
    );
    let lfs_line = |p: &str| serde_json::json!({"key": "lfsFile", "value": {"path": p, "algo": "sha256", "oid": sha(p), "size": files[p].bytes.len()}});
    let file_line = |p: &str| serde_json::json!({"key": "file", "value": {"content": b64(&files[p].bytes), "path": p, "encoding": "base64"}});
    assert_eq!(
        lines[1..],
        [
            lfs_line("checkpoint/big.txt"),
            file_line("checkpoint/config.json"),
            lfs_line("checkpoint/model.bin"),
            file_line("eval_results.json"),
        ]
    );
    // Nothing the Hub received carries the secrets (the inline content is base64).
    for r in &reqs {
        let text = r["body"].as_str().unwrap_or_default();
        assert!(!text.contains("canary"), "{r}");
        for l in text.lines() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(l)
                && let Some(c) = v["value"]["content"].as_str()
            {
                assert!(!String::from_utf8_lossy(&unb64(c)).contains("CANARY"));
            }
        }
    }

    // Recorded: the push with repo, commit and files; the exports carry the Hub URL.
    let events = h
        .env
        .json(&["ledger", "events", "--json", "--limit", "500"]);
    let push: Vec<&serde_json::Value> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "hub_push")
        .collect();
    assert_eq!(push.len(), 1);
    let p = &push[0]["payload"];
    assert_eq!(p["exp_id"].to_string(), id);
    assert_eq!(p["repo"], "alice/results");
    assert_eq!(p["commit"], commit.as_str());
    assert_eq!(p["url"], url.as_str());
    assert_eq!(p["files"].as_array().unwrap().len(), 4);
    assert_eq!(p["files"][2]["sha256"], sha("checkpoint/model.bin"));
    h.env.ok(&["ledger", "verify"]);
    let jsonl = std::fs::read_to_string(h.env.project.join("runs/ledger.jsonl")).unwrap();
    let row: serde_json::Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
    assert_eq!(row["hub_url"], url.as_str(), "{row}");
    assert_eq!(row["job_id"], format!("local-e{id}-a1"));
    assert_eq!(row["mlres"]["hub"]["commit"], commit.as_str());
    let md = std::fs::read_to_string(h.env.project.join("runs/summary.md")).unwrap();
    assert!(
        md.contains(&format!("- Best model on the Hub: [alice/results]({url})")),
        "{md}"
    );

    // Pushing again would replace those files: that counts as a delete, refused.
    h.refused(&["hub", "push", &id, "alice/results"], "counts as a delete");
    no_canary_in_state(&h);
}

#[test]
fn push_to_an_out_of_scope_repo_is_refused_and_sends_nothing() {
    let (h, id) = push_setup();
    let before = requests(&h).len();
    let out = h.run(&["hub", "push", &id, "alice/other"]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains("out of scope"), "{}", stderr(&out));
    let out = h.run(&["hub", "push", &id, "datasets/bob/data-1", "--json"]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    // Not one request reached the Hub, and nothing is recorded.
    assert_eq!(requests(&h).len(), before);
    let snap = h.fake.state().snapshot();
    assert!(snap["lfsObjects"].as_array().unwrap().is_empty());
    let events = h.env.ok(&["ledger", "events", "--json", "--limit", "500"]);
    assert!(!events.contains("hub_push"), "{events}");
    // A declared-output filter that is not declared is refused too.
    h.refused(
        &["hub", "push", &id, "alice/results", "--output", "logs/"],
        "not one of the approved outputs",
    );
    // In scope, one declared output only.
    let out = h.run(&[
        "hub",
        "push",
        &id,
        "alice/results",
        "--output",
        "eval_results.json",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let snap = h.fake.state().snapshot();
    let files: Vec<&str> = snap["repos"][0]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(files, ["eval_results.json", "kept.txt"]);
}
