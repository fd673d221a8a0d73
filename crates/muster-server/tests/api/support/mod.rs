//! Test helpers shared by the API test files, by topic. The gateway itself
//! (`spawn_app`, `TestApp`) is in `helpers.rs`.
pub mod keys;
pub mod receiver;
pub mod scim_peer;
