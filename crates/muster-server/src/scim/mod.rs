//! The SCIM 2.0 service provider under `/scim/v2` (RFC 7643, RFC 7644;
//! docs/scim.md): identity providers provision people (Users) and roles
//! (Groups) into Muster. The protocol itself (filters, PATCH, schemas,
//! projection, sorting, the error body) is the pure `muster-scim` crate;
//! this door maps HTTP onto it and calls the operations layer
//! (`ops::scim`), so every write passes the write policy, the audit chain
//! and the fan-out as any other.
mod bulk;
mod discovery;
mod groups;
pub(crate) mod import;
pub(crate) mod users;

use crate::auth::Caller;
use crate::base::error::ApiError;
use crate::base::state::AppState;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use muster_core::policy::Permission;
use muster_scim::{ScimError, ScimType};
use serde_json::Value;

/// The media type of every SCIM answer (RFC 7644 §3.1).
pub(crate) const SCIM_JSON: &str = "application/scim+json";

/// Most resources one list or search answers (`filter.maxResults`).
pub(crate) const MAX_RESULTS: u64 = 1000;

/// Most operations of one bulk request (`bulk.maxOperations`).
pub(crate) const MAX_BULK_OPERATIONS: usize = 1000;

/// The `/scim/v2` routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/ServiceProviderConfig",
            get(discovery::service_provider_config),
        )
        .route("/Schemas", get(discovery::schemas))
        .route("/Schemas/{id}", get(discovery::schema))
        .route("/ResourceTypes", get(discovery::resource_types))
        .route("/ResourceTypes/{id}", get(discovery::resource_type))
        .route("/Users", get(users::list).post(users::create))
        .route("/Users/.search", post(users::search))
        .route(
            "/Users/{id}",
            get(users::read)
                .put(users::replace)
                .patch(users::patch)
                .delete(users::delete),
        )
        .route("/Groups", get(groups::list).post(groups::create))
        .route("/Groups/.search", post(groups::search))
        .route(
            "/Groups/{id}",
            get(groups::read)
                .put(groups::replace)
                .patch(groups::patch)
                .delete(groups::delete),
        )
        .route("/Bulk", post(bulk::bulk))
        .route("/.search", post(search_all))
        .fallback(not_found)
}

/// `POST /.search` over every resource type (RFC 7644 §3.4.3) is not
/// offered: 501, as §3.12 says for an unsupported operation.
async fn search_all(ScimCaller(_caller): ScimCaller) -> Fail {
    Fail(ScimError::status(
        501,
        "searching several resource types at once is not supported; \
         POST /Users/.search or /Groups/.search",
    ))
}

async fn not_found() -> Fail {
    Fail(ScimError::status(404, "no such SCIM endpoint"))
}

/// A caller allowed at the SCIM door: an OAuth 2.0 bearer token or a SCIM
/// token (docs/scim.md#authentication) of a client with `scim:provision`.
pub(crate) struct ScimCaller(pub Caller);

impl FromRequestParts<AppState> for ScimCaller {
    type Rejection = Fail;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Fail> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.require(Permission::ScimProvision)?;
        Ok(ScimCaller(caller))
    }
}

/// A SCIM error answer (RFC 7644 §3.12).
#[derive(Debug)]
pub(crate) struct Fail(pub ScimError);

pub(crate) type ScimResult<T> = Result<T, Fail>;

impl From<ScimError> for Fail {
    fn from(e: ScimError) -> Self {
        Fail(e)
    }
}

impl From<muster_store::StoreError> for Fail {
    fn from(e: muster_store::StoreError) -> Self {
        Fail::from(ApiError::from(e))
    }
}

impl From<ApiError> for Fail {
    fn from(e: ApiError) -> Self {
        let status = e.status();
        let detail = match &e {
            ApiError::Unprocessable { detail, errors, .. } => match errors.first() {
                // A row error names the attribute, never the value.
                Some(first) => match &first.attribute {
                    Some(a) => format!("{}: {}", users::scim_name(a), first.message),
                    None => first.message.clone(),
                },
                None => detail.clone(),
            },
            ApiError::Internal(err) => {
                tracing::error!(error = format!("{err:#}"), "SCIM request failed");
                "the gateway could not complete the request; the cause is in its log".into()
            }
            ApiError::Unavailable(err) => {
                tracing::warn!(error = format!("{err:#}"), "not ready");
                "the gateway cannot reach its database".into()
            }
            other => other.detail(),
        };
        let scim = match &e {
            ApiError::BadRequest { .. } | ApiError::Unprocessable { .. } => {
                let forbidden = matches!(&e, ApiError::Unprocessable { code, .. }
                    if *code == muster_proto::ErrorCode::NotPermitted);
                if forbidden {
                    ScimError::status(403, detail)
                } else {
                    ScimError::invalid_value(detail)
                }
            }
            ApiError::Conflict(_) => ScimError::new(ScimType::Uniqueness, detail),
            _ => ScimError::status(status.as_u16(), detail),
        };
        Fail(scim)
    }
}

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::BAD_REQUEST);
        let body = serde_json::to_vec(&self.0).unwrap_or_default();
        let mut r = (status, body).into_response();
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"muster-scim\""),
            );
        }
        r
    }
}

/// A SCIM answer: status, body, and the `ETag` and `Location` headers.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub body: Option<Value>,
    pub etag: Option<String>,
    pub location: Option<String>,
}

impl Answer {
    pub fn ok(body: Value) -> Self {
        Answer {
            status: StatusCode::OK,
            body: Some(body),
            etag: None,
            location: None,
        }
    }

    /// A resource: its `meta.version` is the `ETag`, its `meta.location`
    /// the `Location` (RFC 7644 §3.1, §3.14).
    pub fn resource(status: StatusCode, body: Value) -> Self {
        let meta = body.get("meta");
        let etag = meta
            .and_then(|m| m.get("version"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let location = meta
            .and_then(|m| m.get("location"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        Answer {
            status,
            body: Some(body),
            etag,
            location,
        }
    }

    pub fn no_content() -> Self {
        Answer {
            status: StatusCode::NO_CONTENT,
            body: None,
            etag: None,
            location: None,
        }
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let mut r = match self.body {
            Some(b) => (self.status, serde_json::to_vec(&b).unwrap_or_default()).into_response(),
            None => self.status.into_response(),
        };
        let h = r.headers_mut();
        if self.status != StatusCode::NO_CONTENT {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
        }
        if let Some(v) = self.etag.and_then(|e| HeaderValue::from_str(&e).ok()) {
            h.insert(header::ETAG, v);
        }
        if self.status == StatusCode::CREATED {
            if let Some(v) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
                h.insert(header::LOCATION, v);
            }
        }
        r
    }
}

/// A request body: `application/scim+json` or `application/json` (RFC
/// 7644 §3.1), a JSON object.
pub(crate) async fn json_body(req: Request, state: &AppState) -> ScimResult<Value> {
    let (parts, body) = req.into_parts();
    if let Some(ct) = parts.headers.get(header::CONTENT_TYPE) {
        let ok = ct.to_str().ok().is_some_and(|v| {
            let essence = v.split(';').next().unwrap_or("").trim();
            essence.eq_ignore_ascii_case(SCIM_JSON)
                || essence.eq_ignore_ascii_case("application/json")
        });
        if !ok {
            return Err(Fail(ScimError::status(
                415,
                "the body must be application/scim+json or application/json",
            )));
        }
    }
    let limit = state.config.limits.max_json_bytes;
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        Fail(ScimError::status(
            413,
            format!("the body is larger than {limit} bytes (limits.max_json_bytes)"),
        ))
    })?;
    parse_json(&bytes)
}

/// Parses a JSON object; the error names the line and column, never the
/// text.
pub(crate) fn parse_json(bytes: &[u8]) -> ScimResult<Value> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| {
        Fail(ScimError::invalid_syntax(format!(
            "the body is not JSON (line {}, column {})",
            e.line(),
            e.column()
        )))
    })?;
    if !v.is_object() {
        return Err(Fail(ScimError::invalid_syntax(
            "the body must be a JSON object",
        )));
    }
    Ok(v)
}

/// Where this gateway's SCIM resources live: the configured `public_url`,
/// else the request's own host.
pub(crate) fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    let public = state.config.public_url.trim_end_matches('/');
    if !public.is_empty() {
        return format!("{public}/scim/v2");
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost");
    let scheme = if state.config.tls.enabled() {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}/scim/v2")
}

/// The version a resource at `version` shows as (RFC 7644 §3.14): a weak
/// entity tag.
pub(crate) fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// `If-Match` (a stale version is 412) and `If-None-Match` (on a read, a
/// current version is 304) of RFC 7644 §3.14 and RFC 9110 §13.
pub(crate) fn check_if_match(headers: &HeaderMap, current: &str) -> ScimResult<()> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(());
    };
    let v = v.to_str().unwrap_or("");
    if tag_listed(v, current) {
        Ok(())
    } else {
        Err(Fail(ScimError::status(
            412,
            "If-Match: the resource has changed since that version",
        )))
    }
}

/// 304 Not Modified, with the `ETag`, when `If-None-Match` names the
/// current version.
pub(crate) fn not_modified(headers: &HeaderMap, current: &str) -> Option<Response> {
    let listed = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| tag_listed(v, current));
    if !listed {
        return None;
    }
    let mut r = StatusCode::NOT_MODIFIED.into_response();
    if let Ok(v) = HeaderValue::from_str(current) {
        r.headers_mut().insert(header::ETAG, v);
    }
    Some(r)
}

/// `attributes` and `excludedAttributes` of a request's query (RFC 7644
/// §3.9), with the rest of the query.
pub(crate) fn projection_of(
    query: Option<&str>,
) -> ScimResult<(ListQuery, muster_scim::Projection)> {
    let q = list_query(query)?;
    let p =
        muster_scim::Projection::parse(q.attributes.as_deref(), q.excluded_attributes.as_deref())?;
    Ok((q, p))
}

/// A request's headers and its JSON body ([`json_body`]).
pub(crate) async fn body_of(req: Request, state: &AppState) -> ScimResult<(HeaderMap, Value)> {
    let headers = req.headers().clone();
    Ok((headers, json_body(req, state).await?))
}

/// Whether an `If-Match`/`If-None-Match` list holds `*` or `current`,
/// compared weakly (RFC 9110 §8.8.3.2).
fn tag_listed(list: &str, current: &str) -> bool {
    let weak = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    list.split(',')
        .any(|t| t.trim() == "*" || weak(t) == weak(current))
}

/// The query parameters of a list (RFC 7644 §3.4.2).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListQuery {
    pub filter: Option<String>,
    pub sort_by: Option<String>,
    pub sort_order: Option<String>,
    pub start_index: Option<String>,
    pub count: Option<String>,
    pub attributes: Option<String>,
    pub excluded_attributes: Option<String>,
}

/// Reads the query string; an unreadable one is `invalidValue`.
pub(crate) fn list_query(query: Option<&str>) -> ScimResult<ListQuery> {
    serde_urlencoded::from_str(query.unwrap_or("")).map_err(|_| {
        Fail(ScimError::invalid_value(
            "the query string is not application/x-www-form-urlencoded",
        ))
    })
}

/// `startIndex` and `count` (RFC 7644 §3.4.2.4): a `startIndex` below 1
/// is 1, a negative `count` is 0, and `count` is at most [`MAX_RESULTS`].
pub(crate) fn paging(start: Option<i64>, count: Option<i64>) -> (u64, u64) {
    let start = start.unwrap_or(1).max(1) as u64;
    let count = count.map_or(100, |c| c.max(0) as u64).min(MAX_RESULTS);
    (start, count)
}

/// A number parameter; anything else is `invalidValue`, naming it.
pub(crate) fn int_param(name: &str, v: Option<&str>) -> ScimResult<Option<i64>> {
    match v.map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => s.parse::<i64>().map(Some).map_err(|_| {
            Fail(ScimError::invalid_value(format!(
                "{name} must be an integer"
            )))
        }),
    }
}

/// The parsed search of a list or a `.search` body.
pub(crate) struct Search {
    pub filter: Option<muster_scim::Filter>,
    pub sort: Option<(String, Option<String>)>,
    pub start: u64,
    pub count: u64,
    pub projection: muster_scim::Projection,
}

impl Search {
    pub fn from_query(q: ListQuery) -> ScimResult<Self> {
        let start = int_param("startIndex", q.start_index.as_deref())?;
        let count = int_param("count", q.count.as_deref())?;
        let (start, count) = paging(start, count);
        Ok(Search {
            filter: parse_filter(q.filter.as_deref())?,
            sort: q
                .sort_by
                .filter(|s| !s.trim().is_empty())
                .map(|s| (s, q.sort_order)),
            start,
            count,
            projection: muster_scim::Projection::parse(
                q.attributes.as_deref(),
                q.excluded_attributes.as_deref(),
            )?,
        })
    }

    pub fn from_body(body: Value) -> ScimResult<Self> {
        let r: muster_scim::SearchRequest = serde_json::from_value(body).map_err(|_| {
            Fail(ScimError::invalid_syntax(
                "the body is not a SearchRequest (RFC 7644 section 3.4.3)",
            ))
        })?;
        if !r
            .schemas
            .iter()
            .any(|s| s.eq_ignore_ascii_case(muster_scim::messages::SEARCH_REQUEST))
        {
            return Err(Fail(ScimError::invalid_syntax(
                "schemas must list urn:ietf:params:scim:api:messages:2.0:SearchRequest",
            )));
        }
        let (start, count) = paging(r.start_index, r.count);
        Ok(Search {
            filter: parse_filter(r.filter.as_deref())?,
            sort: r
                .sort_by
                .filter(|s| !s.trim().is_empty())
                .map(|s| (s, r.sort_order)),
            start,
            count,
            projection: muster_scim::Projection::from_lists(
                r.attributes.as_deref().unwrap_or_default(),
                r.excluded_attributes.as_deref().unwrap_or_default(),
            )?,
        })
    }
}

fn parse_filter(f: Option<&str>) -> ScimResult<Option<muster_scim::Filter>> {
    match f.map(str::trim).filter(|f| !f.is_empty()) {
        None => Ok(None),
        Some(f) => Ok(Some(muster_scim::Filter::parse(f)?)),
    }
}
