//! What every room stands on: the error type every room returns, the
//! configuration, the state every handler
//! and job shares, the master key ring and what it seals, the data
//! directory, telemetry.
pub mod config;
pub(crate) mod data_dir;
pub(crate) mod error;
pub(crate) mod master_key;
pub(crate) mod metrics;
pub(crate) mod sealed;
pub(crate) mod state;
pub(crate) mod telemetry;
pub(crate) mod tenant_keys;
