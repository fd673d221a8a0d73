//! Imports: a file submitted for a mapping is checked (the mode against the
//! write policy, the mapping, the client's intake policy against how the
//! file is encrypted), streamed sealed into the spool, and recorded for the
//! worker (`jobs::worker`), which validates and applies it. A repeated
//! idempotency key answers with the first import.
use crate::auth::Caller;
use crate::base::error::{ApiError, ApiResult};
use crate::base::state::AppState;
use crate::jobs::worker::SCIM_FORMAT;
use axum::body::Body;
use futures::StreamExt;
use muster_core::mapping::FileSettings;
use muster_core::policy::{IntakePolicy, Permission};
use muster_intake::decrypt;
use muster_intake::seal::SealWriter;
use muster_proto::ErrorCode;
use muster_store::{ImportMode, ImportRow, NewImport};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write;

/// The parameters of `POST /api/v1/imports`, checked one by one so that an
/// error names the parameter.
#[derive(Debug, Clone)]
pub struct ImportParams {
    pub mapping: String,
    pub mode: ImportMode,
    pub dry_run: bool,
    pub wait: u64,
    pub format: Option<String>,
    /// The CSV delimiter given with the upload; else the mapping's, else `,`.
    pub delimiter: Option<u8>,
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
    /// The file's text encoding (its WHATWG name, `windows-1252`), from
    /// `encoding=` or the `Content-Type`'s `charset`; none: UTF-8, strictly.
    pub encoding: Option<String>,
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

/// Submits a file for import: `format` is `csv`, `jsonl` or `scim` (`None`:
/// the mapping's `[file]` format), `key` the
/// client's idempotency key. Returns the import and whether it is new
/// (`false`: the key named an earlier import, whose row is returned).
pub(crate) async fn submit(
    state: &AppState,
    caller: &Caller,
    p: ImportParams,
    format: Option<String>,
    key: Option<String>,
    body: Body,
) -> ApiResult<(ImportRow, bool)> {
    caller.require(Permission::ImportsCreate)?;
    if p.mode == ImportMode::Snapshot
        && !caller.principal.write_policy.may_write("employment_status")
    {
        // A snapshot deactivates by setting employment_status.
        return Err(ApiError::unprocessable(
            ErrorCode::SnapshotNotPermitted,
            format!(
                "mode: a snapshot deactivates people by writing employment_status, which the write policy of client '{}' does not allow",
                caller.principal.client_id
            ),
        ));
    }
    let tenant = caller.principal.tenant.clone();

    if let Some(k) = &key {
        // A repeated key answers with the first import, once the request is
        // shown to be the same one: the same parameters and the same file.
        let (pid, k) = (caller.principal.id.clone(), k.clone());
        if let Some(row) = state.db(move |s| s.import_by_key(&pid, &k)).await? {
            same_request(state, caller, &row, &p, format.as_deref(), body).await?;
            return Ok((row, false));
        }
    }

    // A SCIM file has no stored mapping: its import names the SCIM User
    // mapping, at version 0.
    let (mapping, file) = if format.as_deref() == Some(SCIM_FORMAT) {
        ((SCIM_FORMAT.to_owned(), 0), FileSettings::default())
    } else {
        let (t, name) = (tenant.clone(), p.mapping.clone());
        match state.db(move |s| s.mapping_get(&t, &name, None)).await {
            Ok(m) => {
                let file = m
                    .document
                    .get("file")
                    .cloned()
                    .and_then(|f| serde_json::from_value(f).ok())
                    .unwrap_or_default();
                ((m.name, m.version), file)
            }
            Err(ApiError::NotFound(_)) => {
                return Err(ApiError::unprocessable(
                    ErrorCode::UnknownMapping,
                    format!(
                        "mapping: no mapping named '{}' exists in this tenant",
                        p.mapping
                    ),
                ))
            }
            Err(e) => return Err(e),
        }
    };
    // What the upload does not say, the mapping's [file] table does.
    let format = match format.or(file.format.clone()) {
        Some(f) => f,
        None => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidParameter,
                format!(
                    "format: required with application/octet-stream, as mapping '{}' names no file.format",
                    mapping.0
                ),
            ))
        }
    };
    let delimiter = p.delimiter.or(file.delimiter_byte()).unwrap_or(b',');
    let encoding = match (&p.encoding, &file.encoding) {
        (Some(e), _) => Some(e.clone()),
        (None, Some(label)) => {
            Some(muster_intake::text::encoding_name(label).ok_or_else(|| {
                ApiError::unprocessable(
                    ErrorCode::InvalidMapping,
                    format!(
                        "mapping '{}': file.encoding is not an encoding label",
                        mapping.0
                    ),
                )
            })?)
        }
        (None, None) => None,
    };

    let pid = caller.principal.id.clone();
    let intake = state.db(move |s| s.intake_policy_get(&pid)).await?;
    let id = uuid::Uuid::now_v7().to_string();
    // Until the import row commits, the spool sweep leaves its files alone.
    let _receiving = state.receiving.start(&id);
    let digest = key.is_some();
    let (bytes, encryption, sha256) = receive_upload(state, &id, body, digest, |head| {
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
        mapping: mapping.0,
        mapping_version: mapping.1,
        mode: p.mode,
        dry_run: p.dry_run,
        format,
        options: serde_json::json!({
            "delimiter": (delimiter as char).to_string(),
            "trailing_delimiter": file.trailing_delimiter,
            "header_map": p.header_map,
            "encryption": encryption.as_str(),
            "encryption_key_id": p.encryption_key_id,
            "source": p.source.clone().unwrap_or_else(|| caller.principal.client_id.clone()),
            "max_deactivate_percent": p.max_deactivate_percent,
            "allow_mass_deactivation": p.allow_mass_deactivation,
            "encryption_declared": p.encryption.map(Encryption::as_str),
            "encoding": encoding,
            "body_sha256": sha256,
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
    Ok((row, fresh))
}

/// Shows that a request repeating `row`'s idempotency key is the request
/// that made it: the same parameters, then (when the first request's file
/// digest was kept) the same bytes. Anything else is 422, naming the
/// import and which parameter differs, never its value.
async fn same_request(
    state: &AppState,
    caller: &Caller,
    row: &ImportRow,
    p: &ImportParams,
    format: Option<&str>,
    body: Body,
) -> ApiResult<()> {
    let o = &row.options;
    let text = |k: &str| o.get(k).and_then(|v| v.as_str());
    let source = p.source.as_deref().unwrap_or(&caller.principal.client_id);
    let delimiter = p.delimiter.map(|d| (d as char).to_string());
    let header_map = serde_json::to_value(&p.header_map).unwrap_or_default();
    let limit = o.get("max_deactivate_percent").and_then(|v| v.as_f64());
    let declared = p.encryption.map(Encryption::as_str);
    // Imports made before the declared encryption was kept compare with the
    // detected one, which a declaration must have matched.
    let first_declared = match o.get("encryption_declared") {
        Some(v) => v.as_str(),
        None => declared.and(text("encryption")),
    };
    let differs = [
        // Left out (an octet-stream upload), the mapping's was used.
        ("format", format.is_some_and(|f| row.format != f)),
        (
            "mapping",
            row.format != SCIM_FORMAT && row.mapping != p.mapping,
        ),
        ("mode", row.mode != p.mode),
        ("dry_run", row.dry_run != p.dry_run),
        // Left out, the mapping's (or the default) was used.
        (
            "delimiter",
            delimiter
                .as_deref()
                .is_some_and(|d| text("delimiter").is_some_and(|t| t != d)),
        ),
        (
            "header_map",
            o.get("header_map").is_some_and(|h| *h != header_map),
        ),
        ("encryption", first_declared != declared),
        (
            "encoding",
            p.encoding.is_some() && text("encoding") != p.encoding.as_deref(),
        ),
        (
            "encryption_key_id",
            text("encryption_key_id") != p.encryption_key_id.as_deref(),
        ),
        ("source", text("source").is_some_and(|s| s != source)),
        ("max_deactivate_percent", limit != p.max_deactivate_percent),
        (
            "allow_mass_deactivation",
            o.get("allow_mass_deactivation")
                .and_then(|v| v.as_bool())
                .is_some_and(|a| a != p.allow_mass_deactivation),
        ),
    ];
    if let Some((name, _)) = differs.iter().find(|(_, d)| *d) {
        return Err(key_reused(row, &format!("a different {name}")));
    }
    if let Some(first) = text("body_sha256") {
        if body_sha256(state, body).await? != first {
            return Err(key_reused(row, "a different file"));
        }
    }
    Ok(())
}

fn key_reused(row: &ImportRow, what: &str) -> ApiError {
    ApiError::unprocessable(
        ErrorCode::IdempotencyKeyReused,
        format!(
            "Idempotency-Key: this client used the key for import {} with {what}; resend that request unchanged, or use a new key for a new file",
            row.id
        ),
    )
}

/// The SHA-256 of a body, streamed and bounded as an upload is.
async fn body_sha256(state: &AppState, body: Body) -> ApiResult<String> {
    let max = state.config.limits.max_upload_bytes;
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let c = chunk.map_err(|e| body_failed(&e))?;
        total += c.len() as u64;
        if total > max {
            return Err(too_large(max));
        }
        hasher.update(&c);
    }
    Ok(hex::encode(hasher.finalize()))
}

fn body_failed(e: &axum::Error) -> ApiError {
    match crate::http::bodies::too_slow(e) {
        Some(why) => ApiError::RequestTimeout {
            code: ErrorCode::UploadTooSlow,
            detail: format!("the upload arrived too slowly: {why}"),
        },
        None => ApiError::bad_request(
            ErrorCode::UploadInterrupted,
            "the upload ended before the body was complete",
        ),
    }
}

fn too_large(max: u64) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "the upload is larger than the limit of {max} bytes"
    ))
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
                ErrorCode::EncryptionMismatch,
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
            ErrorCode::EncryptionRequired,
            "this client's uploads must be encrypted to one of the tenant's keys (GET /api/v1/keys); the upload is plaintext",
        ));
    }
    if intake.require_signed_by.is_some() && found != Encryption::Pgp {
        return Err(ApiError::unprocessable(
            ErrorCode::SignatureRequired,
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
/// the body is kept and can refuse the upload. Returns the bytes received,
/// `check`'s answer and, when `digest` asks, the body's SHA-256 in hex.
async fn receive_upload<T>(
    state: &AppState,
    id: &str,
    body: Body,
    digest: bool,
    check: impl FnOnce(&[u8]) -> ApiResult<T>,
) -> ApiResult<(u64, T, Option<String>)> {
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
    let mut hasher = digest.then(Sha256::new);
    // `buf` fills while the previous piece is written from `spare`.
    let mut buf: Vec<u8> = Vec::new();
    let mut spare: Vec<u8> = Vec::new();
    while let Some(chunk) = stream.next().await {
        let c = match chunk {
            Ok(c) => c,
            Err(e) => {
                failure = Some(body_failed(&e));
                break;
            }
        };
        if let Some(h) = hasher.as_mut() {
            h.update(&c);
        }
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
            failure = Some(too_large(max));
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
    Ok((total, verdict, hasher.map(|h| hex::encode(h.finalize()))))
}
