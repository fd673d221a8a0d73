//! The imports API: upload (sealed to disk while it streams in), status,
//! row errors, and progress as Server-Sent Events.
use crate::api::page_limit;
use crate::auth::Caller;
use crate::base::error::{ApiError, ApiResult};
use crate::base::state::AppState;
use crate::jobs::worker::SCIM_FORMAT;
use crate::ops::imports::{self, Encryption, ImportParams};
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use muster_core::policy::Permission;
use muster_proto::*;
use muster_store::{ImportFilter, ImportRow};
use std::collections::BTreeMap;
use std::time::Duration;

fn parse_bool(name: &str, v: &str) -> ApiResult<bool> {
    match v {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(ApiError::bad_request(
            ErrorCode::InvalidParameter,
            format!("{name}: must be true or false"),
        )),
    }
}

pub fn parse_params(query: Option<&str>, max_wait: u64) -> ApiResult<ImportParams> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query.unwrap_or("")).map_err(|_| {
            ApiError::bad_request(
                ErrorCode::InvalidParameter,
                "the query string does not decode",
            )
        })?;
    let mut p = ImportParams {
        mapping: String::new(),
        mode: ImportMode::Upsert,
        dry_run: false,
        wait: 0,
        format: None,
        delimiter: None,
        header_map: BTreeMap::new(),
        encryption: None,
        encryption_key_id: None,
        source: None,
        max_deactivate_percent: None,
        allow_mass_deactivation: false,
        encoding: None,
    };
    let mut seen = std::collections::HashSet::new();
    for (k, v) in pairs {
        if !seen.insert(k.clone()) {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidParameter,
                format!("{k}: given more than once"),
            ));
        }
        match k.as_str() {
            "mapping" => p.mapping = v,
            "mode" => match ImportMode::parse(&v) {
                Some(m) => p.mode = m,
                None => {
                    return Err(ApiError::bad_request(
                        ErrorCode::InvalidParameter,
                        "mode: must be 'upsert' or 'snapshot'",
                    ))
                }
            },
            "dry_run" => p.dry_run = parse_bool("dry_run", &v)?,
            "source" => {
                let ok = (1..=64).contains(&v.len())
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
                if !ok {
                    return Err(ApiError::bad_request(
                        ErrorCode::InvalidParameter,
                        "source: 1 to 64 of letters, digits and . _ : -",
                    ));
                }
                p.source = Some(v)
            }
            "max_deactivate_percent" => {
                let pct = v
                    .parse::<f64>()
                    .ok()
                    .filter(|x| (0.0..=100.0).contains(x))
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            ErrorCode::InvalidParameter,
                            "max_deactivate_percent: must be a number from 0 to 100",
                        )
                    })?;
                p.max_deactivate_percent = Some(pct)
            }
            "allow_mass_deactivation" => {
                p.allow_mass_deactivation = parse_bool("allow_mass_deactivation", &v)?
            }
            "wait" => {
                p.wait = v.parse().ok().filter(|w| *w <= max_wait).ok_or_else(|| {
                    ApiError::bad_request(
                        ErrorCode::InvalidParameter,
                        format!("wait: must be a whole number of seconds from 0 to {max_wait}"),
                    )
                })?
            }
            "format" => match v.as_str() {
                "csv" | "jsonl" | "scim" => p.format = Some(v),
                _ => {
                    return Err(ApiError::bad_request(
                        ErrorCode::InvalidParameter,
                        "format: must be 'csv', 'jsonl' or 'scim'",
                    ))
                }
            },
            "delimiter" => {
                p.delimiter = Some(muster_core::mapping::delimiter_byte(&v).ok_or_else(|| {
                    ApiError::bad_request(
                        ErrorCode::InvalidParameter,
                        "delimiter: must be one ASCII character (or 'tab'), not a quote or line break",
                    )
                })?);
            }
            "encryption" => {
                p.encryption = Some(Encryption::parse(&v).ok_or_else(|| {
                    ApiError::bad_request(
                        ErrorCode::InvalidParameter,
                        "encryption: must be none, pgp or age (or left out to detect it)",
                    )
                })?)
            }
            "encryption_key_id" => {
                if v.is_empty() || v.len() > 128 || !v.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(ApiError::bad_request(
                        ErrorCode::InvalidParameter,
                        "encryption_key_id: must be a key id from GET /api/v1/keys",
                    ));
                }
                p.encryption_key_id = Some(v)
            }
            "encoding" => p.encoding = Some(encoding_name("encoding", &v)?),
            "header_map" => {
                p.header_map = serde_json::from_str(&v).map_err(|_| {
                    ApiError::bad_request(
                        ErrorCode::InvalidParameter,
                        "header_map: must be a JSON object of column name to column name",
                    )
                })?
            }
            other => {
                return Err(ApiError::bad_request(
                    ErrorCode::InvalidParameter,
                    format!("{other}: unknown parameter"),
                ))
            }
        }
    }
    if p.mode != ImportMode::Snapshot {
        let given = [
            ("max_deactivate_percent", p.max_deactivate_percent.is_some()),
            ("allow_mass_deactivation", p.allow_mass_deactivation),
        ];
        if let Some((name, _)) = given.iter().find(|(_, g)| *g) {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidParameter,
                format!("{name}: only with mode=snapshot"),
            ));
        }
    }
    Ok(p)
}

/// The WHATWG name of the encoding `label` names, in lower case.
fn encoding_name(what: &str, label: &str) -> ApiResult<String> {
    muster_intake::text::encoding_name(label).ok_or_else(|| {
            ApiError::bad_request(
                ErrorCode::InvalidParameter,
                format!(
                    "{what}: '{}' is not an encoding label (utf-8, windows-1252, iso-8859-1, utf-16le, ...)",
                    label.chars().take(40).collect::<String>()
                ),
            )
        })
}

/// Takes the `Content-Type`'s `charset` into `p.encoding`: the two must
/// agree when both are given, and a SCIM file is UTF-8 JSON.
pub(crate) fn resolve_encoding(
    p: &mut ImportParams,
    format: Option<&str>,
    headers: &HeaderMap,
) -> ApiResult<()> {
    if let Some(cs) = crate::http::charset(headers) {
        let from_type = encoding_name("charset", &cs)?;
        match &p.encoding {
            Some(e) if *e != from_type => {
                return Err(ApiError::bad_request(
                    ErrorCode::InvalidParameter,
                    "encoding: contradicts the Content-Type's charset",
                ))
            }
            _ => p.encoding = Some(from_type),
        }
    }
    if format == Some(SCIM_FORMAT) && p.encoding.as_deref().is_some_and(|e| e != "utf-8") {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidParameter,
            "encoding: a SCIM file is JSON, which is UTF-8 (RFC 8259)",
        ));
    }
    Ok(())
}

/// The file's format, from `format=` or the media type; `None` for an
/// `application/octet-stream` upload that names none, which the mapping's
/// `[file]` table must then name.
pub(crate) fn detect_format(p: &ImportParams, headers: &HeaderMap) -> ApiResult<Option<String>> {
    let ct = crate::http::media_type(headers);
    let from_type = match ct.as_str() {
        "text/csv" | "application/csv" => Some("csv"),
        "application/x-ndjson" | "application/jsonl" | "application/x-jsonlines"
        | "application/json-lines" => Some("jsonl"),
        "application/scim+json" => Some(SCIM_FORMAT),
        "application/octet-stream" => None,
        _ => {
            return Err(ApiError::UnsupportedMediaType(
                "the body must be text/csv, application/x-ndjson or application/scim+json (or application/octet-stream with format=)"
                    .into(),
            ))
        }
    };
    let format = match (&p.format, from_type) {
        (Some(f), Some(t)) if f != t => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidParameter,
                "format: contradicts the Content-Type",
            ))
        }
        (Some(f), _) => Some(f.clone()),
        (None, Some(t)) => Some(t.to_owned()),
        (None, None) if p.mapping.is_empty() => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidParameter,
                "format: required with application/octet-stream",
            ))
        }
        (None, None) => None,
    };
    // A SCIM file is read by the SCIM User mapping (docs/scim.md); every
    // other file by a stored mapping.
    let scim = format.as_deref() == Some(SCIM_FORMAT);
    match (scim, p.mapping.is_empty()) {
        (true, false) => Err(ApiError::bad_request(
            ErrorCode::InvalidParameter,
            "mapping: a SCIM file is read by the SCIM User mapping; leave mapping out",
        )),
        (false, true) => Err(ApiError::bad_request(
            ErrorCode::InvalidParameter,
            "mapping: required (the name of a stored mapping)",
        )),
        _ => Ok(format),
    }
}

pub(crate) fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    v.to_str()
        .ok()
        .filter(|s| !s.is_empty() && s.len() <= 255)
        .map(|s| Some(s.to_owned()))
        .ok_or_else(|| {
            ApiError::bad_request(
                ErrorCode::InvalidHeader,
                "Idempotency-Key: 1 to 255 printable ASCII characters",
            )
        })
}

pub fn import_info(r: &ImportRow) -> ImportInfo {
    let base = format!("/api/v1/imports/{}", r.id);
    ImportInfo {
        id: r.id.clone(),
        state: r.state,
        client_id: r.client_id.clone(),
        on_behalf_of: r.on_behalf_of.clone(),
        mapping: r.mapping.clone(),
        mapping_version: r.mapping_version,
        mode: r.mode.as_str().into(),
        source: Some(crate::jobs::worker::source_system(r)),
        dry_run: r.dry_run,
        format: r.format.clone(),
        bytes: r.bytes,
        created_at: r.created_at,
        updated_at: r.updated_at,
        finished_at: r.finished_at,
        counts: ImportCounts {
            rows_total: r.counts.rows_total,
            created: r.counts.created,
            updated: r.counts.updated,
            unchanged: r.counts.unchanged,
            deactivated: r.counts.deactivated,
            failed: r.counts.failed,
        },
        error: r.error_code.as_ref().map(|c| ImportFailure {
            code: c.clone(),
            message: r.error_message.clone().unwrap_or_default(),
        }),
        warnings: r
            .options
            .get("warnings")
            .cloned()
            .and_then(|w| serde_json::from_value(w).ok())
            .unwrap_or_default(),
        links: ImportLinks {
            errors: format!("{base}/errors"),
            events: format!("{base}/events"),
            self_: base,
        },
    }
}

fn is_final(r: &ImportRow) -> bool {
    r.state.is_final()
}

/// Polls until the import is final or `secs` have passed.
async fn wait_final(state: &AppState, row: ImportRow, secs: u64) -> ApiResult<ImportRow> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    let mut row = row;
    while !is_final(&row) && tokio::time::Instant::now() < deadline {
        // Woken when any import ends; the timeout covers other instances
        // and a notification that raced the check above.
        let finished = state.import_finished.notified();
        let _ = tokio::time::timeout_at(
            deadline.min(tokio::time::Instant::now() + Duration::from_millis(500)),
            finished,
        )
        .await;
        let (t, id) = (row.tenant.clone(), row.id.clone());
        row = state.db(move |s| s.import_get(&t, &id)).await?;
    }
    Ok(row)
}

fn answer(row: &ImportRow, fresh: bool) -> Response {
    let status = if is_final(row) || !fresh {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    let mut resp = (status, Json(import_info(row))).into_response();
    if let Ok(v) = header::HeaderValue::from_str(&format!("/api/v1/imports/{}", row.id)) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

pub async fn import_create(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    caller.require(Permission::ImportsCreate)?;
    let mut p = parse_params(query.as_deref(), state.config.import.max_wait_seconds)?;
    let format = detect_format(&p, &headers)?;
    resolve_encoding(&mut p, format.as_deref(), &headers)?;
    let key = idempotency_key(&headers)?;
    let wait = p.wait;
    let (row, fresh) = imports::submit(&state, &caller, p, format, key, body).await?;
    let row = wait_final(&state, row, wait).await?;
    Ok(answer(&row, fresh))
}

/// An import the caller may see: importers see their own only.
async fn visible_import(state: &AppState, caller: &Caller, id: String) -> ApiResult<ImportRow> {
    caller.require(Permission::ImportsRead)?;
    let t = caller.principal.tenant.clone();
    let row = state.db(move |s| s.import_get(&t, &id)).await?;
    if row.principal_id != caller.principal.id && !caller.has(Permission::TenantAdmin) {
        return Err(ApiError::NotFound("import"));
    }
    Ok(row)
}

pub async fn import_get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ImportInfo>> {
    Ok(Json(import_info(
        &visible_import(&state, &caller, id).await?,
    )))
}

fn query_pairs(q: Option<&str>, allowed: &[&str]) -> ApiResult<BTreeMap<String, String>> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(q.unwrap_or("")).map_err(|_| {
            ApiError::bad_request(
                ErrorCode::InvalidParameter,
                "the query string does not decode",
            )
        })?;
    let mut out = BTreeMap::new();
    for (k, v) in pairs {
        if !allowed.contains(&k.as_str()) {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidParameter,
                format!("{k}: unknown parameter"),
            ));
        }
        out.insert(k, v);
    }
    Ok(out)
}

fn limit_param(q: &BTreeMap<String, String>) -> ApiResult<u32> {
    let l = match q.get("limit") {
        None => None,
        Some(v) => Some(v.parse::<u32>().map_err(|_| {
            ApiError::bad_request(ErrorCode::InvalidParameter, "limit: must be a whole number")
        })?),
    };
    page_limit(l)
}

pub async fn import_list(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Page<ImportInfo>>> {
    caller.require(Permission::ImportsRead)?;
    let q = query_pairs(query.as_deref(), &["state", "limit", "after"])?;
    let limit = limit_param(&q)?;
    let wanted = match q.get("state") {
        None => None,
        Some(s) => Some(ImportState::parse(s).ok_or_else(|| {
            ApiError::bad_request(ErrorCode::InvalidParameter, "state: not an import state")
        })?),
    };
    let filter = ImportFilter {
        state: wanted,
        principal_id: (!caller.has(Permission::TenantAdmin)).then(|| caller.principal.id.clone()),
        before_id: q.get("after").cloned(),
        limit,
    };
    let t = caller.principal.tenant.clone();
    let rows = state.db(move |s| s.import_list(&t, &filter)).await?;
    let next_cursor = if rows.len() == limit as usize {
        rows.last().map(|r| r.id.clone())
    } else {
        None
    };
    Ok(Json(Page {
        items: rows.iter().map(import_info).collect(),
        next_cursor,
    }))
}

pub async fn import_errors(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Page<RowErrorInfo>>> {
    let row = visible_import(&state, &caller, id).await?;
    let q = query_pairs(query.as_deref(), &["limit", "after"])?;
    let limit = limit_param(&q)?;
    let after = match q.get("after") {
        None => 0,
        Some(v) => v.parse::<u64>().map_err(|_| {
            ApiError::bad_request(
                ErrorCode::InvalidParameter,
                "after: not a cursor of this listing",
            )
        })?,
    };
    let rows = state
        .db(move |s| s.import_errors(&row.id, after, limit))
        .await?;
    let next_cursor = if rows.len() == limit as usize {
        rows.last().map(|(c, _)| c.to_string())
    } else {
        None
    };
    Ok(Json(Page {
        items: rows
            .into_iter()
            .map(|(_, e)| RowErrorInfo {
                row: e.row,
                column: e.column,
                attribute: e.attribute,
                code: e.code,
                message: e.message,
            })
            .collect(),
        next_cursor,
    }))
}

fn progress(r: &ImportRow) -> ImportProgress {
    let info = import_info(r);
    ImportProgress {
        state: info.state,
        rows_processed: r.checkpoint_row.saturating_sub(1),
        counts: info.counts,
    }
}

/// Progress while the import runs: an `progress` event whenever it moves,
/// then one `done` event, then the stream ends.
pub async fn import_events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Sse<impl futures::Stream<Item = Result<Event, std::convert::Infallible>>>> {
    let row = visible_import(&state, &caller, id).await?;
    let stream = futures::stream::unfold(
        (state, row, None::<String>, false),
        |(state, row, last, done)| async move {
            if done {
                return None;
            }
            let mut row = row;
            loop {
                let p = progress(&row);
                let text = serde_json::to_string(&p).unwrap_or_default();
                if is_final(&row) {
                    let ev = Event::default().event("done").data(text);
                    return Some((Ok(ev), (state, row, None, true)));
                }
                if last.as_deref() != Some(text.as_str()) {
                    let ev = Event::default().event("progress").data(text.clone());
                    return Some((Ok(ev), (state, row, Some(text), false)));
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
                let (t, i) = (row.tenant.clone(), row.id.clone());
                match state.db(move |s| s.import_get(&t, &i)).await {
                    Ok(r) => row = r,
                    Err(_) => return None,
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
