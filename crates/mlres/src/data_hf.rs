//! `mlres data inspect hf:<owner>/<name>`: a Hugging Face dataset through the dataset viewer.

use anyhow::anyhow;
use mlres_data::inspect::{InspectOptions, InspectReport};

use crate::{Cli, Failure, exit, fail};

/// `hf:owner/name` or `datasets/owner/name` → `owner/name`.
pub(crate) fn hf_dataset(source: &str) -> Option<String> {
    let rest = source
        .strip_prefix("hf:")
        .or_else(|| source.strip_prefix("datasets/"))?;
    let rest = rest.strip_prefix("datasets/").unwrap_or(rest);
    Some(rest.to_string())
}

pub(crate) fn inspect(
    _cli: &Cli,
    repo: &str,
    _opts: InspectOptions,
    _max_rows: usize,
) -> Result<InspectReport, Failure> {
    Err(fail(
        exit::ERROR,
        anyhow!("hf:{repo}: the dataset viewer client is not wired yet"),
    ))
}
