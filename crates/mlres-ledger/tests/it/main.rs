//! Integration tests of mlres-ledger.

mod approvals;
mod budget;
mod common;
mod concurrency;
mod files;
mod keep;
mod lifecycle;
mod remote;
mod tamper;
