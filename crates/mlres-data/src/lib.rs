//! `mlres-data`: inspect and audit training data before a cent is spent.
//!
//! It reads local `jsonl`, `json`, `csv` and `parquet` files (text formats also gzip, zstd or
//! bzip2 compressed) as a bounded-memory stream of
//! [`Record`]s (the binary feeds Hugging Face dataset viewer rows into the same [`inspect::Inspector`]), computes schema,
//! per-column statistics and fitness for SFT / DPO / GRPO ([`inspect`]), audits rows for
//! duplicates, near duplicates (MinHash LSH), train/eval contamination, PII and secrets,
//! prompt-injection strings and poisoning signals ([`audit`]), and computes the content
//! manifest the ledger pins at approval ([`manifest`]). It never prints, never reads the
//! environment and knows nothing of campaigns, budgets or SQL: callers get values and
//! progress callbacks.

pub mod audit;
pub mod inspect;
pub mod manifest;
pub mod read;

/// One row of a dataset: column name to JSON value (CSV cells are strings, parquet values
/// are converted to their JSON equivalents).
pub type Record = serde_json::Map<String, serde_json::Value>;
