//! `mlres report` (the static HTML report and `runs/summary.md`) and `mlres serve` (the live
//! dashboard). Both read the ledger and the jobs' captured logs through the engine; the HTML
//! and the HTTP routes are `mlres-server`'s.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::anyhow;
use clap::Args;
use serde_json::json;

use crate::cli::Cli;
use crate::commands::open_engine;
use crate::{Failure, engine_config, exit, fail, print};

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Directory to write report.html into (default: the project's runs/).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Report this campaign (default: the project's latest).
    #[arg(long, value_name = "ID")]
    pub campaign: Option<String>,
    /// Machine-readable output: the paths written.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Port on 127.0.0.1 (0: any free port) [default: 8765, or the next free one up to 8784].
    #[arg(long)]
    pub port: Option<u16>,
    /// Address to listen on; only 127.0.0.1 is accepted (use an SSH tunnel from elsewhere).
    #[arg(long, value_name = "IP", default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Offer `loop stop` on the page (never approve). Without it the dashboard is read-only.
    #[arg(long)]
    pub allow_stop: bool,
}

pub fn report(cli: &Cli, a: &ReportArgs) -> Result<u8, Failure> {
    let engine = open_engine(cli)?;
    let campaign = match &a.campaign {
        Some(id) => id.clone(),
        None => engine
            .current_campaign()?
            .ok_or_else(|| {
                fail(
                    exit::ERROR,
                    anyhow!(
                        "no campaign yet in {}: run `mlres loop run` or `mlres exp submit` first",
                        engine.project.root.display()
                    ),
                )
            })?
            .id,
    };
    let reader = mlres_engine::report::Reader::open(&engine.cfg.state_dir, &engine.project.root)?;
    let data = reader.collect(&campaign)?;
    let paths = mlres_engine::export(&engine.ledger, &engine.project, &campaign)?;
    let out_dir = a.out.clone().unwrap_or_else(|| engine.project.runs_dir());
    std::fs::create_dir_all(&out_dir)
        .map_err(|e| anyhow!("cannot create {}: {e}", out_dir.display()))?;
    let html = out_dir.join("report.html");
    let tmp = out_dir.join(format!(".report.html.{}.tmp~", std::process::id()));
    std::fs::write(&tmp, mlres_server::web::report_html(&data))
        .and_then(|()| std::fs::rename(&tmp, &html))
        .map_err(|e| anyhow!("cannot write {}: {e}", html.display()))?;
    if a.json {
        print::json(&json!({
            "campaign": campaign,
            "experiments": data.experiments.len(),
            "report_html": html,
            "summary_md": paths.summary_md,
            "ledger_jsonl": paths.ledger_jsonl,
        }));
    } else {
        println!(
            "wrote {} ({} experiments) and {}",
            html.display(),
            data.experiments.len(),
            paths.summary_md.display()
        );
    }
    Ok(exit::OK)
}

/// The dashboard's port unless `--port` says otherwise.
const DEFAULT_PORT: u16 = 8765;

pub fn serve(cli: &Cli, a: &ServeArgs) -> Result<u8, Failure> {
    let engine = engine_config(cli)?;
    let project = cli
        .project
        .canonicalize()
        .map_err(|e| anyhow!("cannot open project {}: {e}", cli.project.display()))?;
    let ports: Vec<u16> = match a.port {
        Some(p) => vec![p],
        None => (DEFAULT_PORT..DEFAULT_PORT + 20).collect(),
    };
    let mut bound = None;
    for (i, port) in ports.iter().enumerate() {
        let cfg = mlres_server::web::http::DashboardConfig {
            engine: engine.clone(),
            project: project.clone(),
            allow_stop: a.allow_stop,
            ip: a.bind,
            port: *port,
            poll: Duration::from_millis(100),
        };
        match mlres_server::web::http::bind(cfg) {
            Ok(d) => {
                bound = Some(d);
                break;
            }
            // The default port is taken (another dashboard?): try the next one.
            Err(mlres_server::web::http::ServeError::Bind { source, .. })
                if source.kind() == std::io::ErrorKind::AddrInUse && i + 1 < ports.len() => {}
            Err(e) => {
                let code = match e {
                    mlres_server::web::http::ServeError::NotLoopback(_) => exit::USAGE,
                    _ => exit::ERROR,
                };
                return Err(fail(code, anyhow!(e)));
            }
        }
    }
    let dash = bound.ok_or_else(|| fail(exit::ERROR, anyhow!("no free port to listen on")))?;
    println!(
        "mlres dashboard ({}) for {}\nOpen: {}",
        if a.allow_stop {
            "read-only, plus loop stop"
        } else {
            "read-only"
        },
        cli.project.display(),
        dash.url()
    );
    let _ = std::io::stdout().flush();
    dash.run().map_err(|e| fail(exit::ERROR, anyhow!(e)))?;
    Ok(exit::OK)
}
