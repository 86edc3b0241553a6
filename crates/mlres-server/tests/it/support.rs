//! A temp project + state directory and an rmcp client connected to the server in-process.

use std::collections::BTreeMap;
use std::path::PathBuf;

use mlres_engine::{Engine, EngineConfig};
use mlres_server::MlresServer;
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::{RoleClient, RunningService, ServiceError};
use serde_json::Value;

/// A campaign of quick shell jobs (never launched by these tests: no mlres binary here).
pub fn program(values: &str) -> String {
    format!(
        r#"# Test campaign

## Goal
Maximise score.

## Scope
Shell jobs only.

## Budget envelope
```yaml
max_jobs: 3
max_walltime: 1h
allowed_flavors: [cpu-basic]
max_timeout: 10m
allow_deletes: false
output_repos: []
max_concurrent: 1
backends: [local]
```

## Objective
```yaml
metric: score
goal: maximize
```

## Job
```yaml
backend: local
command: ["/bin/sh", "-c", "echo score={{x}}"]
flavor: cpu-basic
timeout: 1m
```

## Search space
```yaml
method: grid
parameters:
  x:
    values: {values}
```
"#
    )
}

pub struct Harness {
    pub _tmp: mlres_testkit::SweptDir,
    pub project: PathBuf,
    pub cfg: EngineConfig,
    pub client: RunningService<RoleClient, ()>,
    server: tokio::task::JoinHandle<()>,
}

pub fn config(state: PathBuf) -> EngineConfig {
    EngineConfig {
        state_dir: state,
        // Never executed: a valid submit in these tests fails at its launch.
        exe: PathBuf::from("/nonexistent/mlres"),
        parent_env: BTreeMap::new(),
        hf: None,
        bwrap: None,
        keep_attempts: mlres_engine::DEFAULT_KEEP_ATTEMPTS,
        local_gpus: Vec::new(),
        slurm: None,
    }
}

impl Harness {
    /// `program`: the program.md to write (None: no program.md); `approve`: pin it first.
    pub async fn start(program: Option<&str>, approve: bool) -> Harness {
        let tmp = mlres_testkit::SweptDir::new_in(env!("CARGO_TARGET_TMPDIR"));
        let project = tmp.path().join("proj");
        let state = tmp.path().join("state");
        std::fs::create_dir_all(&project).unwrap();
        if let Some(p) = program {
            std::fs::write(project.join("program.md"), p).unwrap();
        }
        let cfg = config(state);
        if approve {
            let mut e = Engine::open(cfg.clone(), &project).expect("engine");
            let secret = "server-tests-secret-1";
            mlres_engine::set_approver_secret(&mut e.ledger, secret, None, "test human")
                .expect("set secret");
            let who = mlres_engine::HumanApprover {
                user: "test human".into(),
                uid: 0,
                source: mlres_engine::SecretSource::File,
                secret: secret.into(),
            };
            e.approve_with(&who, false).expect("approve");
        }
        let (server_io, client_io) = tokio::io::duplex(64 * 1024);
        let server = MlresServer::new(cfg.clone(), project.clone());
        let server = tokio::spawn(async move {
            let running = server.serve(server_io).await.expect("server handshake");
            let _ = running.waiting().await;
        });
        let client = ().serve(client_io).await.expect("client handshake");
        Harness {
            _tmp: tmp,
            project,
            cfg,
            client,
            server,
        }
    }

    pub async fn try_call(&self, name: &str, args: Value) -> Result<CallToolResult, ServiceError> {
        let args = match args {
            Value::Object(m) => m,
            other => panic!("arguments must be an object, got {other}"),
        };
        self.client
            .call_tool(CallToolRequestParams::new(name.to_string()).with_arguments(args))
            .await
    }

    pub async fn call(&self, name: &str, args: Value) -> CallToolResult {
        self.try_call(name, args)
            .await
            .unwrap_or_else(|e| panic!("{name}: protocol error {e}"))
    }

    /// Calls a tool that must succeed and returns its JSON text content.
    pub async fn json(&self, name: &str, args: Value) -> Value {
        let r = self.call(name, args).await;
        assert_eq!(r.is_error, Some(false), "{name} failed: {}", text(&r));
        serde_json::from_str(&text(&r)).unwrap_or_else(|e| panic!("{name}: not JSON ({e})"))
    }

    /// Calls a tool that must fail as a tool error and returns its message.
    pub async fn tool_error(&self, name: &str, args: Value) -> String {
        let r = self.call(name, args).await;
        assert_eq!(r.is_error, Some(true), "{name} should fail: {}", text(&r));
        text(&r)
    }

    pub async fn close(self) {
        self.client.cancel().await.expect("client cancel");
        self.server.await.expect("server task");
    }
}

/// All text content of a tool result.
pub fn text(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}
