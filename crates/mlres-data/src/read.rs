//! read (in progress).
