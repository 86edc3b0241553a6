//! Reading the approval secret: from the controlling terminal (echo off), from a file
//! descriptor, or from a file only its owner can read. Never from an argument or the
//! environment, where other processes could see it.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{Context, anyhow};
use mlres_engine::{HumanApprover, SecretSource};

use crate::{Failure, exit, fail};

/// Where the secret comes from, per the command's flags.
pub(crate) enum From<'a> {
    Fd(i32),
    File(&'a Path),
    Terminal,
}

impl<'a> From<'a> {
    pub(crate) fn of(fd: Option<i32>, file: Option<&'a Path>) -> From<'a> {
        match (fd, file) {
            (Some(fd), _) => From::Fd(fd),
            (None, Some(p)) => From::File(p),
            (None, None) => From::Terminal,
        }
    }
}

/// The real uid of this process (from `/proc/self/status`); in the broker, the client's
/// (from `SO_PEERCRED`).
pub(crate) fn uid() -> u32 {
    if let Some(s) = crate::broker::served() {
        return s.peer.uid;
    }
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(u32::MAX)
}

/// Reads one secret; `prompt` is shown on the terminal when reading from it.
pub(crate) fn read(from: &From<'_>, prompt: &str) -> Result<(String, SecretSource), Failure> {
    match from {
        From::Fd(fd) => {
            if *fd < 3 {
                return Err(fail(
                    exit::USAGE,
                    anyhow!(
                        "--secret-fd {fd}: use a descriptor of your own (3 or above), e.g. `3< secret.txt`"
                    ),
                ));
            }
            // Reopening through /proc reads what the descriptor refers to (a pipe or a file)
            // without taking ownership of a raw descriptor. In the broker the descriptor is
            // the client's (its 0600 file, its pipe): a reopen is a new open checked against
            // the broker's user and refused, so the passed descriptor itself is read (a dup).
            let f = match crate::broker::served() {
                Some(_) => dup_file(*fd),
                None => File::open(format!("/proc/self/fd/{fd}")),
            }
            .with_context(|| format!("--secret-fd {fd}: not an open descriptor"))?;
            Ok((first_line(f)?, SecretSource::Fd))
        }
        From::File(p) => {
            let meta = std::fs::metadata(p)
                .with_context(|| format!("cannot read the secret file {}", p.display()))?;
            if meta.mode() & 0o077 != 0 || meta.uid() != uid() {
                return Err(fail(
                    exit::REFUSED,
                    anyhow!(
                        "{} must belong to you and be readable by you only (chmod 600); nothing was done",
                        p.display()
                    ),
                ));
            }
            let f = File::open(p)
                .with_context(|| format!("cannot read the secret file {}", p.display()))?;
            Ok((first_line(f)?, SecretSource::File))
        }
        From::Terminal => Ok((read_tty(prompt)?, SecretSource::Terminal)),
    }
}

fn first_line(f: impl Read) -> Result<String, Failure> {
    let mut line = String::new();
    BufReader::new(f.take(4096))
        .read_line(&mut line)
        .context("cannot read the secret")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// Restores the terminal's settings when dropped, so echo comes back even on an error.
struct EchoOff {
    fd: i32,
    saved: libc::termios,
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        // SAFETY: `fd` is the open /dev/tty this guard was made for (it outlives the guard:
        // `read_tty` drops the guard before the file), and `saved` is a termios that
        // tcgetattr filled for that same descriptor.
        unsafe {
            libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved);
        }
    }
}

fn read_tty(prompt: &str) -> Result<String, Failure> {
    // In the broker, the client's terminal arrives as a descriptor (the broker has none).
    let opened = match crate::broker::served() {
        Some(s) => match s.tty {
            Some(fd) => dup_file(fd),
            None => Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
        },
        None => OpenOptions::new().read(true).write(true).open("/dev/tty"),
    };
    let mut tty = opened.map_err(|_| {
        fail(
            exit::REFUSED,
            anyhow!(
                "approval needs a human: run this in a terminal, or give the approval secret with \
                     --secret-fd N or --secret-file PATH (agents have neither)"
            ),
        )
    })?;
    let fd = tty.as_raw_fd();
    // SAFETY: termios is a plain C struct of integers and arrays; all-zero is a valid value,
    // and tcgetattr overwrites it before it is read.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is an open descriptor (owned by `tty`, alive for this whole function) and
    // `t` is a valid, writable termios.
    if unsafe { libc::tcgetattr(fd, &mut t) } != 0 {
        return Err(fail(
            exit::REFUSED,
            anyhow!(
                "/dev/tty is not a terminal; give the secret with --secret-fd or --secret-file"
            ),
        ));
    }
    let guard = EchoOff { fd, saved: t };
    let mut quiet = t;
    quiet.c_lflag &= !(libc::ECHO | libc::ECHONL);
    quiet.c_lflag |= libc::ICANON;
    // SAFETY: as above; `quiet` is a copy of the settings tcgetattr returned, with echo off.
    unsafe {
        libc::tcsetattr(fd, libc::TCSAFLUSH, &quiet);
    }
    let _ = write!(tty, "{prompt}");
    let _ = tty.flush();
    let mut line = String::new();
    let r = BufReader::new(&tty).read_line(&mut line);
    drop(guard);
    let _ = writeln!(tty);
    r.context("cannot read from the terminal")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// A `File` of its own for a descriptor this process keeps open.
fn dup_file(fd: i32) -> std::io::Result<File> {
    // SAFETY: `fd` is a descriptor the broker received for this command (the terminal, or a
    // numbered one) and keeps open for the whole process, or one that is not open (then dup
    // fails with EBADF); `dup` only creates a new descriptor.
    let n = unsafe { libc::dup(fd) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `n` was just returned by dup and is owned by nothing else.
    Ok(unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(n) })
}

/// The approver for this process, with their secret read from `from`.
pub(crate) fn approver(from: &From<'_>) -> Result<HumanApprover, Failure> {
    let (secret, source) = read(
        from,
        "Approval secret (authorises spending within this envelope): ",
    )?;
    Ok(HumanApprover {
        user: crate::user_name(),
        uid: uid(),
        source,
        secret,
    })
}
