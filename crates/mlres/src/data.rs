//! `mlres data`: the terminal side of `mlres-data` (inspect here, audit in `data_audit`).

use clap::{Args, Subcommand};

use crate::{Cli, Failure, exit, fail};

#[derive(Subcommand, Debug)]
pub enum DataCmd {
    /// Schema, splits, row counts, per-column statistics, sample rows and SFT/DPO/GRPO fitness.
    Inspect(InspectArgs),
    /// Duplicates, near duplicates, contamination, PII and secrets, injection and poisoning.
    Audit(crate::data_audit::AuditArgs),
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// A local .jsonl/.json/.csv/.parquet file or directory, or `hf:<owner>/<dataset>`.
    pub source: String,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cli: &Cli, cmd: &DataCmd) -> Result<u8, Failure> {
    match cmd {
        DataCmd::Inspect(a) => inspect(cli, a),
        DataCmd::Audit(a) => crate::data_audit::run(cli, a),
    }
}

fn inspect(_cli: &Cli, a: &InspectArgs) -> Result<u8, Failure> {
    Err(fail(
        exit::ERROR,
        anyhow::anyhow!("mlres data inspect {}: not built yet", a.source),
    ))
}
