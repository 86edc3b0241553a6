//! Blocking, typed client for the parts of the Hugging Face API mlres uses: token resolution
//! and endpoint selection as `huggingface_hub` 2.4 does them (differences below), `whoami-v2`,
//! the Jobs API
//! (hardware catalog with per-minute prices, create/get/list/cancel, SSE logs with lossless
//! reconnect) and the Hub file operations (tree, resolve, create repo, NDJSON commits with
//! LFS uploads as `huggingface_hub` makes them without `hf_xet`).
//!
//! Every API request can be counted against a [`RequestBudget`] shared by the processes of one
//! state dir ([`budget`]), so a campaign stays well under the Hub's 500 requests per 5 minutes.
//!
//! The token is a [`Token`] newtype that never prints; redirects are never followed
//! automatically, so the `Authorization` header cannot leave the configured host. Errors are
//! typed ([`HfError`]) and never contain the token. The crate performs network IO but reads
//! no environment variables: the binary passes the env map to [`resolve_token`] and
//! [`Endpoint::from_env`].
//!
//! Token and endpoint resolution follow `huggingface_hub`'s `get_token()`,
//! `get_token_to_send()` and `constants.py` (`HF_TOKEN` before `HUGGING_FACE_HUB_TOKEN`, an
//! all-whitespace `HF_TOKEN` going to the token file, inner `\r`/`\n` removed,
//! `HUGGINGFACE_CO_STAGING` overriding the endpoint and the token path,
//! `HF_HUB_DISABLE_IMPLICIT_TOKEN` applying to implicit sends but not to [`get_token`]);
//! `tests/it/token_parity.rs` runs the real `get_token()` against [`get_token`]. Deliberate
//! differences:
//! - no OIDC token exchange (`HF_OIDC_RESOURCE`), no OAuth refresh from `stored_tokens`, no
//!   Colab vault: resolution is pure, without network or writes;
//! - a token file that exists but cannot be read (a directory, no permission, not UTF-8) is
//!   no token, where `get_token()` raises;
//! - an empty `HF_TOKEN_PATH`, `HF_HOME`, `XDG_CACHE_HOME` or `HF_ENDPOINT` counts as unset,
//!   where `huggingface_hub` uses the empty string (a path relative to the working directory,
//!   an empty endpoint);
//! - `~` is expanded from `HOME` only (no `~user`, no password-database fallback).

pub mod budget;
mod client;
mod endpoint;
mod error;
mod hub;
mod jobs;
pub mod sse;
mod token;
mod upload;
mod viewer;
mod whoami;

pub use budget::{DEFAULT_REQUESTS_PER_MINUTE, Priority, RequestBudget};
pub use client::{HfClient, RetryPolicy};
pub use endpoint::{DEFAULT_ENDPOINT, Endpoint};
pub use error::HfError;
pub use hub::{
    CommitInfo, CommitOp, FileContent, LfsInfo, RepoId, RepoType, TreeEntry, TreeEntryKind,
};
pub use jobs::{
    Accelerator, Durations, Hardware, JobInfo, JobOwner, JobSpec, JobStage, LOCAL_FILES_DECODE,
    LOCAL_FILES_ENV, ListFilter, LogLine, MAX_LOCAL_FILES_ENV_BYTES, StreamEnd, label_ok,
    shell_quote, ship_local_files,
};
pub use token::{
    Token, TokenSource, get_token, implicit_token_disabled, resolve_token, token_file_path,
};
pub use upload::CommittedFile;
pub use viewer::{
    DEFAULT_VIEWER_ENDPOINT, DatasetInfo, DatasetSize, Feature, MAX_ROWS_PER_PAGE, RowsPage,
    SplitInfo, SplitRef, SplitSize, Validity, ViewerClient, type_name, viewer_endpoint,
};
pub use whoami::{
    AccessToken, AuthInfo, FineGrained, OrgInfo, ScopeEntity, ScopedPermission, WhoAmI,
};
