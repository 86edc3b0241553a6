//! `mlres mcp` driven by a real third-party MCP client: the official Python SDK (`mcp` from
//! PyPI), installed once into a venv under the target directory and reused by later runs.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::{BIN, Env, Fast};

/// The Python SDK version the test installs (pinned so the test is reproducible).
const MCP_REQUIREMENT: &str = "mcp==2.3.0";

fn python() -> String {
    std::env::var("MLRES_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn imports_mcp(py: &Path) -> bool {
    Command::new(py)
        .args(["-c", "import mcp.client.stdio, mcp"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Runs `cmd`; on failure removes the half-built venv `scratch` and panics with the output.
fn run_or_panic(cmd: &mut Command, what: &str, scratch: &Path) {
    let out = cmd.output();
    let out = match out {
        Ok(o) if o.status.success() => return,
        Ok(o) => o,
        Err(e) => {
            let _ = std::fs::remove_dir_all(scratch);
            panic!("{what}: cannot run {cmd:?}: {e}");
        }
    };
    let _ = std::fs::remove_dir_all(scratch);
    assert!(
        out.status.success(),
        "{what} failed ({:?}); the MCP client test needs Python 3.10+ with venv and network \
         access to PyPI.\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A venv with the Python MCP SDK, built on first use in the target directory and reused.
/// Built under a temporary name and renamed into place, so concurrent runs never see a half
/// installed venv.
fn python_with_mcp() -> PathBuf {
    // Tests run in parallel threads of one process: one of them builds the venv while the
    // others wait (they would share the temporary directory's name).
    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let venv = root.join("pyenv-mcp");
    let py = venv.join("bin/python");
    if imports_mcp(&py) {
        return py;
    }
    let tmp = root.join(format!("pyenv-mcp.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    run_or_panic(
        Command::new(python()).arg("-m").arg("venv").arg(&tmp),
        "creating a Python venv",
        &tmp,
    );
    run_or_panic(
        Command::new(tmp.join("bin/python")).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            MCP_REQUIREMENT,
        ]),
        &format!("pip install {MCP_REQUIREMENT}"),
        &tmp,
    );
    let _ = std::fs::remove_dir_all(&venv);
    if std::fs::rename(&tmp, &venv).is_err() {
        // Another run put its venv in place first; use that one.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    assert!(
        imports_mcp(&py),
        "the Python MCP SDK is not importable from {}",
        venv.display()
    );
    py
}

const CLIENT: &str = r#"
import asyncio, json, sys
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

def dump(result):
    # Wire (camelCase) form, whatever the SDK version's attribute names are.
    return result.model_dump(by_alias=True, mode="json", exclude_none=True)

def text(result):
    return "\n".join(c["text"] for c in result.get("content", []) if c.get("type") == "text")

async def main():
    exe, project, state, home, release = sys.argv[1:6]
    params = StdioServerParameters(
        command=exe,
        args=["-C", project, "mcp"],
        env={"MLRES_STATE_DIR": state, "HOME": home},
    )
    out = {}
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = dump(await session.initialize())
            out["server_name"] = init["serverInfo"]["name"]
            out["instructions"] = init.get("instructions", "")
            tools = dump(await session.list_tools())
            out["tools"] = tools["tools"]
            out["status_before"] = dump(await session.call_tool("loop_status", {}))
            out["invalid"] = dump(await session.call_tool(
                "exp_submit", {"config": {"x": 99}, "hypothesis": "outside the search space"}))
            out["unknown"] = dump(await session.call_tool("exp_status", {"id": 987654}))
            submit = dump(await session.call_tool(
                "exp_submit", {"config": {"x": 4}, "hypothesis": "x=4 should score 4"}))
            out["submit"] = submit
            if not submit.get("isError"):
                exp_id = json.loads(text(submit))["id"]
                out["wait"] = dump(await session.call_tool(
                    "exp_wait", {"id": exp_id, "timeout_secs": 300}))
                out["logs"] = dump(await session.call_tool(
                    "exp_logs", {"id": exp_id, "stream": "stdout"}))
                out["evaluate"] = dump(await session.call_tool("exp_evaluate", {"id": exp_id}))
            # x=5's job blocks until the release file exists: a status call made while
            # exp_wait is pending must still be answered (calls are not serialised).
            gated = dump(await session.call_tool(
                "exp_submit", {"config": {"x": 5}, "hypothesis": "gated job"}))
            out["gated_submit"] = gated
            if not gated.get("isError"):
                gated_id = json.loads(text(gated))["id"]
                waiting = asyncio.create_task(session.call_tool(
                    "exp_wait", {"id": gated_id, "timeout_secs": 120}))
                await asyncio.sleep(0.2)
                out["concurrent_status"] = dump(await session.call_tool(
                    "exp_status", {"id": gated_id}))
                open(release, "w").close()
                out["gated_wait"] = dump(await waiting)
            out["status_after"] = dump(await session.call_tool("loop_status", {}))
            out["verify"] = dump(await session.call_tool("ledger_verify", {}))
    json.dump(out, sys.stdout)

asyncio.run(asyncio.wait_for(main(), 600))
"#;

/// The text content of a tool result (as the Python SDK dumped it).
fn text(result: &Value) -> String {
    result["content"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter(|b| b["type"] == "text")
                .filter_map(|b| b["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

fn ok_json(out: &Value, key: &str) -> Value {
    let r = &out[key];
    assert_eq!(r["isError"], false, "{key} failed: {}", text(r));
    serde_json::from_str(&text(r)).unwrap_or_else(|e| panic!("{key}: not JSON ({e}): {r}"))
}

#[test]
fn python_mcp_client_submits_waits_and_gets_tool_errors() {
    let py = python_with_mcp();
    let env = Env::new();
    // In the project, named by `{project}`: the job's sandbox then shows it the project
    // (read-only), nothing else of ours.
    let release = env.project.join("release");
    let script = "if [ {x} = 5 ]; then while [ ! -e {project}/release ]; do sleep 0.05; done; fi; echo score={x}".to_string();
    env.write_program(
        &Fast {
            script: &script,
            ..Default::default()
        }
        .program(),
    );
    env.approve();
    let script = env.path().join("client.py");
    std::fs::write(&script, CLIENT).unwrap();
    let out = Command::new(&py)
        .arg(&script)
        .arg(BIN)
        .arg(&env.project)
        .arg(&env.state)
        .arg(env.path())
        .arg(&release)
        .output()
        .expect("run the Python MCP client");
    assert!(
        out.status.success(),
        "the Python MCP client failed ({:?}):\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let out: Value = serde_json::from_slice(&out.stdout).expect("client output is JSON");

    // Handshake and listing.
    assert_eq!(out["server_name"], "mlres");
    let instructions = out["instructions"].as_str().unwrap();
    assert!(instructions.contains("human-only"), "{instructions}");
    let names: Vec<&str> = out["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for want in [
        "loop_status",
        "check_program",
        "exp_submit",
        "exp_status",
        "exp_wait",
        "exp_evaluate",
        "exp_logs",
        "loop_stop",
        "ledger_verify",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    assert!(
        names.iter().all(|n| !n.to_lowercase().contains("approv")),
        "approval is human-only: {names:?}"
    );
    let submit_tool = out["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "exp_submit")
        .unwrap();
    assert_eq!(
        submit_tool["inputSchema"]["properties"]["config"]["type"],
        "object"
    );

    // A read tool before anything was spent.
    let before = ok_json(&out, "status_before");
    assert_eq!(before["approval"], "approved");
    assert_eq!(before["budget"]["jobs"]["used"], 0);

    // Domain errors are tool errors (isError), not protocol errors.
    assert_eq!(out["invalid"]["isError"], true, "{}", out["invalid"]);
    assert!(
        text(&out["invalid"]).contains("invalid config"),
        "{}",
        text(&out["invalid"])
    );
    assert_eq!(out["unknown"]["isError"], true);
    assert!(text(&out["unknown"]).contains("no experiment 987654"));

    // A valid submit, then wait: the metric comes from the job's own output.
    let exp = ok_json(&out, "submit");
    let id = exp["id"].as_i64().expect("experiment id");
    assert_eq!(exp["config"]["x"], 4);
    assert_eq!(exp["hypothesis"], "x=4 should score 4");
    let done = ok_json(&out, "wait");
    assert_eq!(done["id"], id);
    assert_eq!(done["state"], "evaluated", "{done}");
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["metric"], 4.0, "{done}");
    // What the decision rested on comes with it (no `noise:` here: the rule as before).
    assert_eq!(done["evidence"]["noise_model"], "none", "{done}");

    let logs = text(&out["logs"]);
    assert_eq!(out["logs"]["isError"], false, "{logs}");
    assert!(logs.contains("UNTRUSTED JOB OUTPUT"), "{logs}");
    assert!(logs.contains("score=4"), "{logs}");

    let evaluated = ok_json(&out, "evaluate");
    assert_eq!(
        evaluated["metric"], 4.0,
        "evaluation is idempotent: {evaluated}"
    );
    assert_eq!(evaluated["decision"], done["decision"]);

    // A call made while exp_wait was pending was answered before the job could finish.
    let gated = ok_json(&out, "gated_submit");
    let gated_id = gated["id"].as_i64().unwrap();
    let concurrent = ok_json(&out, "concurrent_status");
    assert_eq!(concurrent["id"], gated_id);
    assert_eq!(concurrent["state"], "submitted", "{concurrent}");
    assert!(concurrent["evidence"].is_null(), "{concurrent}");
    let gated_done = ok_json(&out, "gated_wait");
    assert_eq!(gated_done["metric"], 5.0, "{gated_done}");

    // Exactly two jobs were spent (the invalid config spent nothing), and the CLI agrees.
    let after = ok_json(&out, "status_after");
    assert_eq!(after["budget"]["jobs"]["used"], 2, "{after}");
    assert_eq!(after["experiments"].as_array().unwrap().len(), 2);
    assert_eq!(after["best"]["metric"], 5.0);
    let cli = env.json(&["loop", "status", "--json"]);
    assert_eq!(cli["budget"]["jobs"]["used"], 2);
    assert_eq!(cli["experiments"][0]["id"], id);
    assert_eq!(cli["experiments"][0]["metric"], 4.0);
    assert_eq!(cli["experiments"][1]["id"], gated_id);

    // The ledger recorded the agent's experiment and is intact.
    let verify = ok_json(&out, "verify");
    assert_eq!(verify["ok"], true, "{verify}");
    let events = env.json(&["ledger", "events", "--json", "--limit", "200"]);
    let reserved: Vec<&Value> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "reserved")
        .collect();
    assert_eq!(reserved.len(), 2, "{events}");
    for e in &reserved {
        assert_eq!(e["payload"]["request"]["source"], "agent", "{e}");
    }
    let v = env.json(&["ledger", "verify", "--json"]);
    assert_eq!(v["problems"].as_array().map(Vec::len), Some(0), "{v}");
}

/// The research tools through a real MCP client: every one listed with a schema, every one
/// called against the local fake, external text coming back as untrusted objects.
const RESEARCH_CLIENT: &str = r#"
import asyncio, json, sys
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

def dump(result):
    return result.model_dump(by_alias=True, mode="json", exclude_none=True)

CALLS = [
    ("papers_search", {"query": "direct preference optimization"}),
    ("papers_trending", {"limit": 3}),
    ("papers_details", {"id": "2305.18290"}),
    ("papers_read", {"id": "2501.00001", "section": "abstract"}),
    ("papers_citations", {"id": "2305.18290", "direction": "references"}),
    ("papers_recommend", {"id": "2305.18290"}),
    ("papers_snippets", {"id": "2305.18290", "query": "learning rate"}),
    ("papers_linked", {"id": "2305.18290", "kind": "datasets"}),
    ("github_examples", {"repo": "huggingface/trl", "query": "dpo"}),
    ("github_read", {"repo": "huggingface/trl", "path": "examples/scripts/dpo.py", "line_end": 20}),
    ("github_tree", {"repo": "huggingface/trl", "prefix": "examples"}),
    ("github_search", {"query": "trl"}),
    ("docs_explore", {"library": "trl", "query": "DPO beta"}),
    ("docs_fetch", {"page": "trl/dpo_trainer"}),
    ("docs_api", {"query": "create repo"}),
    ("hub_search", {"kind": "models", "task": "text-generation", "limit": 3}),
]

async def main():
    exe, project, env_json = sys.argv[1:4]
    params = StdioServerParameters(command=exe, args=["-C", project, "mcp"], env=json.loads(env_json))
    out = {"calls": {}}
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            out["tools"] = dump(await session.list_tools())["tools"]
            for name, args in CALLS:
                out["calls"][name] = dump(await session.call_tool(name, args))
            out["bad_id"] = dump(await session.call_tool("papers_details", {"id": "../../etc/passwd"}))
    json.dump(out, sys.stdout)

asyncio.run(asyncio.wait_for(main(), 300))
"#;

#[test]
fn python_mcp_client_lists_and_calls_every_research_tool() {
    let py = python_with_mcp();
    let env = Env::new();
    let fake = mlres_fakehf::FakeHf::start(mlres_fakehf::FakeConfig::default()).unwrap();
    let u = fake.url();
    let server_env = serde_json::json!({
        "HOME": env.path(),
        "MLRES_STATE_DIR": env.state,
        "MLRES_CACHE_DIR": env.path().join("cache"),
        "HF_ENDPOINT": u,
        "HF_TOKEN": mlres_fakehf::CANARY_TOKEN,
        "MLRES_ARXIV_ENDPOINT": format!("{u}/arxiv-export"),
        "MLRES_ARXIV_HTML_ENDPOINT": format!("{u}/arxiv"),
        "MLRES_AR5IV_ENDPOINT": format!("{u}/ar5iv"),
        "MLRES_S2_ENDPOINT": format!("{u}/s2"),
        "MLRES_GITHUB_ENDPOINT": format!("{u}/github"),
    });
    let script = env.path().join("research_client.py");
    std::fs::write(&script, RESEARCH_CLIENT).unwrap();
    let out = Command::new(&py)
        .arg(&script)
        .arg(BIN)
        .arg(&env.project)
        .arg(server_env.to_string())
        .output()
        .expect("run the Python MCP client");
    assert!(
        out.status.success(),
        "the Python MCP client failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let tools = v["tools"].as_array().unwrap();
    let calls = v["calls"].as_object().unwrap();
    for (name, result) in calls {
        let t = tools
            .iter()
            .find(|t| t["name"] == name.as_str())
            .unwrap_or_else(|| panic!("{name} is not listed"));
        assert_eq!(t["inputSchema"]["type"], "object", "{name}");
        assert_eq!(t["annotations"]["readOnlyHint"], true, "{name}");
        assert_ne!(result["isError"], true, "{name}: {result}");
        assert!(result["structuredContent"].is_object(), "{name}: {result}");
    }
    assert_eq!(calls.len(), 16);
    // External text stays typed as untrusted, with the injection flagged.
    let read = &calls["papers_read"]["structuredContent"];
    let text = read.to_string();
    assert!(
        text.contains("\"injections\":[\"instruction_override\""),
        "{text}"
    );
    assert_eq!(v["bad_id"]["isError"], true, "{}", v["bad_id"]);
    // The HF token reached no non-HF route.
    let hf = mlres_fakehf::sha256_hex(format!("Bearer {}", mlres_fakehf::CANARY_TOKEN).as_bytes());
    for r in fake.state().lock().requests.iter() {
        if ["/github", "/arxiv", "/ar5iv", "/s2"]
            .iter()
            .any(|p| r.path.starts_with(p))
        {
            assert_ne!(r.auth_sha256.as_deref(), Some(hf.as_str()), "{}", r.path);
        }
    }
}
