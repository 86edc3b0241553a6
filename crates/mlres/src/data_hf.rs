//! `mlres data inspect hf:<owner>/<name>`: a Hugging Face dataset through the dataset viewer.
//!
//! The viewer base URL is `MLRES_HF_VIEWER_ENDPOINT` (default
//! `https://datasets-server.huggingface.co`); the token is resolved like every other Hub call
//! (`HF_TOKEN`, then the token file) and sent only to that host. Rows are a sample: at most
//! `--max-rows` per split, paged 100 at a time; the split sizes come from `/size`.

use std::collections::BTreeMap;

use anyhow::anyhow;
use mlres_data::inspect::{FileInfo, InspectOptions, InspectReport, Inspector};

use crate::{Cli, Failure, exit, fail};

/// `hf:owner/name` or `datasets/owner/name` → `owner/name`.
pub(crate) fn hf_dataset(source: &str) -> Option<String> {
    let rest = source
        .strip_prefix("hf:")
        .or_else(|| source.strip_prefix("datasets/"))?;
    let rest = rest.strip_prefix("datasets/").unwrap_or(rest);
    Some(rest.to_string())
}

fn viewer_err(repo: &str, e: mlres_hf::HfError) -> Failure {
    fail(exit::ERROR, anyhow!("cannot inspect hf:{repo}: {e}"))
}

pub(crate) fn inspect(
    _cli: &Cli,
    repo: &str,
    opts: InspectOptions,
    max_rows: usize,
) -> Result<InspectReport, Failure> {
    let env: BTreeMap<String, String> = crate::utf8_env()?;
    let token = mlres_hf::resolve_token(&env, &|p| std::fs::read_to_string(p).ok()).map(|t| t.0);
    let base = env.get("MLRES_HF_VIEWER_ENDPOINT").map(String::as_str);
    let client = mlres_hf::ViewerClient::from_url(base, token)
        .map_err(|e| fail(exit::USAGE, anyhow!("MLRES_HF_VIEWER_ENDPOINT: {e}")))?;
    let splits = client.splits(repo).map_err(|e| viewer_err(repo, e))?;
    // Sizes are best effort: a dataset without /size still gets inspected.
    let sizes = client.size(repo).ok();
    let mut ins = Inspector::new(format!("hf:{repo}"), opts);
    let mut sampled = false;
    let multi_config = splits
        .iter()
        .any(|s| s.config != splits.first().map_or("", |f| f.config.as_str()));
    for s in &splits {
        let name = if multi_config {
            format!("{}/{}", s.config, s.split)
        } else {
            s.split.clone()
        };
        let page = client
            .sample_rows(repo, &s.config, &s.split, max_rows.max(1))
            .map_err(|e| viewer_err(repo, e))?;
        let size = sizes.as_ref().and_then(|z| {
            z.splits
                .iter()
                .find(|x| x.config == s.config && x.split == s.split)
        });
        ins.add_file(
            &name,
            FileInfo {
                path: format!("{}/{} (viewer)", s.config, s.split),
                format: None,
                bytes: size.and_then(|z| z.num_bytes_parquet_files).unwrap_or(0),
            },
        );
        let total = size.map(|z| z.num_rows).or(page.num_rows_total);
        if page.truncated || total.is_some_and(|t| t > page.rows.len() as u64) {
            sampled = true;
        }
        for (i, row) in page.rows.iter().enumerate() {
            let n = page.row_indices.get(i).map_or(i as u64 + 1, |x| x + 1);
            ins.push(&name, n, row);
        }
    }
    ins.set_sampled(sampled);
    Ok(ins.finish())
}
