//! The mlres servers: the Model Context Protocol (MCP) server over stdio (official Rust SDK,
//! `rmcp`), and the campaign views: the static HTML report and the live dashboard's HTTP
//! routes (`web`).
//!
//! This crate is the only one that knows MCP tool names, their input schemas and how results
//! are shaped for an agent. Every tool turns its parameters into one call of the synchronous
//! engine (`mlres-engine`), run on Tokio's blocking pool with a fresh `Engine` per call, and
//! maps the result to JSON text content; domain errors (refusals, unapproved or changed
//! programs, invalid configs, unknown experiments) become tool errors (`isError: true`) with a
//! message an agent can act on. It must not know budget rules, SQL or terminal styling, must not
//! read environment variables (the binary hands it an `EngineConfig`), and offers no approval
//! tool: approval is human-only. The research tools (`research`) call `mlres-research` with
//! the `Fetcher` the binary built; what they return from the network stays typed as untrusted.

mod logs;
mod research;
mod tools;
pub mod web;

use std::path::PathBuf;
use std::time::Duration;

use rmcp::ServiceExt;

pub use logs::{DEFAULT_TAIL_BYTES, LogStream, MAX_TAIL_BYTES};
pub use tools::{
    DEFAULT_WAIT_SECS, ExpIdParams, ExpLogsParams, ExpSubmitParams, ExpSuggestParams,
    ExpWaitParams, INSTRUCTIONS, LoopStopParams, MAX_WAIT_SECS, MlresServer,
};

/// The names of the tools the MCP server offers, in a stable order.
pub const TOOL_NAMES: [&str; 26] = [
    "loop_status",
    "check_program",
    "exp_suggest",
    "exp_submit",
    "exp_status",
    "exp_wait",
    "exp_evaluate",
    "exp_logs",
    "loop_stop",
    "ledger_verify",
    "github_examples",
    "github_read",
    "github_tree",
    "github_search",
    "docs_explore",
    "docs_fetch",
    "docs_api",
    "hub_search",
    "papers_search",
    "papers_trending",
    "papers_details",
    "papers_read",
    "papers_citations",
    "papers_recommend",
    "papers_snippets",
    "papers_linked",
];

/// The names of the tools the MCP server offers (there is deliberately no approval tool).
pub fn tool_names() -> Vec<&'static str> {
    TOOL_NAMES.to_vec()
}

/// How long the stdio server waits for tool calls still running (for example a submit in the
/// middle of launching a job) after the client has gone away.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why the MCP server could not run. The cause is the error's `source()` (print the chain,
/// e.g. with anyhow's `{:#}`).
#[derive(thiserror::Error, Debug)]
pub enum ServerError {
    /// The Tokio runtime could not be built.
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    /// The MCP client did not complete the initialisation handshake.
    #[error("MCP initialisation failed")]
    Initialize(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The server task ended abnormally.
    #[error("the MCP server task failed")]
    Task(#[from] tokio::task::JoinError),
}

/// Serves MCP over this process's stdin/stdout until the client closes the connection.
///
/// Must run inside a Tokio runtime with IO enabled (see [`run_stdio`] for a synchronous entry
/// point). Nothing else may write to stdout while it runs: stdout carries the protocol.
pub async fn serve_stdio(
    cfg: mlres_engine::EngineConfig,
    project: PathBuf,
    research: Option<mlres_research::Fetcher>,
) -> Result<(), ServerError> {
    let server = MlresServer::new(cfg, project).with_research(research);
    let running = server
        .serve(rmcp::transport::io::stdio_pipes())
        .await
        .map_err(|e| ServerError::Initialize(Box::new(e)))?;
    running.waiting().await?;
    Ok(())
}

/// Synchronous wrapper around [`serve_stdio`]: builds a current-thread Tokio runtime, serves
/// until the client disconnects, then gives tool calls still running a few seconds to finish.
pub fn run_stdio(
    cfg: mlres_engine::EngineConfig,
    project: PathBuf,
    research: Option<mlres_research::Fetcher>,
) -> Result<(), ServerError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ServerError::Runtime)?;
    let result = rt.block_on(serve_stdio(cfg, project, research));
    rt.shutdown_timeout(SHUTDOWN_GRACE);
    result
}
