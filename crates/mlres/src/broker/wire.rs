//! The broker's wire format over its Unix socket.
//!
//! A client sends one [`Request`] (a 4-byte big-endian length, then JSON) whose first byte
//! carries its file descriptors as `SCM_RIGHTS`: its stdin, stdout, stderr, its working
//! directory (`O_PATH`), and where a command reads a secret, its terminal and the descriptors
//! it named (`--secret-fd N`). The broker runs the command with those as its own stdio, so
//! output, colours, `--json` and prompts are exactly what single-user mode gives. After the
//! request the client may send [`ClientMsg::Signal`] frames (it forwards SIGINT/SIGTERM/SIGHUP);
//! the broker ends with one [`Reply`] holding the exit code.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use serde::{Deserialize, Serialize};

/// Protocol version; a mismatch is refused with both versions named.
pub const VERSION: u32 = 1;
/// Largest frame accepted (argv and a few variables; not a data channel).
pub const MAX_FRAME: usize = 1 << 20;
/// Most descriptors a request may carry.
pub const MAX_FDS: usize = 8;

/// What a passed descriptor is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FdRole {
    Stdin,
    Stdout,
    Stderr,
    /// The client's working directory, opened `O_PATH | O_DIRECTORY`.
    Cwd,
    /// The client's controlling terminal (only for commands that read a secret).
    Tty,
    /// A descriptor the command line names (`--secret-fd N`): it becomes N in the broker.
    Numbered(i32),
}

/// One command to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    pub version: u32,
    /// The full argv, `argv[0]` included.
    pub argv: Vec<String>,
    /// Display settings only (`TERM`, `NO_COLOR`, `COLUMNS`, …); never credentials or
    /// `MLRES_*`: the broker's own environment decides everything else.
    pub env: BTreeMap<String, String>,
    /// The role of each passed descriptor, in order.
    pub fds: Vec<FdRole>,
}

/// Client → broker after the request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientMsg {
    /// The client received this signal; the broker delivers it to the command.
    Signal(i32),
}

/// Broker → client: the end of the command.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reply {
    pub exit: u8,
    /// Set when the broker refused the request before running anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Display variables a client may pass on.
pub const DISPLAY_ENV: &[&str] = &[
    "TERM",
    "NO_COLOR",
    "CLICOLOR",
    "CLICOLOR_FORCE",
    "COLUMNS",
    "LINES",
];

fn frame(body: &[u8]) -> io::Result<Vec<u8>> {
    if body.len() > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "frame too large",
        ));
    }
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    Ok(out)
}

/// Writes one JSON frame.
pub fn write_msg<T: Serialize>(s: &mut UnixStream, msg: &T) -> io::Result<()> {
    let body = serde_json::to_vec(msg).map_err(io::Error::other)?;
    s.write_all(&frame(&body)?)
}

/// Reads one JSON frame; `Ok(None)` at a clean end of stream.
pub fn read_msg<T: for<'de> Deserialize<'de>>(s: &mut UnixStream) -> io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match s.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    read_body(s, u32::from_be_bytes(len) as usize).map(Some)
}

fn read_body<T: for<'de> Deserialize<'de>>(s: &mut UnixStream, len: usize) -> io::Result<T> {
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes is larger than {MAX_FRAME}"),
        ));
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)?;
    serde_json::from_slice(&body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Sends the request with `fds` attached (`SCM_RIGHTS`).
pub fn send_request(s: &UnixStream, req: &Request, fds: &[RawFd]) -> io::Result<()> {
    if fds.len() != req.fds.len() || fds.len() > MAX_FDS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "descriptor roles do not match",
        ));
    }
    let body = serde_json::to_vec(req).map_err(io::Error::other)?;
    let data = frame(&body)?;
    let fd_bytes = std::mem::size_of_val(fds);
    // SAFETY: CMSG_SPACE is a pure computation on its argument.
    let space = unsafe { libc::CMSG_SPACE(fd_bytes as u32) } as usize;
    let mut cbuf = vec![0u8; space];
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: msghdr is a plain C struct; all-zero is valid and the fields used are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = space as _;
    // SAFETY: `msg` points at `cbuf`, which has CMSG_SPACE(fd_bytes) bytes, so CMSG_FIRSTHDR is
    // non-null and its CMSG_DATA has room for `fd_bytes` bytes; the copy stays inside `cbuf`.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(fd_bytes as u32) as _;
        std::ptr::copy_nonoverlapping(fds.as_ptr() as *const u8, libc::CMSG_DATA(c), fd_bytes);
    }
    // The descriptors travel with the first bytes; send the rest with plain writes.
    // SAFETY: `msg` and everything it points to (iov → data, control → cbuf) are alive and
    // correctly sized for the duration of the call.
    let n = unsafe { libc::sendmsg(s.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut rest = &data[n as usize..];
    let mut w = s;
    while !rest.is_empty() {
        let k = w.write(rest)?;
        if k == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        rest = &rest[k..];
    }
    Ok(())
}

/// Receives a request and its descriptors (close-on-exec, owned).
pub fn recv_request(s: &mut UnixStream) -> io::Result<(Request, Vec<OwnedFd>)> {
    let mut len = [0u8; 4];
    let mut got = 0usize;
    let mut fds: Vec<OwnedFd> = Vec::new();
    // SAFETY: CMSG_SPACE is a pure computation on its argument.
    let space =
        unsafe { libc::CMSG_SPACE((MAX_FDS * std::mem::size_of::<RawFd>()) as u32) } as usize;
    let mut cbuf = vec![0u8; space];
    while got < 4 {
        let mut iov = libc::iovec {
            iov_base: len[got..].as_mut_ptr() as *mut libc::c_void,
            iov_len: 4 - got,
        };
        // SAFETY: plain C struct, all-zero is valid; fields set below.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = space as _;
        // SAFETY: `msg` points at live buffers of the sizes it states.
        let n = unsafe { libc::recvmsg(s.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        // SAFETY: the kernel filled `msg_control` with `msg_controllen` bytes of well-formed
        // cmsgs; CMSG_FIRSTHDR/NXTHDR walk only inside that. Each SCM_RIGHTS payload is an
        // array of descriptors the kernel just installed in this process, which we now own
        // (read unaligned: CMSG_DATA need not be aligned for i32 on every ABI).
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                    let bytes = (*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                    let count = bytes / std::mem::size_of::<RawFd>();
                    let data = libc::CMSG_DATA(c) as *const RawFd;
                    for i in 0..count {
                        let fd = std::ptr::read_unaligned(data.add(i));
                        fds.push(OwnedFd::from_raw_fd(fd));
                    }
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        if msg.msg_flags & libc::MSG_CTRUNC != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("more than {MAX_FDS} descriptors sent"),
            ));
        }
        got += n as usize;
    }
    let req: Request = read_body(s, u32::from_be_bytes(len) as usize)?;
    if req.fds.len() != fds.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the request names {} descriptors but carries {}",
                req.fds.len(),
                fds.len()
            ),
        ));
    }
    Ok((req, fds))
}

/// The peer's credentials (`SO_PEERCRED`): set by the kernel at connect, not by the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCred {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
}

pub fn peer_cred(s: &UnixStream) -> io::Result<PeerCred> {
    // SAFETY: ucred is a plain C struct; all-zero is valid and getsockopt fills it.
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` is a writable ucred and `len` its size, as SO_PEERCRED requires.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            &mut cred as *mut libc::ucred as *mut libc::c_void,
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(PeerCred {
        pid: cred.pid,
        uid: cred.uid,
        gid: cred.gid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_and_descriptors_round_trip() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let f = std::fs::File::open("/proc/self/status").unwrap();
        let req = Request {
            version: VERSION,
            argv: vec!["mlres".into(), "loop".into(), "status".into()],
            env: BTreeMap::from([("TERM".into(), "xterm".into())]),
            fds: vec![FdRole::Numbered(5)],
        };
        send_request(&a, &req, &[f.as_raw_fd()]).unwrap();
        let (got, fds) = recv_request(&mut b).unwrap();
        assert_eq!(got.argv, req.argv);
        assert_eq!(got.fds, vec![FdRole::Numbered(5)]);
        assert_eq!(fds.len(), 1);
        let mut s = String::new();
        std::fs::File::from(fds.into_iter().next().unwrap())
            .read_to_string(&mut s)
            .unwrap();
        assert!(
            s.contains("Uid:"),
            "the passed descriptor reads the same file"
        );
    }

    #[test]
    fn mismatched_roles_and_oversized_frames_are_refused() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let req = Request {
            version: VERSION,
            argv: vec![],
            env: BTreeMap::new(),
            fds: vec![FdRole::Stdin, FdRole::Stdout],
        };
        // Claims two descriptors, carries none: the sender refuses, and a raw frame that
        // lies is refused by the receiver.
        assert!(send_request(&a, &req, &[]).is_err());
        let body = serde_json::to_vec(&req).unwrap();
        (&a).write_all(&frame(&body).unwrap()).unwrap();
        let err = recv_request(&mut b).unwrap_err();
        assert!(
            err.to_string()
                .contains("names 2 descriptors but carries 0"),
            "{err}"
        );

        let (mut a, mut b) = UnixStream::pair().unwrap();
        a.write_all(&(u32::MAX).to_be_bytes()).unwrap();
        let err = recv_request(&mut b).unwrap_err();
        assert!(err.to_string().contains("larger than"), "{err}");
    }

    #[test]
    fn peer_credentials_are_the_kernel_s() {
        let (a, _b) = UnixStream::pair().unwrap();
        let c = peer_cred(&a).unwrap();
        // SAFETY: getuid/getpid cannot fail.
        let (uid, pid) = unsafe { (libc::getuid(), libc::getpid()) };
        assert_eq!((c.uid, c.pid), (uid, pid));
    }
}
