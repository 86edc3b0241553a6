//! Broker mode: mlres' state (ledger, key, approval hash, credentials, job directories)
//! belongs to a system user of its own, and the agent's user reaches it only through
//! `mlres broker serve`'s Unix socket.
//!
//! The CLI is the same program in both modes. When a broker is configured (`/etc/mlres/
//! broker.json`, written by `mlres setup broker`, or `MLRES_BROKER_SOCKET`), every command that
//! touches the state is sent to the broker with the client's stdio, working directory and (for
//! secrets) terminal as passed descriptors; the broker forks, runs the very same command
//! function as the broker user with those descriptors as its stdio, and returns its exit code.
//! Output, `--json` and exit codes are therefore identical. An unreachable broker is an error:
//! the CLI never falls back to a state dir of its own.

pub(crate) mod client;
pub(crate) mod serve;
pub(crate) mod setup;
pub(crate) mod wire;

use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::anyhow;
use serde::{Deserialize, Serialize};

use crate::cli::{Command, SetupCmd};
use crate::{Failure, exit, fail};

/// Where `mlres setup broker` writes the configuration every client reads.
pub const DEFAULT_CONFIG: &str = "/etc/mlres/broker.json";

/// The broker's configuration (world-readable: it holds no secret).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Config {
    /// The socket clients connect to.
    pub socket: PathBuf,
    /// The broker's state dir (mode 0700, owned by `user`).
    pub state_dir: PathBuf,
    /// The broker's system user.
    pub user: String,
    /// The uids allowed to connect (empty: every local user).
    #[serde(default)]
    pub clients: Vec<u32>,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, Failure> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            fail(
                exit::ERROR,
                anyhow!(
                    "cannot read the broker configuration {}: {e}",
                    path.display()
                ),
            )
        })?;
        serde_json::from_str(&text).map_err(|e| {
            fail(
                exit::ERROR,
                anyhow!(
                    "the broker configuration {} is malformed ({e}); fix it with `sudo mlres setup broker`, \
                     or remove it to return to single-user mode",
                    path.display()
                ),
            )
        })
    }
}

/// The socket the CLI must go through, when broker mode is configured. `MLRES_BROKER_SOCKET`
/// can only turn broker mode on (or point at another socket), never off: with
/// `/etc/mlres/broker.json` present, every state command goes to a broker.
pub fn configured_socket() -> Result<Option<PathBuf>, Failure> {
    if let Some(s) = std::env::var_os("MLRES_BROKER_SOCKET").filter(|v| !v.is_empty()) {
        return Ok(Some(PathBuf::from(s)));
    }
    let path = Path::new(DEFAULT_CONFIG);
    if path.exists() {
        return Ok(Some(Config::load(path)?.socket));
    }
    Ok(None)
}

/// Whether `cmd` runs in this process even in broker mode: it touches no state (the hook, the
/// trainer inside a job, writing a starter program.md, reading local data files), it is the
/// broker or its setup, or it must run as the calling user (`setup claude`).
pub fn runs_locally(cmd: &Command) -> bool {
    match cmd {
        Command::Supervise { .. }
        | Command::Train(_)
        | Command::Guard(_)
        | Command::Init(_)
        | Command::Setup(SetupCmd::Claude(_))
        | Command::Setup(SetupCmd::Broker(_))
        | Command::Broker(crate::cli::BrokerCmd::Serve(_))
        // Research reads the network, not the state, with the caller's own tokens.
        | Command::Docs(_)
        | Command::Papers(_)
        | Command::Github(_)
        | Command::Hub(crate::hub::HubCmd::Search(_)) => true,
        // Local files are read as the caller (who can read them); a Hub dataset may need the
        // token, which only the broker holds.
        Command::Data(crate::data::DataCmd::Inspect(a)) => !a.source.starts_with("hf:"),
        Command::Data(crate::data::DataCmd::Audit(a)) => !a.source.starts_with("hf:"),
        _ => false,
    }
}

/// Whether `cmd` finishes quickly on its own: the client then neither forwards signals nor
/// does the broker watch for them (a Ctrl-C ends the client; the command finishes and its
/// reply goes nowhere). Every other command (a loop, a wait, a prompt for a secret, the MCP
/// server, an upload) is stopped by the client's signals, as in single-user mode.
pub fn quick(cmd: &Command) -> bool {
    use crate::cli::{BrokerCmd, ExpCmd, LedgerCmd, LoopCmd};
    matches!(
        cmd,
        Command::Loop(LoopCmd::Status(_))
            | Command::Exp(ExpCmd::Status(_))
            | Command::Exp(ExpCmd::Submit(_))
            | Command::Exp(ExpCmd::Evaluate(_))
            | Command::Exp(ExpCmd::Logs(_))
            | Command::Check(_)
            | Command::Ledger(LedgerCmd::Verify(_))
            | Command::Ledger(LedgerCmd::Events(_))
            | Command::Ledger(LedgerCmd::Export(_))
            | Command::Doctor(_)
            | Command::Broker(BrokerCmd::Status(_))
    )
}

/// Whether `cmd` reads, hashes or grants the datasets program.md declares (so the broker
/// checks first that its client could read them).
pub fn uses_datasets(cmd: &Command) -> bool {
    use crate::cli::{ExpCmd, LoopCmd};
    matches!(
        cmd,
        Command::Check(_)
            | Command::Approve(_)
            | Command::Demo(_)
            | Command::Loop(LoopCmd::Run(_))
            | Command::Exp(ExpCmd::Submit(_))
            | Command::Jobs(_)
    )
}

/// What the broker knows about the client a forked command serves.
#[derive(Debug)]
pub struct Served {
    pub peer: wire::PeerCred,
    pub peer_name: String,
    /// The client's terminal, when it passed one.
    pub tty: Option<RawFd>,
    pub state_dir: PathBuf,
}

static SERVED: OnceLock<Served> = OnceLock::new();

/// Set once in a forked command process of the broker.
pub(crate) fn set_served(s: Served) {
    let _ = SERVED.set(s);
}

/// In a command the broker runs for a client: who that client is.
pub fn served() -> Option<&'static Served> {
    SERVED.get()
}

/// The user name of `uid` from the password database, else `uid N`.
pub fn user_of(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 3 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[0].to_string())
            })
        })
        .unwrap_or_else(|| format!("uid {uid}"))
}

/// `(uid, gid)` of a user name from the password database.
pub fn ids_of(name: &str) -> Option<(u32, u32)> {
    let t = std::fs::read_to_string("/etc/passwd").ok()?;
    t.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 3 && f[0] == name).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

/// The groups a uid is in (its primary gid and every `/etc/group` entry naming it).
fn groups_of(uid: u32, primary: u32) -> Vec<u32> {
    let name = user_of(uid);
    let mut out = vec![primary];
    if let Ok(t) = std::fs::read_to_string("/etc/group") {
        for l in t.lines() {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() > 3
                && f[3].split(',').any(|m| m == name)
                && let Ok(g) = f[2].parse()
            {
                out.push(g);
            }
        }
    }
    out
}

/// Whether the client could itself reach `path` with `want` (`libc::R_OK`, `W_OK`, `X_OK`
/// bits): every directory on the way searchable by it and the last component granting `want`,
/// by the classic owner/group/other bits (ACLs are not read, so this can only say no too
/// often). The broker asks before it reads or writes a path a client named, so a client
/// cannot use the broker's own rights to reach what it could not (its state dir above all).
pub fn peer_may(path: &Path, peer: &wire::PeerCred, want: u32) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    if peer.uid == 0 {
        return Ok(());
    }
    let real = std::fs::canonicalize(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let groups = groups_of(peer.uid, peer.gid);
    let allowed = |m: &std::fs::Metadata, bits: u32| -> bool {
        let mode = m.mode();
        let granted = if m.uid() == peer.uid {
            (mode >> 6) & 7
        } else if groups.contains(&m.gid()) {
            (mode >> 3) & 7
        } else {
            mode & 7
        };
        granted & bits == bits
    };
    let mut at = PathBuf::from("/");
    let comps: Vec<_> = real.components().skip(1).collect();
    for (i, c) in comps.iter().enumerate() {
        let m = std::fs::metadata(&at).map_err(|e| format!("{}: {e}", at.display()))?;
        if !allowed(&m, 1) {
            return Err(format!(
                "{} is not reachable by {} (no search permission on {})",
                real.display(),
                user_of(peer.uid),
                at.display()
            ));
        }
        at.push(c);
        if i + 1 == comps.len() {
            break;
        }
    }
    let m = std::fs::metadata(&real).map_err(|e| format!("{}: {e}", real.display()))?;
    if !allowed(&m, want) {
        return Err(format!(
            "{} is not {} by {}",
            real.display(),
            if want & 2 != 0 {
                "writable"
            } else {
                "readable"
            },
            user_of(peer.uid)
        ));
    }
    Ok(())
}
