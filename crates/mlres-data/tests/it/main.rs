//! Integration tests of mlres-data.

mod inspect;
mod read;
