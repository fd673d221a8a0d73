//! Muster's domain: identifiers, the person schema, the mapping engine, record
//! merge and diff, audit-chain hashing, permissions and write policies.
//!
//! Nothing in this crate does I/O, async work, SQL or HTTP: it is the pure
//! logic that every other crate agrees on.
#![forbid(unsafe_code)]

pub mod audit;
pub mod clock;
pub mod ids;
pub mod mapping;
pub mod person;
pub mod policy;
pub mod schema;
pub mod secret;
pub mod value;

pub use ids::{ExternalId, IdError, TenantId};
pub use value::{AttrValue, Attributes};

/// A row problem as an import keeps it: the row, the column and attribute
/// it concerns, a stable code (docs/errors.md#row-errors) and a message.
/// Never holds a cell's value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RowErrorRecord {
    pub row: u64,
    pub column: Option<String>,
    pub attribute: Option<String>,
    pub code: String,
    pub message: String,
}
