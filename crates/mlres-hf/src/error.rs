use std::time::Duration;

/// Everything that can go wrong talking to the Hub. No variant ever carries the token.
#[derive(Debug, thiserror::Error)]
pub enum HfError {
    /// The `HF_ENDPOINT` value is unusable.
    #[error("bad HF endpoint: {0}")]
    BadEndpoint(String),
    /// The call needs a token and none was resolved.
    #[error(
        "no Hugging Face token: set HF_TOKEN, or log in so that ~/.cache/huggingface/token exists"
    )]
    NoToken,
    /// 401.
    #[error("401 Unauthorized: {message}")]
    Unauthorized {
        /// `X-Error-Message` or the body's error text.
        message: String,
    },
    /// 402: the namespace has no credits.
    #[error(
        "402 Payment Required: the namespace has no credits ({message}); add credits at {billing_url}; nothing was started"
    )]
    PaymentRequired {
        /// The server's message.
        message: String,
        /// Where to add credits.
        billing_url: String,
    },
    /// 403.
    #[error("403 Forbidden: {message}")]
    Forbidden {
        /// `X-Error-Message` or the body's error text.
        message: String,
    },
    /// 404, with the Hub's `X-Error-Code` when present (`RepoNotFound`, `EntryNotFound`, ...).
    #[error("404 Not Found{}: {message}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    NotFound {
        /// `X-Error-Code`.
        code: Option<String>,
        /// The server's message.
        message: String,
    },
    /// 409 on a create: the repo exists.
    #[error("repository {0} already exists")]
    AlreadyExists(String),
    /// Any other 409.
    #[error("409 Conflict: {message}")]
    Conflict {
        /// The server's message.
        message: String,
    },
    /// 400/422 and other 4xx.
    #[error("{status} rejected by the server: {message}")]
    BadRequest {
        /// HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// 429 after the bounded retries.
    #[error("429 rate limited{}: {message}", retry_after.map(|d| format!(" (retry after {} s)", d.as_secs())).unwrap_or_default())]
    RateLimited {
        /// When the server said to retry.
        retry_after: Option<Duration>,
        /// The server's message.
        message: String,
    },
    /// 5xx (after bounded retries, for idempotent requests only).
    #[error("{status} server error: {message}")]
    Server {
        /// HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// A redirect that would leave the endpoint's host, or too many redirects.
    #[error("refused redirect to {location}: {reason}")]
    Redirect {
        /// The `Location` (query stripped).
        location: String,
        /// Why it was refused.
        reason: String,
    },
    /// A file too large for this client (inline commit or capped read).
    #[error("{path}: {reason}")]
    TooLarge {
        /// The file.
        path: String,
        /// What limit applies.
        reason: String,
    },
    /// A file of a commit could not be uploaded (read locally, sent to LFS storage,
    /// verified), or it changed while it was being uploaded. Nothing was committed.
    #[error("{path}: {reason}")]
    Upload {
        /// The file (path in the repo).
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// Dataset viewer: the dataset does not exist, or it is private or gated and this caller
    /// may not read it (the viewer cannot tell these apart).
    #[error("{}", inaccessible_message(dataset, *authenticated))]
    DatasetInaccessible {
        /// `namespace/name`.
        dataset: String,
        /// Whether a token was sent.
        authenticated: bool,
    },
    /// Dataset viewer: the dataset exists but the config, split or page asked for does not.
    #[error("dataset {dataset}: {what} not found ({message})")]
    DatasetNotFound {
        /// `namespace/name`.
        dataset: String,
        /// What was asked for, e.g. `config "default", split "train"`.
        what: String,
        /// The server's message.
        message: String,
    },
    /// Dataset viewer: the viewer has not finished processing the dataset (after retries).
    #[error(
        "dataset {dataset}: the dataset viewer has not processed it yet ({message}); retry in a few minutes"
    )]
    ViewerNotReady {
        /// `namespace/name`.
        dataset: String,
        /// The server's message.
        message: String,
    },
    /// Connection, TLS or timeout failure.
    #[error("transport error: {0}")]
    Transport(String),
    /// The response did not have the documented shape.
    #[error("unexpected response from {what}: {detail}")]
    Decode {
        /// Which call.
        what: String,
        /// What failed.
        detail: String,
    },
}

impl HfError {
    /// Whether the error is a 404.
    pub fn is_not_found(&self) -> bool {
        matches!(self, HfError::NotFound { .. })
    }
}

fn inaccessible_message(dataset: &str, authenticated: bool) -> String {
    if authenticated {
        format!(
            "dataset {dataset} does not exist, or your token cannot read it (private, or gated: \
             request access at https://huggingface.co/datasets/{dataset})"
        )
    } else {
        format!(
            "dataset {dataset} does not exist, or is private or gated and needs a token: \
             set HF_TOKEN (or log in) and retry"
        )
    }
}
