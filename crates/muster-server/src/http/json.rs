//! A JSON body extractor whose rejections are problem documents that name
//! what was wrong (axum's own answer is plain text).
use crate::base::error::ApiError;
use crate::base::state::AppState;
use axum::extract::{FromRequest, Request};
use muster_proto::ErrorCode;
use serde::de::DeserializeOwned;

pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let m = crate::http::media_type(req.headers());
        let is_json = m == "application/json" || m.ends_with("+json");
        if !is_json {
            return Err(ApiError::UnsupportedMediaType(
                "the body must be application/json".into(),
            ));
        }
        let limit = state.config.limits.max_json_bytes;
        let bytes = crate::http::bodies::read_limited(req.into_body(), limit)
            .await
            .map_err(|e| e.api_error("the JSON body"))?;
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            // serde's message names the field and the expected type; it
            // does not repeat the value.
            let path = e.path().to_string();
            let inner = e.into_inner();
            let what = match inner.classify() {
                serde_json::error::Category::Data => "has the wrong shape",
                _ => "is not valid JSON",
            };
            ApiError::bad_request(
                ErrorCode::InvalidBody,
                format!(
                    "the JSON body {what} at '{path}' (line {}, column {})",
                    inner.line(),
                    inner.column()
                ),
            )
        })?;
        Ok(JsonBody(value))
    }
}
