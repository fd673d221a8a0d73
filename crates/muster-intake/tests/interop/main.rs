//! Interop of `muster_intake::decrypt` with the real peers: files made by
//! GnuPG and the age CLI decrypt to the exact plaintext, our own output
//! decrypts with them, and every refusal is shown on a file they made.
//!
//! The tools are found on PATH (`scripts/install-test-tools` installs
//! them). When one is missing the test fails under `CI=true` and is
//! otherwise skipped with a loud line on stderr.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod age_cli;
mod gpg;
mod support;
