//! Integration tests of mlres-train.

mod gradcheck;
