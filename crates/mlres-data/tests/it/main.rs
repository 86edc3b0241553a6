//! Integration tests of mlres-data.

mod audit;
mod inspect;
mod manifest;
mod pii;
mod read;
mod trigger_real;
