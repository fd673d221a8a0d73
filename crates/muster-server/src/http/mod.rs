//! What every request and every outbound call shares: JSON and body
//! limits, the listener, and the destination rule for outbound requests.
pub(crate) mod bodies;
pub(crate) mod json;
pub(crate) mod outbound;
pub(crate) mod transport;

/// The media type of a request's `Content-Type`, lowercased and without
/// parameters (RFC 9110 8.3.1); empty when there is none.
/// The `charset` parameter of the `Content-Type`, when it has one
/// (RFC 9110 8.3.1), unquoted.
pub(crate) fn charset(headers: &axum::http::HeaderMap) -> Option<String> {
    let v = headers
        .get(axum::http::header::CONTENT_TYPE)?
        .to_str()
        .ok()?;
    v.split(';').skip(1).find_map(|p| {
        let (k, val) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| val.trim().trim_matches('"').to_owned())
    })
}

pub(crate) fn media_type(headers: &axum::http::HeaderMap) -> String {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}
