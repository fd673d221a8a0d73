//! Request bodies on a hostile network: how much of a body is read before
//! the sender is known, and how slowly a body may arrive.
//!
//! - [`pace`] (on every route) ends a body that delivers nothing for
//!   `limits.body_read_timeout_seconds`, or that averages less than
//!   `limits.min_upload_bytes_per_second` once it has been waited on for
//!   `limits.body_rate_grace_seconds`. Only the time the gateway spends
//!   *waiting* for the client counts: while the gateway itself is busy (a
//!   slow disk, a store call) the client's bytes pile up in the socket and
//!   are read at once afterwards, so back-pressure never makes a client look
//!   slow. The reader sees a [`TooSlow`] error and answers 408.
//! - `auth::oauth::limit_oauth` and [`limit_problem`] sit on the routes reachable
//!   before authentication (`/oauth2/token`, `/oauth2/revoke`,
//!   `POST /api/v1/login-sync`): a declared `Content-Length` over
//!   `limits.max_unauthenticated_body_bytes` is answered 413 before a byte
//!   of the body is read, and a body without one is read only up to the
//!   limit (a chunk at a time, never more than the limit kept) and answered
//!   413 as soon as it passes it. The answer is RFC 6749 5.2 shaped on the
//!   OAuth endpoints and a problem document elsewhere.
//!
//! Answering before the body is read makes hyper close the connection
//! after the answer instead of draining the rest (RFC 9110 15.5.14 allows
//! that for 413), so the client cannot keep the gateway reading.
use crate::base::config::Limits;
use crate::base::error::ApiError;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use muster_proto::ErrorCode;
use std::time::Duration;

/// The pace a body must keep (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Longest wait for the next piece of the body.
    pub read_timeout: Duration,
    /// Lowest average rate, in bytes per second of waiting (0: none).
    pub min_bytes_per_second: u64,
    /// Waiting time before the average rate is held to the minimum.
    pub grace: Duration,
}

impl Pace {
    pub fn of(limits: &Limits) -> Self {
        Pace {
            read_timeout: Duration::from_secs(limits.body_read_timeout_seconds),
            min_bytes_per_second: limits.min_upload_bytes_per_second,
            grace: Duration::from_secs(limits.body_rate_grace_seconds),
        }
    }
}

/// The error a body that fell behind its [`Pace`] ends with.
#[derive(Debug, Clone)]
pub struct TooSlow(String);

impl std::fmt::Display for TooSlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TooSlow {}

/// The [`TooSlow`] somewhere in the cause chain of a body's error (the
/// body wrappers on the way box it once more each).
pub fn too_slow<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a TooSlow> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<TooSlow>() {
            return Some(t);
        }
        cur = err.source();
    }
    None
}

/// Wraps `body` so that it ends with a [`TooSlow`] error when it falls
/// behind `pace`.
pub fn paced(body: Body, pace: Pace) -> Body {
    struct St {
        inner: axum::body::BodyDataStream,
        received: u64,
        waited: Duration,
    }
    let start = St {
        inner: body.into_data_stream(),
        received: 0,
        waited: Duration::ZERO,
    };
    let stream = futures::stream::unfold(Some(start), move |st| async move {
        let mut st = st?;
        let began = tokio::time::Instant::now();
        let next = tokio::time::timeout(pace.read_timeout, st.inner.next()).await;
        st.waited += began.elapsed();
        match next {
            Err(_) => {
                let e = TooSlow(format!(
                    "the body sent nothing for {} seconds",
                    pace.read_timeout.as_secs()
                ));
                Some((Err(axum::BoxError::from(e)), None))
            }
            Ok(None) => None,
            Ok(Some(Err(e))) => Some((Err(axum::BoxError::from(e)), None)),
            Ok(Some(Ok(chunk))) => {
                st.received += chunk.len() as u64;
                let min = pace.min_bytes_per_second;
                if min > 0 && st.waited >= pace.grace {
                    // Average over the time spent waiting for the client.
                    let due = (min as f64 * st.waited.as_secs_f64()) as u64;
                    if st.received < due {
                        let e = TooSlow(format!(
                            "the body arrived at fewer than {min} bytes per second"
                        ));
                        return Some((Err(axum::BoxError::from(e)), None));
                    }
                }
                Some((Ok(chunk), Some(st)))
            }
        }
    });
    Body::from_stream(stream)
}

/// Middleware for every route: bodies keep their [`Pace`]. A body known
/// to be empty is left as it is. Its state is the pace alone, so a request
/// costs no clone of the whole application state.
pub async fn pace(State(pace): State<Pace>, req: Request, next: Next) -> Response {
    let req = req.map(|b| if b.is_end_stream() { b } else { paced(b, pace) });
    next.run(req).await
}

/// Why a body could not be read whole.
#[derive(Debug)]
pub enum BodyError {
    /// More than the limit (declared or sent).
    TooLarge { limit: usize },
    /// Fell behind its [`Pace`].
    TooSlow(TooSlow),
    /// The client went away or broke the framing.
    Interrupted,
}

impl BodyError {
    /// The problem-document answer; `what` names the body ("the JSON body").
    pub fn api_error(&self, what: &str) -> ApiError {
        match self {
            BodyError::TooLarge { limit } => {
                ApiError::PayloadTooLarge(format!("{what} is larger than {limit} bytes"))
            }
            BodyError::TooSlow(t) => ApiError::RequestTimeout {
                code: ErrorCode::BodyTooSlow,
                detail: format!("{what} arrived too slowly: {t}"),
            },
            BodyError::Interrupted => ApiError::bad_request(
                ErrorCode::BodyInterrupted,
                format!("{what} ended before it was complete"),
            ),
        }
    }
}

/// The declared `Content-Length`, when there is a readable one.
pub fn declared_length(headers: &axum::http::HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Reads `body` whole if it is at most `limit` bytes. Stops at the first
/// piece that would pass the limit; never keeps more than `limit` bytes.
pub async fn read_limited(body: Body, limit: usize) -> Result<Bytes, BodyError> {
    if body.size_hint().lower() > limit as u64 {
        return Err(BodyError::TooLarge { limit });
    }
    let mut stream = body.into_data_stream();
    let mut first: Option<Bytes> = None;
    let mut buf: Vec<u8> = Vec::new();
    while let Some(piece) = stream.next().await {
        let piece = piece.map_err(|e| match too_slow(&e) {
            Some(t) => BodyError::TooSlow(t.clone()),
            None => BodyError::Interrupted,
        })?;
        let have = first.as_ref().map_or(0, Bytes::len) + buf.len();
        if have + piece.len() > limit {
            return Err(BodyError::TooLarge { limit });
        }
        // A body in one piece (the usual small one) is handed on uncopied.
        match first.take() {
            None if buf.is_empty() => first = Some(piece),
            Some(f) => {
                buf.extend_from_slice(&f);
                buf.extend_from_slice(&piece);
            }
            None => buf.extend_from_slice(&piece),
        }
    }
    Ok(first.unwrap_or_else(|| Bytes::from(buf)))
}

/// The body limit of the routes reachable before authentication
/// (`limits.max_unauthenticated_body_bytes`), the state of their layers.
#[derive(Debug, Clone, Copy)]
pub struct SmallBody(pub usize);

/// Checks the declared length and reads the body up to the unauthenticated
/// limit, putting it back buffered for the handler.
pub(crate) async fn buffer_small(
    SmallBody(limit): SmallBody,
    req: Request,
) -> Result<Request, BodyError> {
    if declared_length(req.headers()).is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge { limit });
    }
    let (parts, body) = req.into_parts();
    let bytes = read_limited(body, limit).await?;
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// The small body limit of other routes reachable before authentication;
/// refusals as problem documents.
pub async fn limit_problem(State(limit): State<SmallBody>, req: Request, next: Next) -> Response {
    match buffer_small(limit, req).await {
        Ok(req) => next.run(req).await,
        Err(e) => e.api_error("the request body").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trickle(pieces: Vec<(u64, &'static [u8])>) -> Body {
        let s = futures::stream::iter(pieces).then(|(ms, b)| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok::<_, std::io::Error>(Bytes::from_static(b))
        });
        Body::from_stream(s)
    }

    #[tokio::test]
    async fn a_body_that_stalls_ends_with_too_slow() {
        let pace = Pace {
            read_timeout: Duration::from_millis(200),
            min_bytes_per_second: 0,
            grace: Duration::from_secs(1),
        };
        let body = paced(trickle(vec![(0, b"abc"), (600, b"def")]), pace);
        match read_limited(body, 100).await {
            Err(BodyError::TooSlow(t)) => assert!(t.to_string().contains("sent nothing")),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_body_below_the_minimum_rate_ends_after_the_grace_period() {
        let pace = Pace {
            read_timeout: Duration::from_secs(30),
            min_bytes_per_second: 100,
            grace: Duration::from_millis(300),
        };
        // 30 bytes a second: fine during the grace period, then refused.
        let pieces = (0..10).map(|_| (100, &b"abc"[..])).collect();
        match read_limited(paced(trickle(pieces), pace), 100).await {
            Err(BodyError::TooSlow(t)) => assert!(t.to_string().contains("100 bytes per second")),
            other => panic!("{other:?}"),
        }
        // 300 bytes a second passes.
        let pieces = (0..40).map(|_| (10, &b"abc"[..])).collect();
        let ok = read_limited(paced(trickle(pieces), pace), 200)
            .await
            .unwrap();
        assert_eq!(ok.len(), 120);
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_without_keeping_it() {
        let body = trickle(vec![(0, b"0123456789"), (0, b"0123456789")]);
        assert!(matches!(
            read_limited(body, 15).await,
            Err(BodyError::TooLarge { limit: 15 })
        ));
        let body = trickle(vec![(0, b"01234"), (0, b"56789")]);
        assert_eq!(&read_limited(body, 10).await.unwrap()[..], b"0123456789");
        assert!(matches!(
            read_limited(Body::from(vec![0u8; 11]), 10).await,
            Err(BodyError::TooLarge { limit: 10 })
        ));
    }
}
