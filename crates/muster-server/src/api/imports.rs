//! The imports API: upload (sealed to disk while it streams in), status,
//! row errors, and progress as Server-Sent Events.
use crate::api::page_limit;
use crate::auth::Caller;
use crate::base::error::{ApiError, ApiResult};
use crate::base::state::AppState;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use muster_core::policy::{IntakePolicy, Permission};
use muster_intake::decrypt;
use muster_intake::seal::SealWriter;
use muster_proto::*;
use muster_store::{ImportFilter, ImportRow, NewImport};
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

/// The parameters of `POST /api/v1/imports`, checked one by one so that an
/// error names the parameter.
#[derive(Debug, Clone)]
pub struct ImportParams {
    pub mapping: String,
    pub mode: String,
    pub dry_run: bool,
    pub wait: u64,
    pub format: Option<String>,
    pub delimiter: u8,
    pub header_map: BTreeMap<String, String>,
    /// Declared encryption (`none`, `pgp`, `age`); detected when absent.
    pub encryption: Option<Encryption>,
    /// The tenant key the client says it encrypted to (informational: the
    /// message itself names its recipients).
    pub encryption_key_id: Option<String>,
    /// The import source this file speaks for (snapshot scope); by default
    /// the client's id.
    pub source: Option<String>,
    /// Snapshot safety valve: this request's limit, in percent.
    pub max_deactivate_percent: Option<f64>,
    /// Snapshot safety valve: lifts the limit for this request.
    pub allow_mass_deactivation: bool,
}

/// How an upload is encrypted, as declared or detected from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encryption {
    None,
    Pgp,
    Age,
}

impl Encryption {
    pub fn as_str(self) -> &'static str {
        match self {
            Encryption::None => "none",
            Encryption::Pgp => "pgp",
            Encryption::Age => "age",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(Encryption::None),
            "pgp" | "openpgp" => Some(Encryption::Pgp),
            "age" => Some(Encryption::Age),
            _ => None,
        }
    }

    /// From the upload's first bytes (at least 64 when the file has them).
    pub fn detect(head: &[u8]) -> Self {
        match decrypt::detect(head) {
            decrypt::Encryption::None => Encryption::None,
            decrypt::Encryption::OpenPgp { .. } => Encryption::Pgp,
            decrypt::Encryption::Age { .. } => Encryption::Age,
        }
    }
}

fn parse_bool(name: &str, v: &str) -> ApiResult<bool> {
    match v {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(ApiError::bad_request(
            "invalid_parameter",
            format!("{name}: must be true or false"),
        )),
    }
}

pub fn parse_params(query: Option<&str>, max_wait: u64) -> ApiResult<ImportParams> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query.unwrap_or("")).map_err(|_| {
            ApiError::bad_request("invalid_parameter", "the query string does not decode")
        })?;
    let mut p = ImportParams {
        mapping: String::new(),
        mode: "upsert".into(),
        dry_run: false,
        wait: 0,
        format: None,
        delimiter: b',',
        header_map: BTreeMap::new(),
        encryption: None,
        encryption_key_id: None,
        source: None,
        max_deactivate_percent: None,
        allow_mass_deactivation: false,
    };
    let mut seen = std::collections::HashSet::new();
    for (k, v) in pairs {
        if !seen.insert(k.clone()) {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                format!("{k}: given more than once"),
            ));
        }
        match k.as_str() {
            "mapping" => p.mapping = v,
            "mode" => match v.as_str() {
                "upsert" | "snapshot" => p.mode = v,
                _ => {
                    return Err(ApiError::bad_request(
                        "invalid_parameter",
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
                        "invalid_parameter",
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
                            "invalid_parameter",
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
                        "invalid_parameter",
                        format!("wait: must be a whole number of seconds from 0 to {max_wait}"),
                    )
                })?
            }
            "format" => match v.as_str() {
                "csv" | "jsonl" => p.format = Some(v),
                _ => {
                    return Err(ApiError::bad_request(
                        "invalid_parameter",
                        "format: must be 'csv' or 'jsonl'",
                    ))
                }
            },
            "delimiter" => {
                let d = match v.as_str() {
                    "tab" | "\t" => b'\t',
                    s if s.len() == 1 && s.is_ascii() && s != "\"" && s != "\n" && s != "\r" => s.as_bytes()[0],
                    _ => {
                        return Err(ApiError::bad_request(
                            "invalid_parameter",
                            "delimiter: must be one ASCII character (or 'tab'), not a quote or line break",
                        ))
                    }
                };
                p.delimiter = d;
            }
            "encryption" => {
                p.encryption = Some(Encryption::parse(&v).ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_parameter",
                        "encryption: must be none, pgp or age (or left out to detect it)",
                    )
                })?)
            }
            "encryption_key_id" => {
                if v.is_empty() || v.len() > 128 || !v.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(ApiError::bad_request(
                        "invalid_parameter",
                        "encryption_key_id: must be a key id from GET /api/v1/keys",
                    ));
                }
                p.encryption_key_id = Some(v)
            }
            "header_map" => {
                p.header_map = serde_json::from_str(&v).map_err(|_| {
                    ApiError::bad_request(
                        "invalid_parameter",
                        "header_map: must be a JSON object of column name to column name",
                    )
                })?
            }
            other => {
                return Err(ApiError::bad_request(
                    "invalid_parameter",
                    format!("{other}: unknown parameter"),
                ))
            }
        }
    }
    if p.mapping.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            "mapping: required (the name of a stored mapping)",
        ));
    }
    if p.mode != "snapshot" {
        let given = [
            ("max_deactivate_percent", p.max_deactivate_percent.is_some()),
            ("allow_mass_deactivation", p.allow_mass_deactivation),
        ];
        if let Some((name, _)) = given.iter().find(|(_, g)| *g) {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                format!("{name}: only with mode=snapshot"),
            ));
        }
    }
    Ok(p)
}

/// The file's format, from `format=` or the media type.
pub(crate) fn detect_format(p: &ImportParams, headers: &HeaderMap) -> ApiResult<String> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let from_type = match ct.as_str() {
        "text/csv" | "application/csv" => Some("csv"),
        "application/x-ndjson" | "application/jsonl" | "application/x-jsonlines"
        | "application/json-lines" => Some("jsonl"),
        "application/octet-stream" => None,
        _ => {
            return Err(ApiError::UnsupportedMediaType(
                "the body must be text/csv or application/x-ndjson (or application/octet-stream with format=)"
                    .into(),
            ))
        }
    };
    match (&p.format, from_type) {
        (Some(f), Some(t)) if f != t => Err(ApiError::bad_request(
            "invalid_parameter",
            "format: contradicts the Content-Type",
        )),
        (Some(f), _) => Ok(f.clone()),
        (None, Some(t)) => Ok(t.to_owned()),
        (None, None) => Err(ApiError::bad_request(
            "invalid_parameter",
            "format: required with application/octet-stream",
        )),
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
                "invalid_header",
                "Idempotency-Key: 1 to 255 printable ASCII characters",
            )
        })
}

pub fn import_info(r: &ImportRow) -> ImportInfo {
    let base = format!("/api/v1/imports/{}", r.id);
    ImportInfo {
        id: r.id.clone(),
        state: ImportState::parse(&r.state).unwrap_or(ImportState::Failed),
        client_id: r.client_id.clone(),
        on_behalf_of: r.on_behalf_of.clone(),
        mapping: r.mapping.clone(),
        mapping_version: r.mapping_version,
        mode: r.mode.clone(),
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
        links: ImportLinks {
            errors: format!("{base}/errors"),
            events: format!("{base}/events"),
            self_: base,
        },
    }
}

fn is_final(r: &ImportRow) -> bool {
    ImportState::parse(&r.state).is_some_and(ImportState::is_final)
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
    let p = parse_params(query.as_deref(), state.config.import.max_wait_seconds)?;
    if p.mode == "snapshot" && !caller.principal.write_policy.may_write("employment_status") {
        // A snapshot deactivates by setting employment_status.
        return Err(ApiError::unprocessable(
            "snapshot_not_permitted",
            format!(
                "mode: a snapshot deactivates people by writing employment_status, which the write policy of client '{}' does not allow",
                caller.principal.client_id
            ),
        ));
    }
    let format = detect_format(&p, &headers)?;
    let key = idempotency_key(&headers)?;
    let tenant = caller.principal.tenant.clone();

    if let Some(k) = &key {
        // A repeated key answers with the first import, without reading the body.
        let (t, pid, k) = (tenant.clone(), caller.principal.id.clone(), k.clone());
        let existing = state
            .db(move |s| {
                s.import_list(
                    &t,
                    &ImportFilter {
                        principal_id: Some(pid),
                        limit: 1000,
                        ..Default::default()
                    },
                )
            })
            .await?
            .into_iter()
            .find(|r| r.idempotency_key.as_deref() == Some(k.as_str()));
        if let Some(row) = existing {
            let row = wait_final(&state, row, p.wait).await?;
            return Ok(answer(&row, false));
        }
    }

    let (t, name) = (tenant.clone(), p.mapping.clone());
    let mapping = match state.db(move |s| s.mapping_get(&t, &name, None)).await {
        Ok(m) => m,
        Err(ApiError::NotFound(_)) => {
            return Err(ApiError::unprocessable(
                "unknown_mapping",
                format!(
                    "mapping: no mapping named '{}' exists in this tenant",
                    p.mapping
                ),
            ))
        }
        Err(e) => return Err(e),
    };

    let pid = caller.principal.id.clone();
    let intake = state.db(move |s| s.intake_policy_get(&pid)).await?;
    let id = uuid::Uuid::now_v7().to_string();
    // Until the import row commits, the spool sweep leaves its files alone.
    let _receiving = state.receiving.start(&id);
    let (bytes, encryption) = receive_upload(&state, &id, body, |head| {
        check_encryption(&p, &intake, head)
    })
    .await?;
    let new = NewImport {
        id: id.clone(),
        tenant,
        principal_id: caller.principal.id.clone(),
        client_id: caller.principal.client_id.clone(),
        on_behalf_of: caller.on_behalf_of.clone(),
        idempotency_key: key,
        mapping: mapping.name.clone(),
        mapping_version: mapping.version,
        mode: p.mode.clone(),
        dry_run: p.dry_run,
        format,
        options: serde_json::json!({
            "delimiter": (p.delimiter as char).to_string(),
            "header_map": p.header_map,
            "encryption": encryption.as_str(),
            "encryption_key_id": p.encryption_key_id,
            "source": p.source.clone().unwrap_or_else(|| caller.principal.client_id.clone()),
            "max_deactivate_percent": p.max_deactivate_percent,
            "allow_mass_deactivation": p.allow_mass_deactivation,
        }),
        bytes,
        created_at: state.clock.now(),
    };
    let (row, fresh) = state.db(move |s| s.import_create(new)).await?;
    if !fresh {
        // Lost a race on the idempotency key: this upload is not needed.
        let _ = std::fs::remove_file(crate::base::data_dir::upload_path(&state.config, &id));
    } else {
        tracing::info!(import = %row.id, bytes, "import received");
        state.import_queued.notify_one();
    }
    let row = wait_final(&state, row, p.wait).await?;
    Ok(answer(&row, fresh))
}

/// Decides, from the upload's first bytes, how it is encrypted, and refuses
/// it early when that contradicts the request or the client's intake
/// policy: a plaintext upload from a client that must encrypt is refused
/// before anything of it is read into the database.
fn check_encryption(p: &ImportParams, intake: &IntakePolicy, head: &[u8]) -> ApiResult<Encryption> {
    let found = Encryption::detect(head);
    if let Some(declared) = p.encryption {
        if declared != found {
            return Err(ApiError::unprocessable(
                "encryption_mismatch",
                format!(
                    "encryption: declared {} but the upload is {}",
                    declared.as_str(),
                    match found {
                        Encryption::None => "not encrypted".to_owned(),
                        e => format!("{} encrypted", e.as_str()),
                    }
                ),
            ));
        }
    }
    if intake.require_encryption && found == Encryption::None {
        return Err(ApiError::unprocessable(
            "encryption_required",
            "this client's uploads must be encrypted to one of the tenant's keys (GET /api/v1/keys); the upload is plaintext",
        ));
    }
    if intake.require_signed_by.is_some() && found != Encryption::Pgp {
        return Err(ApiError::unprocessable(
            "signature_required",
            "this client's uploads must be OpenPGP messages signed by the registered sender key",
        ));
    }
    Ok(found)
}

/// How many leading bytes decide the encryption (an age header line or an
/// armor line fits well within this).
const SNIFF_BYTES: usize = 64;

/// Plaintext gathered before it is sealed and written, in one short
/// blocking job: an upload holds a blocking thread only while a piece is
/// written, never while it waits for the client's bytes.
const PIECE: usize = 256 * 1024;

type Sealer = SealWriter<std::fs::File>;

/// The `.part` being written: idle between pieces, or in the blocking job
/// writing one (which hands the writer and the emptied buffer back).
enum Sink {
    Idle(Sealer),
    Writing(tokio::task::JoinHandle<std::io::Result<(Sealer, Vec<u8>)>>),
}

impl Sink {
    /// Waits for the piece in hand, if any.
    async fn settle(self) -> ApiResult<(Sealer, Option<Vec<u8>>)> {
        match self {
            Sink::Idle(w) => Ok((w, None)),
            Sink::Writing(job) => {
                let (w, buf) = job.await?.map_err(sealing_failed)?;
                Ok((w, Some(buf)))
            }
        }
    }
}

fn sealing_failed(e: std::io::Error) -> ApiError {
    ApiError::Internal(anyhow::anyhow!("sealing the upload failed: {e}"))
}

/// Removes the `.part` when dropped, unless it was stored: on every
/// failure, and when the request is dropped mid-body (the client went
/// away). The file is created before any piece is written, so a write
/// still running then cannot create it again after the removal.
struct PartFile {
    path: std::path::PathBuf,
    stored: bool,
}

impl Drop for PartFile {
    fn drop(&mut self) {
        if !self.stored {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Streams the body into a sealed file; never holds it whole in memory and
/// never writes plaintext. `check` sees the first bytes before anything of
/// the body is kept and can refuse the upload. Returns the bytes received
/// and `check`'s answer.
async fn receive_upload<T>(
    state: &AppState,
    id: &str,
    body: Body,
    check: impl FnOnce(&[u8]) -> ApiResult<T>,
) -> ApiResult<(u64, T)> {
    let dir = state.config.uploads_dir();
    let final_path = crate::base::data_dir::upload_path(&state.config, id);
    let mut part = PartFile {
        path: dir.join(format!("{id}.part")),
        stored: false,
    };
    let key = state.master_key.current();
    let aad = id.as_bytes().to_vec();
    let path = part.path.clone();
    let opened = tokio::task::spawn_blocking(move || -> std::io::Result<Sealer> {
        SealWriter::new(
            crate::base::data_dir::create_private_file(&path)?,
            &key,
            &aad,
        )
    })
    .await?
    .map_err(sealing_failed)?;
    let mut sink = Some(Sink::Idle(opened));
    let max = state.config.limits.max_upload_bytes;
    let mut total = 0u64;
    let mut stream = body.into_data_stream();
    let mut failure: Option<ApiError> = None;
    let mut head: Vec<u8> = Vec::with_capacity(SNIFF_BYTES);
    let mut check = Some(check);
    let mut verdict: Option<T> = None;
    // `buf` fills while the previous piece is written from `spare`.
    let mut buf: Vec<u8> = Vec::new();
    let mut spare: Vec<u8> = Vec::new();
    while let Some(chunk) = stream.next().await {
        let c = match chunk {
            Ok(c) => c,
            Err(e) => {
                failure = Some(match crate::http::bodies::too_slow(&e) {
                    Some(why) => ApiError::RequestTimeout {
                        code: "upload_too_slow",
                        detail: format!("the upload arrived too slowly: {why}"),
                    },
                    None => ApiError::bad_request(
                        "upload_interrupted",
                        "the upload ended before the body was complete",
                    ),
                });
                break;
            }
        };
        if head.len() < SNIFF_BYTES {
            let take = (SNIFF_BYTES - head.len()).min(c.len());
            head.extend_from_slice(&c[..take]);
            if head.len() == SNIFF_BYTES {
                if let Some(f) = check.take() {
                    match f(&head) {
                        Ok(v) => verdict = Some(v),
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    }
                }
            }
        }
        total += c.len() as u64;
        if total > max {
            failure = Some(ApiError::PayloadTooLarge(format!(
                "the upload is larger than the limit of {max} bytes"
            )));
            break;
        }
        buf.extend_from_slice(&c);
        if buf.len() >= PIECE {
            // The sniff check has run: a piece is far longer than its window.
            let Some(s) = sink.take() else { break };
            let w = match s.settle().await {
                Ok((w, emptied)) => {
                    spare = emptied.unwrap_or(spare);
                    w
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            let mut piece = std::mem::replace(&mut buf, std::mem::take(&mut spare));
            sink = Some(Sink::Writing(tokio::task::spawn_blocking(move || {
                let mut w = w;
                w.write_all(&piece)?;
                piece.clear();
                Ok((w, piece))
            })));
        }
    }
    if failure.is_none() {
        // A file shorter than the sniffing window is judged on all of it.
        if let Some(f) = check.take() {
            match f(&head) {
                Ok(v) => verdict = Some(v),
                Err(e) => failure = Some(e),
            }
        }
    }
    // The piece in hand ends before anything else happens to the file.
    let settled = match sink.take() {
        Some(s) => s.settle().await,
        None => Err(ApiError::Internal(anyhow::anyhow!(
            "the upload lost its file"
        ))),
    };
    if let Some(f) = failure {
        return Err(f);
    }
    let (w, _) = settled?;
    let verdict =
        verdict.ok_or_else(|| ApiError::Internal(anyhow::anyhow!("upload not checked")))?;
    // The tail and the last chunk, then fsync and rename, and the rename
    // made durable before the import row that names the file commits, so
    // even a power cut cannot leave an import without its upload (a
    // process crash cannot anyway).
    let from = part.path.clone();
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let mut w = w;
        w.write_all(&buf)?;
        w.finish()?.sync_all()?;
        std::fs::rename(&from, &final_path)?;
        if let Err(e) = std::fs::File::open(&dir).and_then(|d| d.sync_all()) {
            tracing::warn!(error = %e, "cannot sync the uploads directory");
        }
        Ok(())
    })
    .await?
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("storing the upload failed: {e}")))?;
    part.stored = true;
    Ok((total, verdict))
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
            ApiError::bad_request("invalid_parameter", "the query string does not decode")
        })?;
    let mut out = BTreeMap::new();
    for (k, v) in pairs {
        if !allowed.contains(&k.as_str()) {
            return Err(ApiError::bad_request(
                "invalid_parameter",
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
            ApiError::bad_request("invalid_parameter", "limit: must be a whole number")
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
    if let Some(s) = q.get("state") {
        if ImportState::parse(s).is_none() {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                "state: not an import state",
            ));
        }
    }
    let filter = ImportFilter {
        state: q.get("state").cloned(),
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
            ApiError::bad_request("invalid_parameter", "after: not a cursor of this listing")
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
