//! `mlres mcp`: serve the Model Context Protocol over stdin/stdout (see `mlres-server`).

use anyhow::anyhow;

use crate::{Failure, engine_config, exit, fail};

/// Runs the MCP server until the client disconnects. stdout carries the protocol, so nothing
/// else may be printed to it; errors go to stderr through the usual `Failure` path.
pub fn run(cli: &crate::cli::Cli) -> Result<u8, Failure> {
    let cfg = engine_config(cli)?;
    let research = crate::research::fetcher(false)?;
    mlres_server::run_stdio(cfg, cli.project.clone(), Some(research))
        .map_err(|e| fail(exit::ERROR, anyhow!(e)))?;
    Ok(exit::OK)
}
