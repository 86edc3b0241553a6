use std::collections::BTreeMap;

use crate::HfError;

/// The Hub's default base URL.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";
pub(crate) const STAGING_ENDPOINT: &str = "https://hub-ci.huggingface.co";

/// The base URL of the Hub (and of the Jobs API, which lives under it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    base: String,
    scheme: String,
    authority: String,
}

impl Endpoint {
    /// Parse an `HF_ENDPOINT` value the way `huggingface_hub` treats it: trailing `/` are
    /// stripped and an empty (or absent) value means the default. Only `http` and `https`
    /// URLs without a query or fragment are accepted.
    pub fn parse(value: Option<&str>) -> Result<Endpoint, HfError> {
        let trimmed = value.unwrap_or("").trim_end_matches('/');
        let base = if trimmed.is_empty() {
            DEFAULT_ENDPOINT
        } else {
            trimmed
        };
        let (scheme, rest) = base
            .split_once("://")
            .ok_or_else(|| HfError::BadEndpoint(format!("{base:?} has no http(s):// scheme")))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(HfError::BadEndpoint(format!(
                "{base:?}: only http and https are supported"
            )));
        }
        if rest.contains(['?', '#']) || rest.chars().any(char::is_whitespace) {
            return Err(HfError::BadEndpoint(format!(
                "{base:?} must not contain a query, fragment or whitespace"
            )));
        }
        let authority = rest.split('/').next().unwrap_or("").to_ascii_lowercase();
        if authority.is_empty() || authority.contains('@') {
            return Err(HfError::BadEndpoint(format!(
                "{base:?} needs a host and must not carry credentials"
            )));
        }
        Ok(Endpoint {
            base: base.to_string(),
            scheme,
            authority,
        })
    }

    /// The endpoint from an environment map as `huggingface_hub`'s `constants.ENDPOINT`:
    /// `https://hub-ci.huggingface.co` when `HUGGINGFACE_CO_STAGING` is true (it overrides
    /// `HF_ENDPOINT`), else `HF_ENDPOINT` without trailing slashes, else the default.
    /// Deliberate difference: an empty `HF_ENDPOINT` is the default here (an empty endpoint in
    /// `huggingface_hub`).
    pub fn from_env(env: &BTreeMap<String, String>) -> Result<Endpoint, HfError> {
        if env
            .get("HUGGINGFACE_CO_STAGING")
            .is_some_and(|v| crate::token::truthy(v))
        {
            return Endpoint::parse(Some(STAGING_ENDPOINT));
        }
        match env.get("HF_ENDPOINT").map(|v| v.trim_end_matches('/')) {
            Some(v) if !v.is_empty() => Endpoint::parse(Some(v)),
            _ => Endpoint::parse(None),
        }
    }

    /// The base URL without a trailing slash.
    pub fn as_str(&self) -> &str {
        &self.base
    }

    /// `scheme://host[:port]`, used to decide whether a redirect stays on this host.
    pub fn origin(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }

    /// `base + path`; `path` must start with `/`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Whether an absolute URL points at the same scheme, host and port.
    pub fn same_origin(&self, url: &str) -> bool {
        let Some((scheme, rest)) = url.split_once("://") else {
            return false;
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        scheme.eq_ignore_ascii_case(&self.scheme) && authority.eq_ignore_ascii_case(&self.authority)
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.base)
    }
}
