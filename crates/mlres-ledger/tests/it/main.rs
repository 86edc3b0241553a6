//! Integration tests of mlres-ledger.

mod approvals;
mod common;
mod concurrency;
mod files;
mod lifecycle;
mod remote;
mod tamper;
