//! Integration tests of mlres-data.
