//! End-to-end tests of the `mlres` binary: approval pinning, the loop, crash safety,
//! concurrency, the sandbox as seen through the ledger, and the demo.

mod approval;
mod artifacts;
mod broker;
mod claude;
mod cli;
mod code;
mod concurrency;
mod crash;
mod data_audit;
mod data_inspect;
mod datasets;
mod demo;
mod hfjobs;
mod hub;
mod keep;
mod loop_truth;
mod mcp;
mod newcomer;
mod plugin;
mod readme;
mod research;
mod retention;
mod sandbox;
mod search;
mod setup;
mod slurm;
mod state_reset;
mod support;
mod templates;
mod trl;
mod view;
