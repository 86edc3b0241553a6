//! mlres against the real `huggingface_hub` 2.4.0 (from PyPI).
//!
//! Token and endpoint resolution: each case runs
//! `get_token()`, `get_token_to_send(None)` and `constants.ENDPOINT` in a fresh Python process
//! with exactly the case's environment, and mlres' [`get_token`], [`resolve_token`] and
//! [`Endpoint::from_env`] on the same environment and the same files. The venv is made once,
//! in `$CARGO_TARGET_TMPDIR/hub-2.4` (the only place), and reused; a venv that cannot be made
//! fails the test with the reason.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use mlres_hf::{Endpoint, RepoId, RepoType, get_token, resolve_token};

const VERSION: &str = "2.4.0";

fn run(cmd: &mut Command) -> Result<std::process::Output, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The venv with `huggingface_hub==2.4.0`, made on first use.
fn hub_venv() -> Result<PathBuf, String> {
    // Three tests of this binary need it, in parallel threads: one makes it, the others wait.
    static MAKING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = MAKING.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hub-2.4");
    let python = dir.join("bin").join("python");
    let check = format!(
        "import sys, huggingface_hub; sys.exit(huggingface_hub.__version__ != {VERSION:?})"
    );
    if python.exists() && run(Command::new(&python).args(["-c", &check])).is_ok() {
        return Ok(python);
    }
    run(Command::new("python3").args(["-m", "venv"]).arg(&dir))
        .map_err(|e| format!("cannot make the venv (python3 -m venv): {e}"))?;
    run(Command::new(dir.join("bin").join("pip")).args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        &format!("huggingface_hub=={VERSION}"),
    ]))
    .map_err(|e| format!("cannot install huggingface_hub=={VERSION} from PyPI: {e}"))?;
    run(Command::new(&python).args(["-c", &check]))?;
    Ok(python)
}

const DRIVER: &str = r#"
import json
from huggingface_hub import constants, get_token
from huggingface_hub.utils._headers import get_token_to_send
def attempt(f):
    try:
        return {"ok": f()}
    except Exception as e:
        return {"error": type(e).__name__}
print(json.dumps({
    "get": attempt(get_token),
    "send": attempt(lambda: get_token_to_send(None)),
    "endpoint": constants.ENDPOINT,
}))
"#;

fn write(path: &Path, content: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

#[test]
fn get_token_matches_huggingface_hub_on_every_combination() {
    let python = hub_venv().unwrap_or_else(|e| panic!("huggingface_hub venv: {e}"));
    let t = crate::tmp();
    let root = t.path().to_str().unwrap().to_string();
    let home = format!("{root}/home");
    let bare = format!("{root}/bare");
    std::fs::create_dir_all(&bare).unwrap();
    write(
        Path::new(&format!("{home}/.cache/huggingface/token")),
        "hf_default\n",
    );
    write(
        Path::new(&format!("{home}/.cache/huggingface_staging/token")),
        "hf_staging\n",
    );
    write(Path::new(&format!("{home}/hfh/token")), "hf_tilde_home");
    write(
        Path::new(&format!("{root}/xdg/huggingface/token")),
        "  hf_xdg  ",
    );
    write(Path::new(&format!("{root}/hfhome/token")), "hf_home\r\n");
    write(
        Path::new(&format!("{root}/custom/tok")),
        "hf_\r\ncus\ntom\n",
    );
    write(Path::new(&format!("{root}/custom/lines")), "hf_x\n\nmore\n");
    write(Path::new(&format!("{root}/ws/tok")), " \n\t\r\n ");
    let custom = format!("{root}/custom");
    let h = home.as_str();
    // (environment; HOME is set by each case)
    let p_custom_tok = format!("{root}/custom/tok");
    let p_custom_lines = format!("{root}/custom/lines");
    let p_missing_tok = format!("{root}/missing/tok");
    let p_ws_tok = format!("{root}/ws/tok");
    let p_hfhome = format!("{root}/hfhome");
    let p_xdg = format!("{root}/xdg");
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![("HOME", h)],
        vec![("HOME", &bare)],
        vec![("HOME", h), ("HF_TOKEN", "hf_env")],
        vec![("HOME", h), ("HF_TOKEN", "  hf_env \n")],
        vec![("HOME", h), ("HF_TOKEN", "hf_\r\nenv")],
        vec![("HOME", h), ("HF_TOKEN", "hf_a\nb\rc")],
        vec![("HOME", h), ("HF_TOKEN", "hf a")],
        vec![
            ("HOME", h),
            ("HF_TOKEN", ""),
            ("HUGGING_FACE_HUB_TOKEN", "hf_legacy"),
        ],
        vec![
            ("HOME", h),
            ("HF_TOKEN", "   "),
            ("HUGGING_FACE_HUB_TOKEN", "hf_legacy"),
        ],
        vec![
            ("HOME", &bare),
            ("HF_TOKEN", "   "),
            ("HUGGING_FACE_HUB_TOKEN", "hf_legacy"),
        ],
        vec![
            ("HOME", h),
            ("HF_TOKEN", "\r\n"),
            ("HUGGING_FACE_HUB_TOKEN", "hf_legacy"),
        ],
        vec![("HOME", &bare), ("HUGGING_FACE_HUB_TOKEN", "hf_legacy")],
        vec![("HOME", h), ("HUGGING_FACE_HUB_TOKEN", "\n")],
        vec![("HOME", h), ("HF_TOKEN", "\t\u{a0}\u{3000}")],
        vec![("HOME", h), ("HF_TOKEN", "\u{1f}hf_sep\u{1c}")],
        vec![
            ("HOME", h),
            ("HF_TOKEN", "hf_env"),
            ("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1"),
        ],
        vec![("HOME", h), ("HF_HUB_DISABLE_IMPLICIT_TOKEN", "yes")],
        vec![
            ("HOME", h),
            ("HF_TOKEN", "hf_env"),
            ("HF_HUB_DISABLE_IMPLICIT_TOKEN", " 1"),
        ],
        vec![
            ("HOME", h),
            ("HF_TOKEN", "hf_env"),
            ("HF_HUB_DISABLE_IMPLICIT_TOKEN", "true"),
        ],
        vec![
            ("HOME", h),
            ("HF_TOKEN", "hf_env"),
            ("HF_HUB_DISABLE_IMPLICIT_TOKEN", "0"),
        ],
        vec![("HOME", h), ("HF_HUB_DISABLE_IMPLICIT_TOKEN", "On")],
        vec![("HOME", &bare), ("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")],
        vec![("HOME", h), ("HF_TOKEN_PATH", &p_custom_tok)],
        vec![("HOME", h), ("HF_TOKEN_PATH", &p_custom_lines)],
        vec![("HOME", h), ("HF_TOKEN_PATH", &p_missing_tok)],
        vec![("HOME", h), ("HF_TOKEN_PATH", &p_ws_tok)],
        vec![("HOME", h), ("HF_TOKEN_PATH", "~/.cache/huggingface/token")],
        vec![
            ("HOME", h),
            ("MYDIR", &custom),
            ("HF_TOKEN_PATH", "$MYDIR/tok"),
        ],
        vec![
            ("HOME", h),
            ("MYDIR", &custom),
            ("HF_TOKEN_PATH", "${MYDIR}/tok"),
        ],
        vec![("HOME", h), ("HF_TOKEN_PATH", "$UNKNOWN_DIR/tok")],
        vec![("HOME", h), ("HF_HOME", &p_hfhome)],
        vec![("HOME", h), ("HF_HOME", "~/hfh")],
        vec![("HOME", h), ("XDG_CACHE_HOME", &p_xdg)],
        vec![
            ("HOME", h),
            ("XDG_CACHE_HOME", &p_xdg),
            ("HF_HOME", &p_hfhome),
        ],
        vec![
            ("HOME", h),
            ("HF_HOME", &p_hfhome),
            ("HF_TOKEN_PATH", &p_custom_tok),
        ],
        vec![("HOME", h), ("HUGGINGFACE_CO_STAGING", "1")],
        vec![
            ("HOME", h),
            ("HUGGINGFACE_CO_STAGING", "1"),
            ("HF_TOKEN_PATH", &p_custom_tok),
        ],
        vec![
            ("HOME", h),
            ("HUGGINGFACE_CO_STAGING", "true"),
            ("HF_HOME", &p_hfhome),
            ("HF_ENDPOINT", "http://localhost:9/"),
        ],
        vec![("HOME", &bare), ("HUGGINGFACE_CO_STAGING", "1")],
        vec![
            ("HOME", h),
            ("HUGGINGFACE_CO_STAGING", "1"),
            ("HF_TOKEN", "hf_env"),
        ],
        vec![
            ("HOME", h),
            ("HUGGINGFACE_CO_STAGING", "yes "),
            ("HF_ENDPOINT", "http://localhost:9//"),
        ],
        vec![
            ("HOME", h),
            ("HUGGINGFACE_CO_STAGING", "1"),
            ("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1"),
        ],
        vec![("HOME", h), ("HF_ENDPOINT", "https://hub.example.org/")],
    ];
    assert!(cases.len() >= 30);
    let started = std::time::Instant::now();
    let mut mismatches = Vec::new();
    for vars in &cases {
        let env: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let out = run(Command::new(&python)
            .args(["-c", DRIVER])
            .env_clear()
            .envs(&env)
            .current_dir(&bare))
        .unwrap_or_else(|e| panic!("{vars:?}: {e}"));
        let real: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let read = |p: &Path| std::fs::read_to_string(p).ok();
        let ours = |r: Option<(mlres_hf::Token, mlres_hf::TokenSource)>| serde_json::json!({"ok": r.map(|(t, _)| t.expose().to_string())});
        let mine = serde_json::json!({
            "get": ours(get_token(&env, &read)),
            "send": ours(resolve_token(&env, &read)),
            "endpoint": Endpoint::from_env(&env).unwrap().as_str(),
        });
        if mine != real {
            mismatches.push(format!(
                "{vars:?}\n  huggingface_hub: {real}\n  mlres:           {mine}"
            ));
        }
    }
    eprintln!(
        "{} combinations compared with huggingface_hub {VERSION} in {:.1} s",
        cases.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// `create_repo` sends the body `HfApi.create_repo` sends: both create a repo on the fake and
/// the logged bodies are compared (a private model with the default repo type, a public
/// dataset, a private Space).
#[test]
fn create_repo_sends_what_huggingface_hub_sends() {
    let python = hub_venv().unwrap_or_else(|e| panic!("huggingface_hub venv: {e}"));
    let f = crate::fake();
    let c = crate::client(&f);
    let t = crate::tmp();
    let cases = [
        ("alice", RepoType::Model, true, "None"),
        ("alice", RepoType::Dataset, false, "'dataset'"),
        ("alice", RepoType::Space, true, "'space'"),
    ];
    for (i, (ns, kind, private, py_kind)) in cases.iter().enumerate() {
        let ours = RepoId::parse(&format!("{ns}/ours{i}"), *kind).unwrap();
        let r = c.create_repo(&ours, *private);
        let theirs = format!("{ns}/theirs{i}");
        let sdk = if *kind == RepoType::Space {
            ", space_sdk='static'"
        } else {
            ""
        };
        let py = format!(
            "from huggingface_hub import HfApi\n\
             api = HfApi(endpoint={:?}, token={:?})\n\
             try:\n    api.create_repo({theirs:?}, repo_type={py_kind}, private={}{sdk})\n\
             except Exception as e:\n    print(type(e).__name__, e)\n",
            f.url(),
            crate::CANARY_TOKEN_VALUE,
            if *private { "True" } else { "False" },
        );
        run(Command::new(&python)
            .args(["-c", &py])
            .env_clear()
            .env("HOME", t.path())
            .env("HF_HUB_DISABLE_TELEMETRY", "1"))
        .unwrap();
        let bodies: Vec<serde_json::Value> = f.state().snapshot()["requests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["method"] == "POST" && r["path"] == "/api/repos/create")
            .map(|r| serde_json::from_str(r["body"].as_str().unwrap()).unwrap())
            .collect();
        let n = bodies.len();
        assert!(n >= 2, "{bodies:?}");
        let (mut mine, mut real) = (bodies[n - 2].clone(), bodies[n - 1].clone());
        assert_eq!(mine["name"], format!("ours{i}"));
        assert_eq!(real["name"], format!("theirs{i}"));
        mine["name"] = "x".into();
        real["name"] = "x".into();
        if *kind == RepoType::Space {
            // huggingface_hub refuses a Space without an SDK, which mlres has no use for (it
            // never creates Spaces itself): the rest of the body is compared.
            real.as_object_mut().unwrap().remove("sdk");
            drop(r);
        } else {
            r.unwrap();
        }
        assert_eq!(mine, real, "{kind:?} private={private}");
    }
}

/// Every entry of the fake's hardware catalog is valid to `huggingface_hub`'s
/// `list_jobs_hardware()` (which requires the price fields on each), and the real client reads
/// the same names and prices as mlres; the unpriced flavor has its prices `null`.
#[test]
fn the_fake_hardware_catalog_reads_in_huggingface_hub() {
    let python = hub_venv().unwrap_or_else(|e| panic!("huggingface_hub venv: {e}"));
    let f = crate::fake_with(mlres_fakehf::FakeConfig {
        unpriced_flavor: Some("cpu-unpriced".into()),
        ..mlres_fakehf::FakeConfig::default()
    });
    let t = crate::tmp();
    let py = format!(
        "import json\nfrom huggingface_hub import HfApi\n\
         hw = HfApi(endpoint={:?}, token={:?}).list_jobs_hardware()\n\
         print(json.dumps({{h.name: [h.unit_cost_micro_usd, h.unit_label, \
         h.accelerator.quantity if h.accelerator else None] for h in hw}}))\n",
        f.url(),
        crate::CANARY_TOKEN_VALUE
    );
    let out = run(Command::new(&python)
        .args(["-c", &py])
        .env_clear()
        .env("HOME", t.path())
        .env("HF_HUB_DISABLE_TELEMETRY", "1"))
    .unwrap();
    let real: BTreeMap<String, serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let ours = crate::client(&f).hardware().unwrap();
    assert_eq!(real.len(), ours.len());
    assert!(ours.len() > 20);
    for h in &ours {
        let r = &real[&h.name];
        assert_eq!(r[0].as_u64(), h.micro_usd_per_minute(), "{}", h.name);
        assert_eq!(r[1], "minute");
    }
    assert!(real["cpu-unpriced"][0].is_null());
    assert_eq!(real["a10g-largex2"][2], "2");
    assert!(real["cpu-basic"][2].is_null());
}
