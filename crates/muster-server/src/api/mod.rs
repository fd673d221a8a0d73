//! The JSON API: thin handlers that extract, call an operation and shape the answer.
pub(crate) mod admin;
pub(crate) mod admin_tokens;
pub(crate) mod audit;
pub(crate) mod client_keys;
pub(crate) mod imports;
pub(crate) mod issuers;
pub(crate) mod keys;
pub(crate) mod login_sync;
pub(crate) mod master_key;
pub(crate) mod people;
pub(crate) mod subscriptions;

use crate::base::error::{ApiError, ApiResult};
use muster_proto::ErrorCode;

/// The `limit` query parameter of a listing: 1 to 1000, 100 when absent.
pub(crate) fn page_limit(limit: Option<u32>) -> ApiResult<u32> {
    match limit {
        None => Ok(100),
        Some(l) if (1..=1000).contains(&l) => Ok(l),
        Some(_) => Err(ApiError::bad_request(
            ErrorCode::InvalidParameter,
            "limit: must be between 1 and 1000",
        )),
    }
}
