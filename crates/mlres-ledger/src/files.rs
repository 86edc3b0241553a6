//! Files in the state directory: the key, the head mirror and the cross-process lock.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::LedgerError;
use crate::crypto::{self, GENESIS_HASH, KEY_LEN, TAG_HEAD_MAC};

/// File names inside the state directory.
pub(crate) const DB_FILE: &str = "ledger.sqlite3";
pub(crate) const KEY_FILE: &str = "ledger.key";
pub(crate) const HEAD_FILE: &str = "ledger.head";
pub(crate) const LOCK_FILE: &str = "ledger.lock";

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn tmp_name(dir: &Path, base: &str) -> PathBuf {
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(".{base}.tmp.{}.{n}", std::process::id()))
}

/// Creates the state directory (mode 0700 for directories it creates).
pub(crate) fn ensure_dir(dir: &Path) -> Result<(), LedgerError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| LedgerError::io(format!("creating state dir {}", dir.display()), e))
}

/// An exclusive advisory lock on `ledger.lock`, held while it lives. Serialises first-time
/// initialisation and head-file updates between processes.
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    pub(crate) fn acquire(dir: &Path) -> Result<DirLock, LedgerError> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| LedgerError::io(format!("opening {}", path.display()), e))?;
        file.lock()
            .map_err(|e| LedgerError::io(format!("locking {}", path.display()), e))?;
        // Dropping the file closes it, which releases the lock.
        Ok(DirLock { _file: file })
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

fn key_err(path: &Path, reason: impl Into<String>) -> LedgerError {
    LedgerError::KeyFile {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Loads `ledger.key`, creating it (32 bytes from /dev/urandom, mode 0600) if absent.
/// Must be called with the [`DirLock`] held.
pub(crate) fn load_or_create_key(dir: &Path) -> Result<[u8; KEY_LEN], LedgerError> {
    let path = dir.join(KEY_FILE);
    match fs::symlink_metadata(&path) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => create_key(dir, &path)?,
        Err(e) => return Err(key_err(&path, format!("cannot stat: {e}"))),
    }
    read_key(&path)
}

fn create_key(dir: &Path, path: &Path) -> Result<(), LedgerError> {
    let mut key = [0u8; KEY_LEN];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut key))
        .map_err(|e| LedgerError::io("reading /dev/urandom", e))?;
    // Write the key under a temporary name (O_EXCL, 0600), make it durable, then publish it
    // with link(2), which also fails if the name exists: a reader never sees a partial key.
    let tmp = tmp_name(dir, KEY_FILE);
    let write = || -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&key)?;
        f.sync_all()
    };
    let res = write().and_then(|()| match fs::hard_link(&tmp, path) {
        Err(e) if e.kind() != ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    });
    let _ = fs::remove_file(&tmp);
    res.and_then(|()| sync_dir(dir))
        .map_err(|e| LedgerError::io(format!("creating {}", path.display()), e))
}

fn read_key(path: &Path) -> Result<[u8; KEY_LEN], LedgerError> {
    let meta =
        fs::symlink_metadata(path).map_err(|e| key_err(path, format!("cannot stat: {e}")))?;
    if !meta.file_type().is_file() {
        return Err(key_err(path, "not a regular file"));
    }
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(key_err(
            path,
            format!(
                "permissions {:o} allow group/other access; expected 0600",
                mode & 0o777
            ),
        ));
    }
    let bytes = fs::read(path).map_err(|e| key_err(path, format!("cannot read: {e}")))?;
    <[u8; KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| {
        key_err(
            path,
            format!("expected {KEY_LEN} bytes, found {}", bytes.len()),
        )
    })
}

/// The head of the chain: last seq, its hash, number of events, MAC'd with the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Head {
    pub seq: u64,
    pub hash: String,
    pub count: u64,
    pub mac: String,
}

fn head_mac_input(seq: u64, hash: &str, count: u64) -> Vec<u8> {
    let mut buf = Vec::with_capacity(96);
    buf.extend_from_slice(&seq.to_be_bytes());
    crypto::put_lp(&mut buf, hash.as_bytes());
    buf.extend_from_slice(&count.to_be_bytes());
    buf
}

impl Head {
    pub(crate) fn new(key: &[u8; KEY_LEN], seq: u64, hash: String, count: u64) -> Head {
        let mac = crypto::mac_hex(key, TAG_HEAD_MAC, &head_mac_input(seq, &hash, count));
        Head {
            seq,
            hash,
            count,
            mac,
        }
    }

    pub(crate) fn genesis(key: &[u8; KEY_LEN]) -> Head {
        Head::new(key, 0, GENESIS_HASH.to_string(), 0)
    }

    pub(crate) fn mac_ok(&self, key: &[u8; KEY_LEN]) -> bool {
        crypto::mac_ok(
            key,
            TAG_HEAD_MAC,
            &head_mac_input(self.seq, &self.hash, self.count),
            self.mac.as_bytes(),
        )
    }
}

/// Reads `ledger.head`. `Ok(None)` if it does not exist; `Err(reason)` if unreadable or garbled.
pub(crate) fn read_head_file(dir: &Path) -> Result<Option<Head>, String> {
    let path = dir.join(HEAD_FILE);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice::<Head>(&bytes)
            .map(Some)
            .map_err(|e| format!("head file {} is garbled: {e}", path.display())),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("head file {} unreadable: {e}", path.display())),
    }
}

/// Atomically replaces `ledger.head` (temp file, fsync, rename, fsync dir).
pub(crate) fn write_head_file(dir: &Path, head: &Head) -> Result<(), LedgerError> {
    let path = dir.join(HEAD_FILE);
    let tmp = tmp_name(dir, HEAD_FILE);
    let mut text = serde_json::to_vec(head)?;
    text.push(b'\n');
    let res = (|| -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
        fs::rename(&tmp, &path)?;
        sync_dir(dir)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res.map_err(|e| LedgerError::io(format!("writing {}", path.display()), e))
}

/// After a commit: move the head file forward to `head` unless it is already at or beyond
/// it (another process got there first), or it is missing or garbled (evidence is kept; the
/// next mutation refuses). Serialised between processes by the [`DirLock`].
pub(crate) fn publish_head(dir: &Path, head: &Head) -> Result<(), LedgerError> {
    let _lock = DirLock::acquire(dir)?;
    match read_head_file(dir) {
        Ok(Some(current)) if current.seq < head.seq => write_head_file(dir, head),
        Ok(_) => Ok(()),
        Err(reason) => Err(LedgerError::Tampered(reason)),
    }
}
