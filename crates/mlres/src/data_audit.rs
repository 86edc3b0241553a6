//! `mlres data audit`: the terminal side of `mlres_data::audit`.

use clap::Args;

use crate::{Cli, Failure, exit, fail};

#[derive(Args, Debug)]
pub struct AuditArgs {
    /// A local .jsonl/.json/.csv/.parquet file or directory, or `hf:<owner>/<dataset>`.
    pub source: String,
    /// An evaluation set to check the source against for contamination.
    #[arg(long, value_name = "EVAL_SOURCE")]
    pub against: Option<String>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

pub fn run(_cli: &Cli, a: &AuditArgs) -> Result<u8, Failure> {
    Err(fail(
        exit::ERROR,
        anyhow::anyhow!("mlres data audit {}: not built yet", a.source),
    ))
}
