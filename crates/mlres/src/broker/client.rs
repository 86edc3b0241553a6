//! The CLI side of broker mode: send this very command line to the broker with our stdio,
//! working directory and (for secrets) terminal, forward our signals, exit with its code.

use std::collections::BTreeMap;
use std::ffi::{CString, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::Path;

use anyhow::anyhow;

use super::wire::{self, ClientMsg, FdRole, Reply, Request};
use crate::cli::{ApproveArgs, BrokerCmd, Command, SetupCmd};
use crate::{Failure, exit, fail};

/// Flags whose value is a descriptor the broker must receive as the same number.
const FD_FLAGS: &[&str] = &["--secret-fd", "--current-secret-fd", "--token-fd"];
/// Flags whose value is a file the caller opens and passes (the broker's user cannot read a
/// file that only the caller may read): rewritten to the matching `-fd` flag.
const FILE_FLAGS: &[(&str, &str)] = &[
    ("--secret-file", "--secret-fd"),
    ("--current-secret-file", "--current-secret-fd"),
    ("--token-file", "--token-fd"),
];

/// Whether the command may read a secret from the terminal (then the terminal is passed).
fn wants_tty(cmd: &Command) -> bool {
    matches!(
        cmd,
        Command::Approve(ApproveArgs { .. })
            | Command::Setup(SetupCmd::Approver(_))
            | Command::Broker(BrokerCmd::Login(_))
    )
}

/// Runs `args` (this process's argv) through the broker at `socket`; returns its exit code.
pub fn forward(socket: &Path, args: &[OsString], cmd: &Command) -> Result<u8, Failure> {
    let mut argv: Vec<String> = Vec::with_capacity(args.len());
    for a in args {
        argv.push(a.clone().into_string().map_err(|a| {
            fail(
                exit::USAGE,
                anyhow!("argument {a:?} is not valid UTF-8 (the broker takes text arguments)"),
            )
        })?);
    }
    let stream = UnixStream::connect(socket).map_err(|e| {
        fail(
            exit::ERROR,
            anyhow!(
                "a broker is configured at {} but cannot be reached ({e}). mlres does not fall back to a \
                 state dir of its own. Start it: `sudo systemctl start mlres-broker` (or the command \
                 `mlres setup broker` printed); `mlres broker status` checks it",
                socket.display()
            ),
        )
    })?;

    // Descriptors: stdio, cwd, maybe the terminal, and the numbered ones the flags name.
    let mut roles = vec![FdRole::Stdin, FdRole::Stdout, FdRole::Stderr, FdRole::Cwd];
    let cwd = open_path(".", libc::O_PATH | libc::O_DIRECTORY).map_err(|e| {
        fail(
            exit::ERROR,
            anyhow!("cannot open the working directory: {e}"),
        )
    })?;
    let mut owned: Vec<OwnedFd> = vec![cwd];
    let mut raw: Vec<RawFd> = vec![0, 1, 2, owned[0].as_raw_fd()];
    // A closed stdio descriptor cannot be passed: pass /dev/null in its place, which is what
    // the command would have read or written to no effect.
    for (slot, n) in [0, 1, 2].into_iter().enumerate() {
        // SAFETY: F_GETFD only queries the descriptor table.
        if unsafe { libc::fcntl(n, libc::F_GETFD) } < 0 {
            let null = open_path("/dev/null", libc::O_RDWR)
                .map_err(|e| fail(exit::ERROR, anyhow!("cannot open /dev/null: {e}")))?;
            raw[slot] = null.as_raw_fd();
            owned.push(null);
        }
    }
    if wants_tty(cmd)
        && let Ok(t) = open_path("/dev/tty", libc::O_RDWR | libc::O_NOCTTY)
    {
        roles.push(FdRole::Tty);
        raw.push(t.as_raw_fd());
        owned.push(t);
    }
    let mut next_free = 60;
    let mut i = 1;
    while i < argv.len() {
        let (flag, inline) = match argv[i].split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (argv[i].clone(), None),
        };
        let value_at = if inline.is_some() { i } else { i + 1 };
        let value = inline.clone().or_else(|| argv.get(i + 1).cloned());
        if FD_FLAGS.contains(&flag.as_str()) {
            let Some(n) = value.as_deref().and_then(|v| v.parse::<i32>().ok()) else {
                i += 1;
                continue;
            };
            if n >= 3 {
                roles.push(FdRole::Numbered(n));
                raw.push(n);
            }
        } else if let Some((_, fd_flag)) = FILE_FLAGS.iter().find(|(f, _)| *f == flag) {
            let Some(p) = value else {
                i += 1;
                continue;
            };
            let f = std::fs::File::open(&p)
                .map_err(|e| fail(exit::ERROR, anyhow!("cannot read {p}: {e}")))?;
            let meta = f
                .metadata()
                .map_err(|e| fail(exit::ERROR, anyhow!("cannot read {p}: {e}")))?;
            // SAFETY: getuid cannot fail.
            if meta.mode() & 0o077 != 0 || meta.uid() != unsafe { libc::getuid() } {
                return Err(fail(
                    exit::REFUSED,
                    anyhow!(
                        "{p} must belong to you and be readable by you only (chmod 600); nothing was done"
                    ),
                ));
            }
            let n = next_free;
            next_free += 1;
            roles.push(FdRole::Numbered(n));
            raw.push(f.as_raw_fd());
            owned.push(OwnedFd::from(f));
            if inline.is_some() {
                argv[i] = format!("{fd_flag}={n}");
            } else {
                argv[i] = fd_flag.to_string();
                argv[value_at] = n.to_string();
            }
        }
        i += 1;
    }
    if roles.len() > wire::MAX_FDS {
        return Err(fail(
            exit::USAGE,
            anyhow!("too many descriptors for one command"),
        ));
    }
    let env: BTreeMap<String, String> = wire::DISPLAY_ENV
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
        .collect();
    let req = Request {
        version: wire::VERSION,
        argv,
        env,
        fds: roles,
    };
    // Signals arrive for us (the terminal's foreground process group); the command runs in
    // the broker, so block them here and forward them from a thread.
    let sigs = if super::quick(cmd) {
        None
    } else {
        block_signals()
    };
    wire::send_request(&stream, &req, &raw).map_err(|e| {
        fail(
            exit::ERROR,
            anyhow!("cannot send the command to the broker: {e}"),
        )
    })?;
    drop(owned);
    if let (Some(set), Ok(mut tx)) = (sigs, stream.try_clone()) {
        std::thread::spawn(move || {
            loop {
                let mut sig: libc::c_int = 0;
                // SAFETY: `set` is an initialised sigset blocked in every thread (set before
                // this thread was spawned, so inherited); `sig` is writable.
                if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                    return;
                }
                if wire::write_msg(&mut tx, &ClientMsg::Signal(sig)).is_err() {
                    return;
                }
            }
        });
    }
    let mut rx = stream;
    match wire::read_msg::<Reply>(&mut rx) {
        Ok(Some(r)) => {
            if let Some(e) = r.error {
                eprintln!("error: {e}");
            }
            Ok(r.exit)
        }
        Ok(None) | Err(_) => Err(fail(
            exit::ERROR,
            anyhow!(
                "the broker ended the connection without an exit status (it may have been stopped or \
                 restarted); what it recorded is in the ledger: `mlres loop status`"
            ),
        )),
    }
}

fn open_path(p: &str, flags: libc::c_int) -> std::io::Result<OwnedFd> {
    let c = CString::new(Path::new(p).as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: `c` is a valid NUL-terminated path; open returns a new descriptor or -1.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by open and is owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Blocks SIGINT, SIGTERM and SIGHUP in this thread (and the threads it starts after).
fn block_signals() -> Option<libc::sigset_t> {
    // SAFETY: sigset_t is initialised by sigemptyset before use; pthread_sigmask only changes
    // this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        (libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) == 0).then_some(set)
    }
}
