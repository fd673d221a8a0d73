//! The protocol core of Muster's SCIM 2.0 service provider (RFC 7643,
//! RFC 7644), without I/O: the schema model and the built-in User,
//! Enterprise User and Group schemas ([`schema`]), attribute paths
//! ([`path`]), the filter language with its evaluation ([`filter`]), the
//! PATCH engine and the Group membership view of a PATCH ([`patch`]),
//! `attributes`/`excludedAttributes` ([`projection`]), `sortBy`
//! ([`sort`]), the error body ([`error`]) and the message shapes of list,
//! search, PATCH and bulk requests ([`messages`]). The server maps HTTP
//! onto these; see `docs/scim.md`. [`fuzz`] holds the entry points of the
//! `scim_filter` and `scim_patch` fuzz targets (`docs/fuzzing.md`).
#![forbid(unsafe_code)]

pub mod error;
pub mod filter;
pub mod fuzz;
pub mod messages;
pub mod patch;
pub mod path;
pub mod projection;
pub mod schema;
pub mod sort;

pub use error::{ScimError, ScimType};
pub use filter::{CompValue, CompareOp, Filter, PatchPath};
pub use messages::{BulkRequest, BulkResponse, ListResponse, PatchRequest, SearchRequest};
pub use patch::{apply, group_changes, GroupChange, PatchOperation, PatchOutcome};
pub use path::AttrPath;
pub use projection::{project, Projection};
pub use schema::{Attribute, ResourceSchemas, Schema};
pub use sort::{SortBy, SortOrder};
