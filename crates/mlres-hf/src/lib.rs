//! Blocking, typed client for the parts of the Hugging Face API mlres uses: token resolution
//! and endpoint selection exactly as `huggingface_hub` does them, `whoami-v2`, the Jobs API
//! (hardware catalog with per-minute prices, create/get/list/cancel, SSE logs with lossless
//! reconnect) and the Hub file operations (tree, resolve, create repo, NDJSON commits with
//! LFS uploads as `huggingface_hub` makes them without `hf_xet`).
//!
//! The token is a [`Token`] newtype that never prints; redirects are never followed
//! automatically, so the `Authorization` header cannot leave the configured host. Errors are
//! typed ([`HfError`]) and never contain the token. The crate performs network IO but reads
//! no environment variables: the binary passes the env map to [`resolve_token`] and
//! [`Endpoint::from_env`].

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

pub use client::{HfClient, RetryPolicy};
pub use endpoint::{DEFAULT_ENDPOINT, Endpoint};
pub use error::HfError;
pub use hub::{
    CommitInfo, CommitOp, FileContent, LfsInfo, RepoId, RepoType, TreeEntry, TreeEntryKind,
};
pub use jobs::{
    Accelerator, Durations, Hardware, JobInfo, JobOwner, JobSpec, JobStage, LOCAL_FILES_DECODE,
    LOCAL_FILES_ENV, ListFilter, LogLine, MAX_LOCAL_FILES_ENV_BYTES, StreamEnd, shell_quote,
    ship_local_files,
};
pub use token::{Token, TokenSource, resolve_token, token_file_path};
pub use upload::CommittedFile;
pub use viewer::{
    DEFAULT_VIEWER_ENDPOINT, DatasetInfo, DatasetSize, Feature, MAX_ROWS_PER_PAGE, RowsPage,
    SplitInfo, SplitRef, SplitSize, Validity, ViewerClient, type_name, viewer_endpoint,
};
pub use whoami::{
    AccessToken, AuthInfo, FineGrained, OrgInfo, ScopeEntity, ScopedPermission, WhoAmI,
};
