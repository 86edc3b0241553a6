//! SIGINT/SIGTERM for long-running commands: the first signal asks the engine to stop at its
//! next step (so the command can say what it leaves running); a second one, with the default
//! disposition restored by `SA_RESETHAND`, ends the process at once.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);
static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    // Only atomic stores: async-signal-safe.
    SIGNAL.store(sig, Ordering::SeqCst);
    REQUESTED.store(true, Ordering::SeqCst);
}

/// Installs the handler for SIGINT and SIGTERM and returns the flag it sets. Fails only if
/// `sigaction` does (then the default disposition stays).
pub fn catch_interrupts() -> std::io::Result<&'static AtomicBool> {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed `sigaction` is a valid starting value; the handler only stores to
        // atomics (async-signal-safe), and the struct lives until the call returns.
        let rc = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            sa.sa_flags = libc::SA_RESETHAND | libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(&REQUESTED)
}

/// The signal that interrupted us, if any, with its conventional exit status (128 + number).
pub fn received() -> Option<(&'static str, u8)> {
    match SIGNAL.load(Ordering::SeqCst) {
        libc::SIGINT => Some(("SIGINT", 130)),
        libc::SIGTERM => Some(("SIGTERM", 143)),
        _ => None,
    }
}
