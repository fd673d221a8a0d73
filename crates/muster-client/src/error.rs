//! The one error type of the SDK. It keeps apart what a caller reacts to
//! differently: the API said no (with a stable problem `code`), the OAuth
//! endpoint said no (RFC 6749 5.2), the gateway could not be reached, a
//! local file could not be read, or the answer made no sense. Its `Display`
//! is one line for people and never contains a secret or a token: requests
//! carry credentials only in headers and bodies, and URLs are stripped from
//! transport errors.
use muster_proto::{OAuthError, Problem};
use reqwest::StatusCode;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The API answered with an RFC 9457 problem document. (Boxed: a
    /// `Problem` is large and this keeps every `Result` small.)
    #[error("{} ({}, HTTP {})", problem.detail, problem.code, status.as_u16())]
    Api {
        status: StatusCode,
        problem: Box<Problem>,
    },
    /// An OAuth endpoint (`/oauth2/token`, `/oauth2/revoke`) refused.
    #[error("{}{} (OAuth, HTTP {})", error.error, describe(error), status.as_u16())]
    OAuth {
        status: StatusCode,
        error: OAuthError,
    },
    /// No answer: connection refused, TLS, timeout, a broken stream.
    #[error("cannot reach the gateway: {}", root_cause(.0))]
    Transport(reqwest::Error),
    /// A local file could not be read.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// An answer that is not what the API promises (e.g. a proxy's HTML
    /// error page, or JSON of the wrong shape).
    #[error("unexpected answer from the gateway (HTTP {}): {message}", status.as_u16())]
    Decode { status: StatusCode, message: String },
    /// The caller passed something that cannot be sent (a URL that does
    /// not parse, a header value HTTP does not allow).
    #[error("{0}")]
    InvalidInput(String),
}

impl ClientError {
    /// The HTTP status, when the gateway answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Api { status, .. }
            | ClientError::OAuth { status, .. }
            | ClientError::Decode { status, .. } => Some(*status),
            ClientError::Transport(e) => e.status(),
            ClientError::Io(_) | ClientError::InvalidInput(_) => None,
        }
    }

    /// The machine-readable reason: the problem's `code` or the OAuth
    /// `error`.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { problem, .. } => Some(&problem.code),
            ClientError::OAuth { error, .. } => Some(&error.error),
            _ => None,
        }
    }

    /// Whether the credentials were refused (401 from the API or the token
    /// endpoint).
    pub fn is_unauthorized(&self) -> bool {
        self.status() == Some(StatusCode::UNAUTHORIZED)
    }

    pub(crate) fn transport(e: reqwest::Error) -> Self {
        // The URL may carry user:password of a base URL; never print it.
        ClientError::Transport(e.without_url())
    }
}

fn describe(e: &OAuthError) -> String {
    e.error_description
        .as_deref()
        .map(|d| format!(": {d}"))
        .unwrap_or_default()
}

/// What went wrong underneath: the innermost cause (e.g. "Connection
/// refused"), which says more than reqwest's and hyper's wrappers.
fn root_cause(e: &reqwest::Error) -> String {
    let mut cur: &dyn std::error::Error = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    let text = cur.to_string();
    if e.is_timeout() && !text.contains("timed out") {
        format!("timed out ({text})")
    } else {
        text
    }
}

/// A JSON decoding error's message with quoted text blanked: serde quotes
/// the offending value, which may be personnel data or a token.
pub(crate) fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut inside = false;
    for ch in message.chars() {
        if ch == '"' {
            if !inside {
                out.push_str("\"..");
            }
            inside = !inside;
            if !inside {
                out.push('"');
            }
        } else if !inside {
            out.push(ch);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_errors_do_not_quote_values() {
        let e = serde_json::from_str::<u64>("\"mct_secret\"").unwrap_err();
        let shown = redact_quoted(&e.to_string());
        assert!(!shown.contains("mct_secret"), "{shown}");
        assert!(shown.contains("invalid type"), "{shown}");
        assert_eq!(redact_quoted("missing field `x`"), "missing field `x`");
    }

    #[test]
    fn an_api_error_reads_as_one_line_with_its_code() {
        let e = ClientError::Api {
            status: StatusCode::NOT_FOUND,
            problem: Box::new(Problem {
                type_: "about:blank".into(),
                title: "Not Found".into(),
                status: 404,
                detail: "no mapping named 'nope'".into(),
                code: "unknown_mapping".into(),
                errors: vec![],
            }),
        };
        assert_eq!(
            e.to_string(),
            "no mapping named 'nope' (unknown_mapping, HTTP 404)"
        );
        assert_eq!(e.code(), Some("unknown_mapping"));
        let o = ClientError::OAuth {
            status: StatusCode::UNAUTHORIZED,
            error: OAuthError {
                error: "invalid_client".into(),
                error_description: Some("unknown client or wrong secret".into()),
            },
        };
        assert_eq!(
            o.to_string(),
            "invalid_client: unknown client or wrong secret (OAuth, HTTP 401)"
        );
        assert!(o.is_unauthorized());
    }
}
