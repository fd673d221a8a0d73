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

/// Query parameters read into `T`. A parameter that does not parse, or
/// one `T` does not know, is a `400 invalid_parameter` problem (RFC 9457)
/// naming the parameter, where axum's own extractor answers in plain
/// text. The message is serde's, which names the field and the expected
/// form, never the value.
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(q.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(QueryParams)
            .map_err(|e| {
                let path = e.path().to_string();
                let why = e.into_inner().to_string();
                let detail = if path == "." {
                    format!("the query: {why}")
                } else {
                    format!("the query parameter '{path}': {why}")
                };
                ApiError::bad_request(ErrorCode::InvalidParameter, detail)
            })
    }
}
