//! manifest (in progress).
