use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// A Hugging Face access token. It never prints: `Debug` and `Display` show `hf_***`.
/// It is deliberately not `Serialize`.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// A token from a raw value as `huggingface_hub`'s `_clean_token` makes it: every `\r`
    /// and `\n` removed (also inside), then surrounding whitespace (Python's `str.strip()`)
    /// stripped; an empty value is no token.
    pub fn new(raw: &str) -> Option<Token> {
        let no_newlines: String = raw.chars().filter(|c| !matches!(c, '\r' | '\n')).collect();
        let t = no_newlines.trim_matches(py_whitespace);
        (!t.is_empty()).then(|| Token(t.to_string()))
    }

    /// The secret value, for the `Authorization` header or a job secret only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The first 12 hex digits of the token's sha256: safe to log, useful to tell tokens apart.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(self.0.as_bytes());
        digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("hf_***")
    }
}

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("hf_***")
    }
}

/// Where a token came from (shown to users instead of the value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenSource {
    /// The `HF_TOKEN` environment variable.
    EnvHfToken,
    /// The legacy `HUGGING_FACE_HUB_TOKEN` environment variable.
    EnvHuggingFaceHubToken,
    /// The file named by `HF_TOKEN_PATH`.
    TokenPathFile(PathBuf),
    /// `$HF_HOME/token` (with `HF_HOME` defaulting to `$XDG_CACHE_HOME/huggingface`, then
    /// `~/.cache/huggingface`).
    HfHomeFile(PathBuf),
}

impl std::fmt::Display for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSource::EnvHfToken => f.write_str("environment variable HF_TOKEN"),
            TokenSource::EnvHuggingFaceHubToken => {
                f.write_str("environment variable HUGGING_FACE_HUB_TOKEN")
            }
            TokenSource::TokenPathFile(p) => write!(f, "file {} (HF_TOKEN_PATH)", p.display()),
            TokenSource::HfHomeFile(p) => write!(f, "file {}", p.display()),
        }
    }
}

/// Python's `str.isspace()`: Unicode `White_Space` plus the ASCII separators `\x1c`-`\x1f`.
fn py_whitespace(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// `huggingface_hub`'s `constants._is_true`: `value.upper()` is one of `1`, `ON`, `YES`,
/// `TRUE`, with no trimming (`" 1"` is false).
pub(crate) fn truthy(v: &str) -> bool {
    matches!(v.to_uppercase().as_str(), "1" | "ON" | "YES" | "TRUE")
}

/// Whether `HF_HUB_DISABLE_IMPLICIT_TOKEN` is set true: `huggingface_hub` then sends no token
/// with a request that does not ask for one explicitly (`get_token_to_send(None)`), while
/// `get_token()` itself, and `whoami`, which calls it, still find the token.
pub fn implicit_token_disabled(env: &BTreeMap<String, String>) -> bool {
    env.get("HF_HUB_DISABLE_IMPLICIT_TOKEN")
        .is_some_and(|v| truthy(v))
}

/// Expand a leading `~` and `$VAR` / `${VAR}` from `env` (unknown variables stay as written,
/// like Python's `os.path.expandvars`).
fn expand(raw: &str, env: &BTreeMap<String, String>) -> PathBuf {
    let mut s = String::new();
    let mut rest = raw;
    if let Some(tail) = raw.strip_prefix('~')
        && (tail.is_empty() || tail.starts_with('/'))
        && let Some(home) = env.get("HOME")
    {
        s.push_str(home);
        rest = tail;
    }
    let bytes: Vec<char> = rest.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == '$' {
            let (name, end, braced) = if bytes.get(i + 1) == Some(&'{') {
                match bytes[i + 2..].iter().position(|c| *c == '}') {
                    Some(p) => (
                        bytes[i + 2..i + 2 + p].iter().collect::<String>(),
                        i + 3 + p,
                        true,
                    ),
                    None => (String::new(), i + 1, true),
                }
            } else {
                let n: String = bytes[i + 1..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
                    .collect();
                let len = n.chars().count();
                (n, i + 1 + len, false)
            };
            if !name.is_empty()
                && let Some(v) = env.get(&name)
            {
                s.push_str(v);
                i = end;
                continue;
            }
            let _ = braced;
            s.push('$');
            i += 1;
            continue;
        }
        s.push(bytes[i]);
        i += 1;
    }
    PathBuf::from(s)
}

/// The path `huggingface_hub` reads the token file from: `~/.cache/huggingface_staging/token`
/// when `HUGGINGFACE_CO_STAGING` is true (whatever else is set), else `HF_TOKEN_PATH`, else
/// `$HF_HOME/token`, `HF_HOME` defaulting to `$XDG_CACHE_HOME/huggingface`, then
/// `~/.cache/huggingface`. `None` only when nothing (not even `HOME`) is known. The flag is
/// true for `HF_TOKEN_PATH`.
///
/// Deliberate difference: an empty `HF_TOKEN_PATH`, `HF_HOME` or `XDG_CACHE_HOME` counts as
/// unset here; `huggingface_hub` takes it as an empty path (the token file becomes `token` or
/// `huggingface/token` relative to the working directory, or reading `""` raises).
pub fn token_file_path(env: &BTreeMap<String, String>) -> Option<(PathBuf, bool)> {
    if env.get("HUGGINGFACE_CO_STAGING").is_some_and(|v| truthy(v)) {
        let home = PathBuf::from(env.get("HOME")?);
        return Some((
            home.join(".cache")
                .join("huggingface_staging")
                .join("token"),
            false,
        ));
    }
    if let Some(p) = env.get("HF_TOKEN_PATH").filter(|p| !p.is_empty()) {
        return Some((expand(p, env), true));
    }
    let home = if let Some(h) = env.get("HF_HOME").filter(|p| !p.is_empty()) {
        expand(h, env)
    } else if let Some(x) = env.get("XDG_CACHE_HOME").filter(|p| !p.is_empty()) {
        expand(x, env).join("huggingface")
    } else {
        PathBuf::from(env.get("HOME")?)
            .join(".cache")
            .join("huggingface")
    };
    Some((home.join("token"), false))
}

/// The token `huggingface_hub`'s `get_token()` finds: `HF_TOKEN`, else (only when `HF_TOKEN`
/// is unset or empty) `HUGGING_FACE_HUB_TOKEN`, cleaned by [`Token::new`]; when that leaves
/// nothing (an all-whitespace `HF_TOKEN` does not fall back to `HUGGING_FACE_HUB_TOKEN`), the
/// token file (see [`token_file_path`]). `HF_HUB_DISABLE_IMPLICIT_TOKEN` plays no part here
/// (see [`resolve_token`]). Pure: the caller passes the environment and a file reader.
///
/// Deliberate differences: no OIDC exchange (`HF_OIDC_RESOURCE`), no OAuth refresh of a
/// token file entry from `stored_tokens`, no Colab vault; a token file that exists but cannot
/// be read (a directory, no permission, not UTF-8) is no token here, where `get_token()`
/// raises.
pub fn get_token(
    env: &BTreeMap<String, String>,
    read_file: &dyn Fn(&Path) -> Option<String>,
) -> Option<(Token, TokenSource)> {
    // Python's `os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")`: the
    // first non-empty string wins, before cleaning.
    let from_env = match env.get("HF_TOKEN").filter(|v| !v.is_empty()) {
        Some(v) => Some((v, TokenSource::EnvHfToken)),
        None => env
            .get("HUGGING_FACE_HUB_TOKEN")
            .filter(|v| !v.is_empty())
            .map(|v| (v, TokenSource::EnvHuggingFaceHubToken)),
    };
    if let Some((v, source)) = from_env
        && let Some(t) = Token::new(v)
    {
        return Some((t, source));
    }
    let (path, explicit) = token_file_path(env)?;
    let t = read_file(&path).and_then(|c| Token::new(&c))?;
    let source = if explicit {
        TokenSource::TokenPathFile(path)
    } else {
        TokenSource::HfHomeFile(path)
    };
    Some((t, source))
}

/// The token mlres sends with a request, as `huggingface_hub` sends one implicitly
/// (`get_token_to_send(None)`): none when [`implicit_token_disabled`], else [`get_token`].
/// `mlres hub whoami` uses [`get_token`] itself, as `HfApi.whoami` does.
pub fn resolve_token(
    env: &BTreeMap<String, String>,
    read_file: &dyn Fn(&Path) -> Option<String>,
) -> Option<(Token, TokenSource)> {
    if implicit_token_disabled(env) {
        return None;
    }
    get_token(env, read_file)
}
