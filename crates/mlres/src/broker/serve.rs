//! `mlres broker serve`: the daemon. One thread, one listening socket; every connection is
//! identified by `SO_PEERCRED` (the kernel's word, not the client's), checked against the
//! allowed uids, and served by a forked child that runs the requested command exactly as the
//! CLI would, with the client's descriptors as its stdio and the broker's state dir forced.

use std::collections::BTreeSet;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::anyhow;

use super::wire::{self, ClientMsg, FdRole, PeerCred, Reply};
use super::{Config, Served};
use crate::cli::{Cli, Command, ExpCmd, ServeArgs};
use crate::{Failure, exit, fail};

/// Most commands served at once (each is a process); more wait in the listen queue's stead
/// and are told the broker is busy.
const MAX_ACTIVE: usize = 64;
/// Descriptors received from a client are moved at or above this number before any is put
/// in place, so no placement can overwrite another.
const HIGH_FD: RawFd = 200;

struct Opts {
    socket: PathBuf,
    state_dir: PathBuf,
    clients: BTreeSet<u32>,
}

fn uid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}

fn opts(cli: &Cli, a: &ServeArgs) -> Result<Opts, Failure> {
    let cfg_path = a
        .config
        .clone()
        .or_else(|| Some(PathBuf::from(super::DEFAULT_CONFIG)).filter(|p| p.exists()));
    let cfg = cfg_path.as_deref().map(Config::load).transpose()?;
    let socket = a
        .socket
        .clone()
        .or_else(|| cfg.as_ref().map(|c| c.socket.clone()))
        .ok_or_else(|| {
            fail(
                exit::USAGE,
                anyhow!(
                    "no socket: give --socket PATH or --config (written by `mlres setup broker`)"
                ),
            )
        })?;
    let state_dir = cli
        .state_dir
        .clone()
        .or_else(|| cfg.as_ref().map(|c| c.state_dir.clone()))
        .ok_or_else(|| {
            fail(
                exit::USAGE,
                anyhow!("no state dir: give --state-dir DIR or --config (written by `mlres setup broker`)"),
            )
        })?;
    let mut clients: BTreeSet<u32> = cfg
        .map(|c| c.clients.into_iter().collect())
        .unwrap_or_default();
    for u in &a.allow_user {
        let id = match u.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                super::ids_of(u)
                    .ok_or_else(|| fail(exit::USAGE, anyhow!("--allow-user {u}: no such user")))?
                    .0
            }
        };
        clients.insert(id);
    }
    Ok(Opts {
        socket,
        state_dir,
        clients,
    })
}

/// Creates (0700) or checks the state dir: it must be ours and nobody else's to read.
fn own_state_dir(dir: &Path) -> Result<(), Failure> {
    if !dir.exists() {
        std::fs::create_dir_all(dir)
            .map_err(|e| fail(exit::ERROR, anyhow!("cannot create {}: {e}", dir.display())))?;
    }
    let m = std::fs::metadata(dir)
        .map_err(|e| fail(exit::ERROR, anyhow!("cannot read {}: {e}", dir.display())))?;
    if m.uid() != uid() {
        return Err(fail(
            exit::REFUSED,
            anyhow!(
                "the state dir {} belongs to uid {}, not to the broker's user (uid {}); `mlres setup broker` creates it",
                dir.display(),
                m.uid(),
                uid()
            ),
        ));
    }
    if m.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| {
            fail(
                exit::ERROR,
                anyhow!("cannot chmod 700 {}: {e}", dir.display()),
            )
        })?;
    }
    Ok(())
}

/// The socket's directory must not let anyone else replace the socket.
fn check_socket_dir(socket: &Path) -> Result<(), Failure> {
    let dir = socket
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let m = std::fs::metadata(dir).map_err(|e| {
        fail(
            exit::ERROR,
            anyhow!(
                "the socket directory {} is missing ({e}); `mlres setup broker` creates it",
                dir.display()
            ),
        )
    })?;
    if (m.uid() != uid() && m.uid() != 0) || m.mode() & 0o022 != 0 {
        return Err(fail(
            exit::REFUSED,
            anyhow!(
                "the socket directory {} must belong to the broker's user (or root) and be writable by it alone \
                 (now uid {}, mode {:o}): another user could replace the socket",
                dir.display(),
                m.uid(),
                m.mode() & 0o7777
            ),
        ));
    }
    Ok(())
}

pub fn run(cli: &Cli, a: &ServeArgs) -> Result<u8, Failure> {
    if uid() == 0 && !a.allow_root {
        return Err(fail(
            exit::REFUSED,
            anyhow!(
                "the broker must run as its own user, not root (`mlres setup broker` creates one); \
                 jobs would otherwise start from root"
            ),
        ));
    }
    let o = opts(cli, a)?;
    own_state_dir(&o.state_dir)?;
    // One broker per state dir.
    let lock_path = o.state_dir.join("broker.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&lock_path)
        .map_err(|e| {
            fail(
                exit::ERROR,
                anyhow!("cannot open {}: {e}", lock_path.display()),
            )
        })?;
    // SAFETY: flock on a descriptor we own; no memory is involved.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(fail(
            exit::REFUSED,
            anyhow!("another broker already serves {}", o.state_dir.display()),
        ));
    }
    check_socket_dir(&o.socket)?;
    if o.socket.exists() {
        if UnixStream::connect(&o.socket).is_ok() {
            return Err(fail(
                exit::REFUSED,
                anyhow!("another broker is listening on {}", o.socket.display()),
            ));
        }
        std::fs::remove_file(&o.socket)
            .map_err(|e| fail(exit::ERROR, anyhow!("cannot remove the stale socket: {e}")))?;
    }
    let listener = UnixListener::bind(&o.socket).map_err(|e| {
        fail(
            exit::ERROR,
            anyhow!("cannot listen on {}: {e}", o.socket.display()),
        )
    })?;
    // Anyone may connect; who they are is checked per connection (SO_PEERCRED).
    std::fs::set_permissions(&o.socket, std::fs::Permissions::from_mode(0o666))
        .map_err(|e| fail(exit::ERROR, anyhow!("cannot chmod the socket: {e}")))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| fail(exit::ERROR, anyhow!(e)))?;
    let stop = crate::signals::catch_interrupts().map_err(|e| fail(exit::ERROR, anyhow!(e)))?;
    // The command line's grammar, built once here: every forked command parses with its copy
    // instead of building clap's whole tree again (most of a quick command's cost).
    let mut grammar = <Cli as clap::CommandFactory>::command();
    grammar.build();
    let clients = if o.clients.is_empty() {
        "every local user".to_string()
    } else {
        o.clients
            .iter()
            .map(|u| format!("{} ({u})", super::user_of(*u)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    eprintln!(
        "mlres broker {}: serving {} on {} for {clients} (pid {})",
        env!("CARGO_PKG_VERSION"),
        o.state_dir.display(),
        o.socket.display(),
        std::process::id()
    );
    let mut active = 0usize;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        active -= reap();
        let mut pfd = libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, 500) };
        if n <= 0 {
            continue;
        }
        let Ok((conn, _)) = listener.accept() else {
            continue;
        };
        let _ = conn.set_nonblocking(false);
        let peer = match wire::peer_cred(&conn) {
            Ok(p) => p,
            Err(_) => continue,
        };
        if !o.clients.is_empty()
            && !o.clients.contains(&peer.uid)
            && peer.uid != uid()
            && peer.uid != 0
        {
            eprintln!(
                "mlres broker: refused uid {} (pid {}): not a client",
                peer.uid, peer.pid
            );
            refuse(
                conn,
                exit::REFUSED,
                format!(
                    "{} (uid {}) is not a client of this broker; `sudo mlres setup broker --client {}` adds it",
                    super::user_of(peer.uid),
                    peer.uid,
                    super::user_of(peer.uid)
                ),
            );
            continue;
        }
        if active >= MAX_ACTIVE {
            refuse(
                conn,
                exit::ERROR,
                format!("the broker is busy ({MAX_ACTIVE} commands running); try again"),
            );
            continue;
        }
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        // SAFETY: this process is single-threaded (the accept loop; nothing here starts a
        // thread), so the child is a complete copy that may do anything a fresh process may.
        let pid = unsafe { libc::fork() };
        match pid {
            0 => {
                let code = child(conn, listener.as_raw_fd(), peer, &o, &mut grammar);
                let _ = std::io::stdout().flush();
                std::process::exit(code as i32);
            }
            p if p > 0 => active += 1,
            _ => refuse(conn, exit::ERROR, "the broker cannot fork".into()),
        }
    }
    let _ = std::fs::remove_file(&o.socket);
    eprintln!(
        "mlres broker: stopped ({} commands still finishing on their own)",
        active
    );
    drop(lock);
    Ok(exit::OK)
}

/// Reaps finished command processes; returns how many.
fn reap() -> usize {
    let mut n = 0;
    loop {
        let mut status = 0;
        // SAFETY: waitpid with WNOHANG on our own children only writes `status`.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return n;
        }
        n += 1;
    }
}

fn refuse(mut conn: UnixStream, code: u8, error: String) {
    let _ = conn.set_write_timeout(Some(Duration::from_secs(2)));
    let _ = wire::write_msg(
        &mut conn,
        &Reply {
            exit: code,
            error: Some(error),
        },
    );
}

/// Moves `fd` to a close-on-exec descriptor at or above [`HIGH_FD`].
fn lift(fd: OwnedFd) -> std::io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on a descriptor we own returns a new one or -1.
    let n = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, HIGH_FD) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `n` was just created by fcntl and is owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

/// The connection's descriptor in a command process, for [`on_sigpipe`].
static CONN_FD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);
/// `{"exit":141}` as a frame: what a command killed by SIGPIPE reports (128 + 13, what a
/// shell shows for a single-user `mlres … | head`).
const SIGPIPE_REPLY: &[u8] = b"\0\0\0\x0c{\"exit\":141}";

extern "C" fn on_sigpipe(_: libc::c_int) {
    let fd = CONN_FD.load(std::sync::atomic::Ordering::SeqCst);
    // SAFETY: write and _exit are async-signal-safe; SIGPIPE_REPLY is a static buffer.
    unsafe {
        if fd >= 0 {
            libc::write(
                fd,
                SIGPIPE_REPLY.as_ptr() as *const libc::c_void,
                SIGPIPE_REPLY.len(),
            );
        }
        libc::_exit(141);
    }
}

/// The forked child: receive the request, put the client's descriptors in place, run the
/// command, send its exit code. Returns the exit code.
fn child(
    conn: UnixStream,
    listener: RawFd,
    peer: PeerCred,
    o: &Opts,
    grammar: &mut clap::Command,
) -> u8 {
    // SAFETY: in the single-threaded child: closing the listener (the parent keeps its own)
    // and restoring default dispositions affect only this process.
    unsafe {
        libc::close(listener);
        libc::signal(libc::SIGINT, libc::SIG_DFL);
        libc::signal(libc::SIGTERM, libc::SIG_DFL);
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::setsid();
    }
    let mut conn = match lift(OwnedFd::from(conn)) {
        Ok(fd) => UnixStream::from(fd),
        Err(_) => return exit::ERROR,
    };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let (req, fds) = match wire::recv_request(&mut conn) {
        Ok(r) => r,
        Err(e) => {
            refuse(conn, exit::USAGE, format!("malformed request: {e}"));
            return exit::USAGE;
        }
    };
    let _ = conn.set_read_timeout(None);
    // The client's reader went away (`mlres … | head`): end quietly, as single-user mode does,
    // but tell the client so it does not report a lost broker.
    CONN_FD.store(conn.as_raw_fd(), std::sync::atomic::Ordering::SeqCst);
    // SAFETY: the handler only calls async-signal-safe functions.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigpipe as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGPIPE, &sa, std::ptr::null_mut());
    }
    match place(&req, fds, &peer, o) {
        Ok(()) => {}
        Err(e) => {
            refuse(conn, exit::USAGE, e);
            return exit::USAGE;
        }
    }
    // Nothing of the broker's own stays open in the command: not its lock (a `loop run` that
    // outlives the broker would keep it held, and a restarted broker would be refused), and
    // no descriptor a `--secret-fd N` naming a number the client did not pass could read.
    let mut keep: Vec<RawFd> = vec![0, 1, 2, conn.as_raw_fd()];
    keep.extend(req.fds.iter().filter_map(|r| match r {
        FdRole::Numbered(n) => Some(*n),
        _ => None,
    }));
    if let Some(t) = super::served().and_then(|s| s.tty) {
        keep.push(t);
    }
    close_inherited(&keep);
    // From here the client's stderr is ours: errors go there as in single-user mode.
    let parsed = grammar
        .try_get_matches_from_mut(&req.argv)
        .and_then(|m| <Cli as clap::FromArgMatches>::from_arg_matches(&m));
    let code = match parsed {
        Err(e) => {
            let _ = e.print();
            if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            }
        }
        Ok(cli) => match admit(&cli, &req.argv, &peer, o) {
            Err(f) => {
                eprintln!("error: {:#}", f.error);
                f.code
            }
            Ok(()) => {
                if !super::quick(&cli.command) {
                    watch(&conn);
                }
                match crate::dispatch(cli) {
                    Ok(c) => c,
                    Err(f) => {
                        eprintln!("error: {:#}", f.error);
                        f.code
                    }
                }
            }
        },
    };
    let _ = std::io::stdout().flush();
    release_stdio();
    let _ = wire::write_msg(
        &mut conn,
        &Reply {
            exit: code,
            error: None,
        },
    );
    code
}

/// Points descriptors 0, 1 and 2 (the client's stdio) at /dev/null once the command is done,
/// before the exit code is sent: a client's reader (a pipe, `$(mlres …)`, an agent's shell
/// tool) then sees the end of the output when the client exits, as with a single-user
/// command, instead of also waiting for this process to tear itself down.
fn release_stdio() {
    let _ = std::io::stderr().flush();
    let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    else {
        return;
    };
    for fd in 0..3 {
        // SAFETY: dup2 of a descriptor we own onto 0, 1 or 2, which this process owns (the
        // client's stdio, placed by `place`); nothing holds them as an owned Rust object.
        unsafe {
            libc::dup2(null.as_raw_fd(), fd);
        }
    }
}

/// Closes every descriptor of this process except `keep`.
fn close_inherited(keep: &[RawFd]) {
    let open: Vec<RawFd> = match std::fs::read_dir("/proc/self/fd") {
        Ok(rd) => rd
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
            .collect(),
        Err(_) => return,
    };
    for fd in open {
        if !keep.contains(&fd) {
            // SAFETY: closing a descriptor no Rust object in this process owns: the listing's
            // own descriptor (already closed, EBADF) or ones inherited from the broker across
            // fork, which the command never uses.
            unsafe {
                libc::close(fd);
            }
        }
    }
}

/// Puts the passed descriptors in place (stdio, cwd, numbered), sets the environment and
/// records who is served.
fn place(req: &wire::Request, fds: Vec<OwnedFd>, peer: &PeerCred, o: &Opts) -> Result<(), String> {
    if req.version != wire::VERSION {
        return Err(format!(
            "this broker speaks protocol {} and the client {}: run the same mlres version on both sides",
            wire::VERSION,
            req.version
        ));
    }
    let count = |r: FdRole| req.fds.iter().filter(|x| **x == r).count();
    for r in [FdRole::Stdin, FdRole::Stdout, FdRole::Stderr, FdRole::Cwd] {
        if count(r) != 1 {
            return Err(format!(
                "the request must pass exactly one {r:?} descriptor"
            ));
        }
    }
    if count(FdRole::Tty) > 1 {
        return Err("more than one terminal passed".into());
    }
    let mut numbers = BTreeSet::new();
    for r in &req.fds {
        if let FdRole::Numbered(n) = r
            && (!(3..=99).contains(n) || !numbers.insert(*n))
        {
            return Err(format!(
                "descriptor number {n} is not allowed (3 to 99, once each)"
            ));
        }
    }
    let mut lifted = Vec::with_capacity(fds.len());
    for fd in fds {
        lifted.push(lift(fd).map_err(|e| format!("cannot take a descriptor: {e}"))?);
    }
    let mut tty = None;
    for (role, fd) in req.fds.iter().zip(lifted) {
        let target = match role {
            FdRole::Stdin => 0,
            FdRole::Stdout => 1,
            FdRole::Stderr => 2,
            FdRole::Numbered(n) => *n,
            FdRole::Cwd => {
                // SAFETY: fchdir on a descriptor we own.
                if unsafe { libc::fchdir(fd.as_raw_fd()) } != 0 {
                    return Err(format!(
                        "cannot enter the client's working directory: {}",
                        std::io::Error::last_os_error()
                    ));
                }
                continue;
            }
            FdRole::Tty => {
                tty = Some(fd.into_raw_fd());
                continue;
            }
        };
        // SAFETY: dup2 onto a target number: it is not one of the lifted descriptors (all at
        // or above HIGH_FD) nor the connection (lifted too), so nothing we hold is replaced.
        if unsafe { libc::dup2(fd.as_raw_fd(), target) } < 0 {
            return Err(format!(
                "cannot place descriptor {target}: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    // The environment: the broker's own, with the state dir forced, the client's display
    // settings, and the broker's stored token. Nothing else of the client's.
    // SAFETY: this child is still single-threaded (the watcher thread starts after), so no
    // other thread can read the environment while it changes.
    unsafe {
        std::env::remove_var("MLRES_BROKER_SOCKET");
        std::env::set_var("MLRES_STATE_DIR", &o.state_dir);
        for k in wire::DISPLAY_ENV {
            std::env::remove_var(k);
        }
        for (k, v) in &req.env {
            if wire::DISPLAY_ENV.contains(&k.as_str()) {
                std::env::set_var(k, v);
            }
        }
        let token = o.state_dir.join(super::setup::TOKEN_FILE);
        if std::env::var_os("HF_TOKEN").is_none() && token.exists() {
            std::env::set_var("HF_TOKEN_PATH", &token);
        }
    }
    super::set_served(Served {
        peer: *peer,
        peer_name: super::user_of(peer.uid),
        tty,
        state_dir: o.state_dir.clone(),
    });
    Ok(())
}

/// What the broker refuses to run for a client, before anything runs: another state dir,
/// the commands that run in the client's own process, and paths the client could not reach
/// itself (the broker's rights must not become the client's).
fn admit(cli: &Cli, argv: &[String], peer: &PeerCred, o: &Opts) -> Result<(), Failure> {
    if cli.state_dir.is_some() {
        return Err(fail(
            exit::USAGE,
            anyhow!(
                "--state-dir is not allowed in broker mode: the state dir is the broker's ({})",
                o.state_dir.display()
            ),
        ));
    }
    if super::runs_locally(&cli.command) {
        return Err(fail(
            exit::USAGE,
            anyhow!("this command runs in the client's own process, not in the broker"),
        ));
    }
    let refused = |e: String| {
        fail(
            exit::REFUSED,
            anyhow!("{e}; the broker reads and writes only what you could"),
        )
    };
    let inside_state = |p: &Path| {
        std::fs::canonicalize(p)
            .ok()
            .zip(std::fs::canonicalize(&o.state_dir).ok())
            .is_some_and(|(p, s)| p.starts_with(&s))
    };
    let project = &cli.project;
    if project.exists() {
        if inside_state(project) {
            return Err(refused(format!(
                "{} is inside the broker's state dir",
                project.display()
            )));
        }
        peer_may(project, peer, 5).map_err(refused)?;
    }
    // Any argument that names an existing path (a data file, an upload, `--against`, a
    // `--flag=PATH`): the client must be able to read it itself.
    let cwd = std::env::current_dir().unwrap_or_default();
    for arg in argv.iter().skip(1) {
        let cand = match arg.split_once('=') {
            Some((k, v)) if k.starts_with("--") => v,
            _ => arg.as_str(),
        };
        if cand.is_empty() || cand.len() > 4096 || cand.starts_with("hf:") {
            continue;
        }
        for base in [&cwd, project] {
            let p = base.join(cand);
            if let Ok(m) = std::fs::metadata(&p) {
                peer_may(&p, peer, if m.is_dir() { 5 } else { 4 }).map_err(refused)?;
            }
        }
    }
    // The datasets program.md declares: a job would be granted them, and approval prints
    // their rows; the client must be able to read them itself.
    // (A program that never says "datasets" declares none: no need to parse it here.)
    if super::uses_datasets(&cli.command)
        && std::fs::read_to_string(project.join("program.md")).is_ok_and(|t| t.contains("datasets"))
        && let Ok(p) = mlres_engine::Project::load(project)
    {
        for d in mlres_engine::local_dataset_paths(&p) {
            if inside_state(&d) {
                return Err(refused(format!(
                    "dataset {} is inside the broker's state dir",
                    d.display()
                )));
            }
            if let Ok(m) = std::fs::metadata(&d) {
                peer_may(&d, peer, if m.is_dir() { 5 } else { 4 })
                    .map_err(|e| refused(format!("dataset: {e}")))?;
            }
        }
    }
    // Where the broker would create or write files for the client: the nearest existing
    // directory must be one the client could write, and none of the broker's state.
    let target = match &cli.command {
        Command::Demo(a) => Some(a.dir.clone()),
        Command::Exp(ExpCmd::Artifacts(a)) => a.to.as_ref().map(|to| project.join(to)),
        Command::Report(a) => a.out.clone(),
        _ => None,
    };
    if let Some(t) = target {
        let mut at = t.clone();
        while !at.exists() {
            match at.parent() {
                Some(p) if !p.as_os_str().is_empty() => at = p.to_path_buf(),
                _ => {
                    at = PathBuf::from(".");
                    break;
                }
            }
        }
        if inside_state(&at) {
            return Err(refused(format!(
                "{} is inside the broker's state dir",
                t.display()
            )));
        }
        peer_may(&at, peer, 3).map_err(refused)?;
    }
    Ok(())
}

fn peer_may(p: &Path, peer: &PeerCred, want: u32) -> Result<(), String> {
    super::peer_may(p, peer, want)
}

/// Delivers the client's forwarded signals to this command; a client that goes away is
/// treated as SIGTERM (a terminal closing on a single-user `loop run` ends it too).
fn watch(conn: &UnixStream) {
    let Ok(mut rx) = conn.try_clone() else { return };
    std::thread::spawn(move || {
        loop {
            let sig = match wire::read_msg::<ClientMsg>(&mut rx) {
                Ok(Some(ClientMsg::Signal(s)))
                    if [libc::SIGINT, libc::SIGTERM, libc::SIGHUP].contains(&s) =>
                {
                    if s == libc::SIGHUP { libc::SIGTERM } else { s }
                }
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => libc::SIGTERM,
            };
            // SAFETY: kill on our own pid with a valid signal number.
            unsafe {
                libc::kill(libc::getpid(), sig);
            }
            if sig == libc::SIGTERM {
                return;
            }
        }
    });
}
