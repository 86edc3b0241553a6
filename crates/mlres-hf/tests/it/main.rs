//! Integration tests of mlres-hf against the in-process fake.
