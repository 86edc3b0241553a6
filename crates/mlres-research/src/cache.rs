//! The disk cache: one JSON file per request key (a sha256 of the URL, body, accept header
//! and which credential was used; never the credential's value), written atomically. A
//! corrupt or unreadable entry is a miss, never an error.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::fetch::Response;

/// A cache directory.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

/// One stored answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cached {
    pub url: String,
    pub status: u16,
    pub content_type: Option<String>,
    /// Unix seconds.
    pub fetched_at: u64,
    #[serde(with = "b64")]
    pub body: Vec<u8>,
}

mod b64 {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(serde::de::Error::custom)
    }
}

impl Cached {
    pub fn response(&self, age: Duration, stale: bool) -> Response {
        Response {
            status: self.status,
            body: self.body.clone(),
            content_type: self.content_type.clone(),
            url: self.url.clone(),
            cache_age: Some(age),
            stale,
            headers: Vec::new(),
        }
    }
}

impl Cache {
    pub fn new(dir: impl Into<PathBuf>) -> Cache {
        Cache { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir
            .join(&key[..2.min(key.len())])
            .join(format!("{key}.json"))
    }

    pub fn get(&self, key: &str) -> Option<Cached> {
        let text = std::fs::read(self.path(key)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Stores an answer; a failure to write is ignored (the cache is an optimisation).
    pub fn put(&self, key: &str, c: &Cached) {
        let path = self.path(key);
        let Some(parent) = path.parent() else { return };
        if std::fs::create_dir_all(parent).is_err() {
            return;
        }
        let Ok(bytes) = serde_json::to_vec(c) else {
            return;
        };
        let tmp = parent.join(format!(
            ".{key}.{}.{}",
            std::process::id(),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand_bytes())
        ));
        if std::fs::write(&tmp, bytes).is_ok() && std::fs::rename(&tmp, &path).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

fn rand_bytes() -> [u8; 6] {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let b = t.to_le_bytes();
    [b[0], b[1], b[2], b[3], b[4], b[5]]
}
