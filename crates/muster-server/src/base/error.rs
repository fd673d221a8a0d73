//! One error type for the API with an explicit status mapping and a stable
//! machine-readable code. Bodies are RFC 9457 problem documents; a 500 tells
//! the client nothing internal while the log gets the whole cause.
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use muster_proto::{ErrorCode, Problem, RowErrorInfo};
use muster_store::StoreError;

#[derive(Debug)]
pub enum ApiError {
    /// 401; the reason goes into the body and `WWW-Authenticate`.
    Unauthorized(&'static str),
    /// 401 with its own stable code: a refused login-sync token.
    AuthRefused {
        code: ErrorCode,
        detail: &'static str,
    },
    /// 403, naming the missing permission.
    Forbidden(String),
    NotFound(&'static str),
    /// 400: a parameter or header is malformed; the text names it.
    BadRequest {
        code: ErrorCode,
        detail: String,
    },
    /// 422: well-formed but not acceptable (validation, unknown references).
    Unprocessable {
        code: ErrorCode,
        detail: String,
        errors: Vec<RowErrorInfo>,
    },
    Conflict(String),
    UnsupportedMediaType(String),
    PayloadTooLarge(String),
    /// 408: the request body arrived too slowly (or stalled).
    RequestTimeout {
        code: ErrorCode,
        detail: String,
    },
    /// 503: a dependency (the database) cannot be reached; the cause is
    /// logged, the text says only what is down.
    Unavailable(anyhow::Error),
    Internal(anyhow::Error),
}

impl ApiError {
    pub fn bad_request(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            detail: detail.into(),
        }
    }
    pub fn unprocessable(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::Unprocessable {
            code,
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) | ApiError::AuthRefused { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The text of the answer (never a value of the request).
    pub fn detail(&self) -> String {
        self.parts().1
    }

    fn parts(&self) -> (ErrorCode, String) {
        match self {
            ApiError::Unauthorized(r) => (ErrorCode::InvalidToken, (*r).to_owned()),
            ApiError::AuthRefused { code, detail } => (*code, (*detail).to_owned()),
            ApiError::Forbidden(p) => (
                ErrorCode::Forbidden,
                format!("this credential lacks the permission '{p}'"),
            ),
            ApiError::NotFound(what) => (ErrorCode::NotFound, format!("{what} not found")),
            ApiError::BadRequest { code, detail } => (*code, detail.clone()),
            ApiError::Unprocessable { code, detail, .. } => (*code, detail.clone()),
            ApiError::Conflict(d) => (ErrorCode::Conflict, d.clone()),
            ApiError::UnsupportedMediaType(d) => (ErrorCode::UnsupportedMediaType, d.clone()),
            ApiError::PayloadTooLarge(d) => (ErrorCode::PayloadTooLarge, d.clone()),
            ApiError::RequestTimeout { code, detail } => (*code, detail.clone()),
            ApiError::Unavailable(_) => (
                ErrorCode::Unavailable,
                "the gateway cannot reach its database".to_owned(),
            ),
            ApiError::Internal(_) => (
                ErrorCode::Internal,
                "the gateway could not complete the request; the cause is in its log".to_owned(),
            ),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { what } => ApiError::NotFound(what),
            StoreError::Conflict(d) => ApiError::Conflict(d),
            e @ StoreError::Backend(_) => ApiError::Internal(anyhow::Error::new(e)),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError::Internal(e)
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        ApiError::Internal(anyhow::anyhow!("a blocking task failed: {e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            ApiError::Internal(e) => tracing::error!(error = format!("{e:#}"), "request failed"),
            ApiError::Unavailable(e) => tracing::warn!(error = format!("{e:#}"), "not ready"),
            _ => {}
        }
        let (code, detail) = self.parts();
        let errors = match self {
            ApiError::Unprocessable { errors, .. } => errors,
            _ => Vec::new(),
        };
        let www_auth = format!("Bearer error=\"invalid_token\", error_description=\"{detail}\"");
        let body = Problem {
            type_: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail,
            code: code.as_str().to_owned(),
            errors,
        };
        let mut resp = (status, axum::Json(body)).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            // RFC 6750 3: the reason is a fixed phrase, never request data.
            if let Ok(v) = HeaderValue::from_str(&www_auth) {
                resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn each_error_has_its_status() {
        assert_eq!(
            ApiError::Unauthorized("x").status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            ApiError::Forbidden("people:read".into()).status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(ApiError::NotFound("person").status(), StatusCode::NOT_FOUND);
        assert_eq!(
            ApiError::bad_request(ErrorCode::InvalidParameter, "y").status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            ApiError::unprocessable(ErrorCode::InvalidPerson, "y").status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            ApiError::Conflict("x".into()).status(),
            StatusCode::CONFLICT
        );
        assert_eq!(
            ApiError::UnsupportedMediaType("x".into()).status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        assert_eq!(
            ApiError::PayloadTooLarge("x".into()).status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            ApiError::RequestTimeout {
                code: ErrorCode::UploadTooSlow,
                detail: "x".into()
            }
            .status(),
            StatusCode::REQUEST_TIMEOUT
        );
        assert_eq!(
            ApiError::Unavailable(anyhow::anyhow!("x")).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            ApiError::Internal(anyhow::anyhow!("db password=hunter2")).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
    #[test]
    fn an_internal_error_says_nothing_of_its_cause() {
        let (_, detail) = ApiError::Internal(anyhow::anyhow!("db password=hunter2")).parts();
        assert!(!detail.contains("hunter2"));
    }
    #[test]
    fn store_errors_map_to_statuses() {
        assert_eq!(
            ApiError::from(StoreError::NotFound { what: "x" }).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            ApiError::from(StoreError::Conflict("x".into())).status(),
            StatusCode::CONFLICT
        );
        assert_eq!(
            ApiError::from(StoreError::backend("x")).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
