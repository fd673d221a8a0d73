//! Streaming readers for uploads: [`decrypt`] opens OpenPGP- or
//! age-encrypted uploads as they stream in, [`seal`] keeps an upload encrypted at rest
//! while it waits, and [`records`] turns CSV or JSON-lines bytes into raw
//! records and row problems, one at a time, with bounded memory;
//! [`scim_bulk`] reads SCIM BulkRequests and ListResponses for it;
//! [`text`] tells files that are not text apart and decodes declared
//! encodings to UTF-8 before them.
//! [`sealed_box`] seals short secrets (HMAC signing keys) under the master key.
//! [`row_index`] is the validation pass's index on disk, which finds
//! duplicate keys and unresolvable managers once the whole file is read.
//! [`fuzz`] holds the entry points of the fuzz targets (`docs/fuzzing.md`).
#![forbid(unsafe_code)]

pub mod decrypt;
pub mod fuzz;
pub mod records;
pub mod row_index;
pub mod scim_bulk;
pub mod seal;
pub mod sealed_box;
pub mod text;
