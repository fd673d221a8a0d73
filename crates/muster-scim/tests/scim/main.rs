//! The replay of the `scim_filter` and `scim_patch` fuzz corpora, and the
//! crate's public API as the server will call it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod fuzz_corpus;
