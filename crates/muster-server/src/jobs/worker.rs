//! The import worker. An import runs in two passes over the sealed upload:
//!
//! 1. **validate** (`parsing`): unseal, parse and map every row, record row
//!    errors, and reject the whole import, with nothing applied, on a format
//!    or mapping failure or when the share of bad rows passes the mapping's
//!    threshold. A failure found at the last row (a truncated file, a bad
//!    line) therefore never leaves half an import behind.
//! 2. **apply** (`applying`): read again and apply the good rows in batches;
//!    each batch commits with its audit entries and a checkpoint, so a
//!    restart resumes after the last committed row and applies nothing twice.
//!
//! Memory stays bounded: rows stream through; what validation must keep
//! about every row until the whole file is seen (keys for duplicates,
//! manager references) goes to a disk-backed index ([`muster_intake::row_index`]),
//! and in memory stays a bit a row (rows found unchanged, duplicates).
//!
//! Instances sharing a database divide the queue by claiming: each import
//! is worked on by the instance holding its lease ([`Store::import_claim`]),
//! which a heartbeat thread renews while the import runs. An instance that
//! dies leaves its lease to run out, and another one resumes the import
//! from its last committed checkpoint; one that shuts down cleanly hands
//! its lease back so its successor need not wait. Every write a run makes
//! is fenced by the lease (the batches, and validation's reset, state, row
//! errors and totals, and the end): an instance that stalled past its lease
//! while another took the import over writes nothing more, stops with
//! `RunError::LeaseLost`, and leaves the upload to the new holder.
use crate::base::data_dir::upload_path;
use crate::base::state::AppState;
use crate::ops::write::manager_of;
use crate::ops::write::policy_errors;
use crate::scim::import::ScimRows;
use muster_core::mapping::{CompiledMapping, MappingDoc, MappingError, MappingFormat, RowError};
use muster_core::person::Incoming;
use muster_intake::decrypt::{self, DecryptError, SignerKey};
use muster_intake::records::{Format, FormatError, Item, Limits, Record, RecordReader};
pub use muster_intake::row_index::RowSet;
use muster_intake::row_index::{self, Digester, Late, RowIndex};
use muster_intake::seal::UnsealReader;
use muster_proto::ErrorCode;
use muster_store::{
    BatchItem, Checkpoint, ClaimScope, ClientRow, ImportRow, RowErrorRecord, Store, WriteContext,
};
use muster_store::{ImportMode, ImportState};
use std::collections::BTreeMap;
use std::io::{BufReader, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// How an import run ended.
enum Outcome {
    Done,
    /// Shutdown asked; the import resumes from its checkpoint on next start.
    Interrupted,
    /// This instance no longer holds the import's lease: another one has
    /// it (or will) and carries on from the checkpoint.
    LeaseLost,
}

/// How often the heartbeat looks at the shutdown flag.
const HEARTBEAT_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// A whole-import refusal: stable code and a message naming the problem.
struct Reject {
    code: ErrorCode,
    message: String,
}

enum RunError {
    Reject(Reject),
    Fail(anyhow::Error),
    /// Told to stop (shutdown, or the lease was lost) before the end.
    Halted,
    /// A batch was refused because this instance no longer holds the
    /// import's lease: another instance has taken it over.
    LeaseLost,
}

impl From<muster_store::StoreError> for RunError {
    fn from(e: muster_store::StoreError) -> Self {
        RunError::Fail(e.into())
    }
}

/// The validation index's files (see [`muster_intake::row_index`]): the gateway's
/// own disk, not the client's file.
impl From<std::io::Error> for RunError {
    fn from(e: std::io::Error) -> Self {
        RunError::Fail(anyhow::anyhow!("the import's validation index: {e}"))
    }
}

/// The answer of a fenced write ([`Store::import_reset_claimed`] and its
/// kin): `false` means another instance holds the import now.
fn held(still_ours: bool) -> Result<(), RunError> {
    if still_ours {
        Ok(())
    } else {
        Err(RunError::LeaseLost)
    }
}

fn reject(code: ErrorCode, message: impl Into<String>) -> RunError {
    RunError::Reject(Reject {
        code,
        message: message.into(),
    })
}

/// Claims and runs queued imports, up to `import.concurrency` at once,
/// until `stop` is set; then waits for the runs in progress, which stop
/// between batches.
///
/// Tenants share the slots (see `docs/security.md`, "Tenant fairness"):
/// each claim takes the next import in the tenants' turn order
/// ([`Store::import_claim`]), and with more than one slot the last free one
/// is only ever given to a tenant with no import running
/// ([`ClaimScope::IdleTenants`]), so a tenant's queue of large imports
/// leaves a slot for another tenant's small one rather than making it wait
/// for the whole queue.
pub async fn run(state: AppState, stop: Arc<AtomicBool>) {
    let lease = lease_of(&state);
    let slots = state.config.import.concurrency.max(1);
    let mut runs: tokio::task::JoinSet<(String, Result<Outcome, tokio::task::JoinError>)> =
        tokio::task::JoinSet::new();
    while !stop.load(Ordering::SeqCst) {
        // Registered before claiming, so an upload queued meanwhile wakes us.
        let notified = state.import_queued.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        while runs.len() < slots && !stop.load(Ordering::SeqCst) {
            let scope = if slots > 1 && runs.len() + 1 == slots {
                ClaimScope::IdleTenants
            } else {
                ClaimScope::AnyTenant
            };
            let (owner, now) = (state.instance.clone(), state.clock.now());
            let claimed = state
                .db(move |s| s.import_claim_in(&owner, lease, now, scope))
                .await;
            let imp = match claimed {
                Ok(Some(imp)) => imp,
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(error = ?e, "cannot claim an import");
                    break;
                }
            };
            let (st, stop2) = (state.clone(), stop.clone());
            let id = imp.id.clone();
            runs.spawn(async move {
                let res =
                    tokio::task::spawn_blocking(move || process(&st, imp, &stop2, lease)).await;
                (id, res)
            });
        }
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
            Some(done) = runs.join_next(), if !runs.is_empty() => ended(&state, done),
        }
    }
    while let Some(done) = runs.join_next().await {
        ended(&state, done);
    }
}

type RunEnd = Result<(String, Result<Outcome, tokio::task::JoinError>), tokio::task::JoinError>;

/// Logs how a run ended and wakes those waiting for imports to end.
fn ended(state: &AppState, done: RunEnd) {
    state.import_finished.notify_waiters();
    match done {
        Ok((_, Ok(Outcome::Done))) => {}
        Ok((id, Ok(Outcome::LeaseLost))) => {
            tracing::warn!(import = %id, "lost the import's lease; another instance carries on with it");
        }
        Ok((id, Ok(Outcome::Interrupted))) => {
            tracing::info!(import = %id, "import paused for shutdown; it resumes on restart");
        }
        // The lease runs out and the import is tried again.
        Ok((id, Err(e))) => tracing::error!(import = %id, error = %e, "import task panicked"),
        Err(e) => tracing::error!(error = %e, "import task panicked"),
    }
}

fn lease_of(state: &AppState) -> chrono::Duration {
    let secs = i64::try_from(state.config.import.lease_seconds).unwrap_or(i64::MAX / 1000);
    chrono::Duration::try_seconds(secs).unwrap_or(chrono::Duration::MAX)
}

/// Keeps this instance's lease on an import alive until `done` closes,
/// renewing every third of the lease (so two renewals may fail before it
/// runs out). Sets `halt` on shutdown, and `halt` and `lost` when the
/// lease is gone, so the import stops between batches. Renewal is timed by
/// the real clock (this is a real thread); the lease itself by the
/// injected one, like every stored time.
struct Heartbeat<'a> {
    state: &'a AppState,
    id: &'a str,
    lease: chrono::Duration,
    stop: &'a AtomicBool,
    halt: &'a AtomicBool,
    lost: &'a AtomicBool,
}

impl Heartbeat<'_> {
    fn run(&self, done: std::sync::mpsc::Receiver<()>) {
        let every = (self.lease / 3)
            .to_std()
            .unwrap_or(HEARTBEAT_POLL)
            .max(HEARTBEAT_POLL);
        let lease_std = self.lease.to_std().unwrap_or(every);
        let (mut last_try, mut last_ok) = (std::time::Instant::now(), std::time::Instant::now());
        loop {
            match done.recv_timeout(HEARTBEAT_POLL) {
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                _ => return,
            }
            if self.stop.load(Ordering::SeqCst) {
                self.halt.store(true, Ordering::SeqCst);
            }
            if last_try.elapsed() < every {
                continue;
            }
            last_try = std::time::Instant::now();
            let renewed = self.state.store.import_renew(
                self.id,
                &self.state.instance,
                self.lease,
                self.state.clock.now(),
            );
            match renewed {
                Ok(true) => last_ok = std::time::Instant::now(),
                Ok(false) => return self.give_up(),
                // Not yet lost: the lease may still run; try again.
                Err(e) if last_ok.elapsed() < lease_std => {
                    tracing::warn!(import = %self.id, error = ?e, "cannot renew the import's lease");
                }
                Err(e) => {
                    tracing::error!(import = %self.id, error = ?e, "cannot renew the import's lease, which has run out");
                    return self.give_up();
                }
            }
        }
    }

    fn give_up(&self) {
        self.lost.store(true, Ordering::SeqCst);
        self.halt.store(true, Ordering::SeqCst);
    }
}

fn process(
    state: &AppState,
    imp: ImportRow,
    stop: &AtomicBool,
    lease: chrono::Duration,
) -> Outcome {
    let store = state.store.as_ref();
    let id = imp.id.clone();
    let started = std::time::Instant::now();
    let (halt, lost) = (AtomicBool::new(false), AtomicBool::new(false));
    let heartbeat = Heartbeat {
        state,
        id: &id,
        lease,
        stop,
        halt: &halt,
        lost: &lost,
    };
    let (done, beats) = std::sync::mpsc::channel::<()>();
    let result = std::thread::scope(|scope| {
        scope.spawn(|| heartbeat.run(beats));
        // `done` is dropped when this closure ends, even by a panic, and
        // that ends the heartbeat (the scope waits for it).
        let _done = done;
        run_import(state, &imp, &halt)
    });
    if lost.load(Ordering::SeqCst) || matches!(result, Err(RunError::LeaseLost)) {
        // Whatever this run got to, the import is another instance's now:
        // recording an end here could contradict its work.
        return Outcome::LeaseLost;
    }
    let now = state.clock.now();
    let path = upload_path(&state.config, &id);
    // Records the end, fenced: `false` when the lease went meanwhile, and
    // then neither the end nor the upload (the new holder reads it) is
    // touched.
    let finish = |s: ImportState, err: Option<(&str, &str)>| -> bool {
        match store.import_set_state_claimed(&id, &state.instance, s, err, now) {
            Ok(true) => state.metrics.import_finished(s),
            Ok(false) => return false,
            Err(e) => {
                tracing::error!(import = %id, error = ?e, "cannot record the import's end");
            }
        }
        if !state.config.import.retain_uploads {
            let _ = std::fs::remove_file(&path);
        }
        true
    };
    let lease_lost = || {
        tracing::warn!(import = %id, "the import's lease went to another instance before its end was recorded");
        Outcome::LeaseLost
    };
    match result {
        Ok(Outcome::Interrupted)
        | Ok(Outcome::LeaseLost)
        | Err(RunError::Halted)
        | Err(RunError::LeaseLost) => {
            // Hand the import back now rather than make the next instance
            // wait out the lease.
            let released = store.import_renew(&id, &state.instance, chrono::Duration::zero(), now);
            if let Err(e) = released {
                tracing::warn!(import = %id, error = ?e, "cannot hand back the import's lease; it is taken up again when the lease runs out");
            }
            return Outcome::Interrupted;
        }
        Ok(Outcome::Done) => {
            let counts = store.import_get(&imp.tenant, &id).map(|r| r.counts);
            if let Ok(c) = &counts {
                if !imp.dry_run {
                    state.metrics.import_rows(c);
                }
            }
            let failed = counts.map(|c| c.failed).unwrap_or(0);
            let s = if failed > 0 {
                ImportState::SucceededWithErrors
            } else {
                ImportState::Succeeded
            };
            if !finish(s, None) {
                return lease_lost();
            }
            tracing::info!(import = %id, state = s.as_str(), ms = started.elapsed().as_millis() as u64, "import finished");
        }
        Err(RunError::Reject(r)) => {
            if !finish(ImportState::Rejected, Some((r.code.as_str(), &r.message))) {
                return lease_lost();
            }
            tracing::info!(import = %id, code = r.code.as_str(), "import rejected");
        }
        Err(RunError::Fail(e)) => {
            tracing::error!(import = %id, error = format!("{e:#}"), "import failed");
            let failed = finish(
                ImportState::Failed,
                Some((
                    "internal",
                    "the import could not be processed; the cause is in the gateway's log",
                )),
            );
            if !failed {
                return lease_lost();
            }
        }
    }
    Outcome::Done
}

type UploadReader = RecordReader<BufReader<Box<dyn Read + Send>>>;

/// The upload's records: as the reader gives them, or for a SCIM file
/// turned into the records of the SCIM User mapping.
struct Records<'a> {
    reader: UploadReader,
    scim: Option<ScimRows<'a>>,
}

impl Records<'_> {
    fn next_item(&mut self) -> Result<Option<Item>, RunError> {
        let item = self.reader.next_item().map_err(format_reject)?;
        match (&mut self.scim, item) {
            (Some(scim), Some(Item::Record(Record::Object { row, object }))) => {
                Ok(Some(scim.row(row, object)?))
            }
            (_, item) => Ok(item),
        }
    }
}

/// The `format` of an import from a SCIM BulkRequest or ListResponse.
pub const SCIM_FORMAT: &str = "scim";

/// Everything a pass needs to read and map the upload.
struct Source<'a> {
    state: &'a AppState,
    imp: &'a ImportRow,
    doc: MappingDoc,
    header_map: BTreeMap<String, String>,
    format: Format,
    client: &'a ClientRow,
}

impl Source<'_> {
    fn unsealed(&self) -> Result<UnsealReader<std::fs::File>, RunError> {
        let path = upload_path(&self.state.config, &self.imp.id);
        // Opened with whichever key of the master key ring sealed it: an
        // upload received before a rotation still opens after it.
        self.state
            .master_key
            .open_upload(&path, self.imp.id.as_bytes())
            .map_err(|e| {
                RunError::Fail(anyhow::anyhow!(
                    "the sealed upload {} cannot be opened: {e}",
                    path.display()
                ))
            })
    }

    fn open(&self) -> Result<(Records<'_>, CompiledMapping), RunError> {
        let unsealed = self.unsealed()?;
        let plain = self.decrypt(unsealed)?;
        let limits = Limits {
            max_line_bytes: self.state.config.limits.max_line_bytes,
            ..Limits::default()
        };
        // The label was checked when the upload arrived.
        let declared = self
            .imp
            .options
            .get("encoding")
            .and_then(|e| e.as_str())
            .and_then(muster_intake::text::encoding_for);
        let (text, strict) = muster_intake::text::open(plain, declared).map_err(format_reject)?;
        let trailing = self
            .imp
            .options
            .get("trailing_delimiter")
            .and_then(|t| t.as_bool())
            .unwrap_or(false);
        let mut reader = RecordReader::with_trailing_delimiter(
            BufReader::with_capacity(256 * 1024, text),
            self.format,
            limits,
            trailing,
        )
        .map_err(format_reject)?;
        if strict {
            reader = reader.refuse_invalid_utf8();
        }
        let compiled = match reader.header() {
            Some(h) => {
                let cols: Vec<&str> = h.iter().map(String::as_str).collect();
                self.doc.compile(&cols, &self.header_map)
            }
            None => self.doc.compile_named(&self.header_map),
        }
        .map_err(|e| mapping_reject(e, delimiter_hint(reader.header(), self.format)))?;
        let scim = match self.format {
            Format::Scim => Some(self.scim_rows()?),
            _ => None,
        };
        Ok((Records { reader, scim }, compiled))
    }

    fn scim_rows(&self) -> Result<ScimRows<'_>, RunError> {
        Ok(ScimRows::new(
            self.state.store.as_ref(),
            &self.imp.tenant,
            self.client.scim_key.as_deref(),
            &self.client.write_policy,
        )?)
    }
}

impl Source<'_> {
    /// Puts decryption between the sealed spool and the parser when the
    /// upload is encrypted: plaintext exists only in memory, a buffer at a
    /// time. Each pass decrypts again, so the validation pass has read (and
    /// integrity-checked) the whole file before anything is applied.
    fn decrypt(
        &self,
        unsealed: UnsealReader<std::fs::File>,
    ) -> Result<Box<dyn Read + Send>, RunError> {
        let enc = self
            .imp
            .options
            .get("encryption")
            .and_then(|v| v.as_str())
            .unwrap_or("none");
        let intake = self.state.store.intake_policy_get(&self.client.id)?;
        if enc == "none" {
            if intake.require_encryption {
                return Err(reject(
                    ErrorCode::EncryptionRequired,
                    "this client's uploads must be encrypted",
                ));
            }
            return Ok(Box::new(unsealed));
        }
        let tenant = &self.imp.tenant;
        let (keys, revoked) = crate::base::tenant_keys::decryption_keys(
            self.state.store.as_ref(),
            &self.state.master_key,
            tenant,
        )
        .map_err(RunError::Fail)?;
        let signer = match &intake.require_signed_by {
            Some(id) => {
                let k = self.state.store.key_get(tenant, id)?;
                Some(SignerKey::from_armored(&k.public_key).map_err(|_| {
                    RunError::Fail(anyhow::anyhow!("sender key {id} does not parse"))
                })?)
            }
            None => None,
        };
        let c = &self.state.config.limits;
        let limits = decrypt::Limits {
            max_decompressed_bytes: c.max_decompressed_bytes,
            max_ratio: c.max_decompression_ratio,
            ratio_grace_bytes: c.ratio_grace_bytes,
        };
        match decrypt::decrypt_reader(unsealed, &keys, &limits, signer.as_ref()) {
            Ok(r) => Ok(Box::new(r)),
            Err(e @ DecryptError::NoMatchingKey { .. }) => {
                // age messages do not name their recipients: see whether a
                // revoked key would open it, to say so instead.
                for k in &revoked {
                    let Ok(key) = crate::base::tenant_keys::open_key(&self.state.master_key, k)
                    else {
                        continue;
                    };
                    if decrypt::decrypt_reader(self.unsealed()?, &[key], &limits, None).is_ok() {
                        return Err(revoked_reject(k));
                    }
                }
                Err(decrypt_reject(&e, &revoked))
            }
            Err(e) => Err(decrypt_reject(&e, &revoked)),
        }
    }
}

fn revoked_reject(k: &muster_store::KeyRow) -> RunError {
    reject(
        ErrorCode::KeyRevoked,
        format!("the upload is encrypted to key {}, which is revoked", k.id),
    )
}

/// A decryption refusal as the import's rejection: a stable code and the
/// library's message, which names keys but never content or key material.
fn decrypt_reject(e: &DecryptError, revoked: &[muster_store::KeyRow]) -> RunError {
    let code = match e {
        DecryptError::NoMatchingKey { recipients } => {
            if let Some(k) = revoked.iter().find(|k| {
                k.key_ids
                    .iter()
                    .any(|i| recipients.iter().any(|r| r.eq_ignore_ascii_case(i)))
            }) {
                return revoked_reject(k);
            }
            ErrorCode::NoMatchingKey
        }
        DecryptError::NotEncrypted => ErrorCode::NotEncrypted,
        DecryptError::Integrity(_) => ErrorCode::IntegrityFailure,
        DecryptError::LegacyUnprotected => ErrorCode::LegacyEncryption,
        DecryptError::DecompressionBomb(_) => ErrorCode::DecompressionBomb,
        DecryptError::SignatureMissing { .. } => ErrorCode::SignatureMissing,
        DecryptError::SignatureWrongKey { .. } => ErrorCode::SignatureWrongKey,
        DecryptError::SignatureInvalid(_) => ErrorCode::SignatureInvalid,
        DecryptError::Malformed { .. } => ErrorCode::MalformedEncryption,
        DecryptError::Unsupported(_) => ErrorCode::UnsupportedEncryption,
        DecryptError::InvalidKey(_) | DecryptError::Failed(_) | DecryptError::Io(_) => {
            return RunError::Fail(anyhow::anyhow!("decrypting the upload failed: {e}"))
        }
    };
    reject(code, e.to_string())
}

fn format_reject(e: FormatError) -> RunError {
    if let FormatError::Io(io) = &e {
        if let Some(d) = DecryptError::from_io(io) {
            // Raised mid-stream (integrity, bomb, signature).
            return decrypt_reject(d, &[]);
        }
    }
    match e {
        FormatError::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
            // The sealed upload failed its integrity check: not the client's file.
            RunError::Fail(anyhow::anyhow!(
                "the sealed upload failed its integrity check: {io}"
            ))
        }
        FormatError::Io(io) => RunError::Fail(anyhow::anyhow!("reading the upload failed: {io}")),
        FormatError::Empty => reject(
            ErrorCode::EmptyFile,
            "the file is empty: it has no header row and no records",
        ),
        e @ (FormatError::NotUtf8 { .. } | FormatError::HeaderNotUtf8 { .. }) => {
            reject(ErrorCode::InvalidEncoding, e.to_string())
        }
        e @ FormatError::NotText { .. } => reject(ErrorCode::UnsupportedFileType, e.to_string()),
        other => reject(ErrorCode::InvalidFormat, other.to_string()),
    }
}

fn mapping_reject(e: MappingError, hint: Option<String>) -> RunError {
    match e {
        MappingError::MissingColumns(cols) => reject(
            ErrorCode::MissingColumns,
            format!(
                "the header lacks the column(s) the mapping requires: {}{}",
                cols.iter()
                    .map(|c| format!("'{c}'"))
                    .collect::<Vec<_>>()
                    .join(", "),
                hint.unwrap_or_default()
            ),
        ),
        other => reject(ErrorCode::InvalidMapping, other.to_string()),
    }
}

fn row_error(row: u64, e: RowError) -> RowErrorRecord {
    RowErrorRecord {
        row,
        column: e.column,
        attribute: e.attribute,
        code: e.code.to_string(),
        message: e.message,
    }
}

/// Maps one record to an [`Incoming`] or its row errors.
fn map_record(compiled: &CompiledMapping, rec: &Record) -> (u64, Result<Incoming, Vec<RowError>>) {
    match rec {
        Record::Fields { row, fields } => {
            let f: Vec<&str> = fields.iter().map(String::as_str).collect();
            (*row, compiled.map_row(&f))
        }
        Record::Object { row, object } => (*row, compiled.map_object(object)),
    }
}

fn run_import(state: &AppState, imp: &ImportRow, stop: &AtomicBool) -> Result<Outcome, RunError> {
    let store = state.store.as_ref();
    let client = store.client_get(&imp.client_id)?;
    let doc = if imp.format == SCIM_FORMAT {
        ScimRows::new(
            store,
            &imp.tenant,
            client.scim_key.as_deref(),
            &client.write_policy,
        )?
        .mapping()
        .map_err(|e| RunError::Fail(anyhow::anyhow!("the SCIM User mapping: {e}")))?
    } else {
        let mapping = store.mapping_get(&imp.tenant, &imp.mapping, Some(imp.mapping_version))?;
        MappingDoc::parse(&mapping.document.to_string(), MappingFormat::Json)
            .map_err(|e| RunError::Fail(anyhow::anyhow!("stored mapping does not parse: {e}")))?
    };
    let header_map: BTreeMap<String, String> = imp
        .options
        .get("header_map")
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| RunError::Fail(anyhow::anyhow!("stored header map: {e}")))?
        .unwrap_or_default();
    let delimiter = imp
        .options
        .get("delimiter")
        .and_then(|d| d.as_str())
        .and_then(|d| d.bytes().next())
        .unwrap_or(b',');
    let format = match imp.format.as_str() {
        "jsonl" => Format::JsonLines,
        SCIM_FORMAT => Format::Scim,
        _ => Format::Csv { delimiter },
    };
    let src = Source {
        state,
        imp,
        doc,
        header_map,
        format,
        client: &client,
    };
    if imp.state != ImportState::Applying {
        let t = std::time::Instant::now();
        // Fenced, like every write of the run: an instance that lost the
        // lease must not reset or re-state what the new holder works on.
        let me = &*state.instance;
        held(store.import_reset_claimed(&imp.id, me, state.clock.now())?)?;
        held(store.import_set_state_claimed(
            &imp.id,
            me,
            ImportState::Parsing,
            None,
            state.clock.now(),
        )?)?;
        let v = validate(store, &src, &client, stop, true)?;
        state.metrics.import_validated(t.elapsed());
        held(store.import_set_state_claimed(
            &imp.id,
            me,
            ImportState::Applying,
            None,
            state.clock.now(),
        )?)?;
        tracing::info!(import = %imp.id, ms = t.elapsed().as_millis() as u64, "import validated");
        if v.good == v.unchanged {
            // Nothing would change: record the counts, skip the second read.
            let ctx = write_context(state, imp, &client);
            let cp = Checkpoint {
                import_id: imp.id.clone(),
                row: v.last_row,
                unchanged: v.unchanged,
            };
            store
                .apply_batch_claimed(&ctx, Vec::new(), cp, &state.instance, imp.dry_run)?
                .ok_or(RunError::LeaseLost)?;
            return deactivate(store, state, imp, &client, v.deactivate, stop);
        }
        let a = std::time::Instant::now();
        let done = match apply(store, &src, &client, stop, (&v.same, Some(&v.unseen)))? {
            Outcome::Done => deactivate(store, state, imp, &client, v.deactivate, stop),
            other => Ok(other),
        };
        state.metrics.import_applied(a.elapsed());
        return done;
    }
    if imp.mode == ImportMode::Snapshot {
        // Resuming a snapshot: read the file again for its ids (recording
        // nothing; the size check passed before anything was applied), so
        // the people still to deactivate are known. Those deactivated
        // before the restart are terminated now and drop out by themselves.
        let v = validate(store, &src, &client, stop, false)?;
        return match apply(store, &src, &client, stop, (&v.same, Some(&v.unseen)))? {
            Outcome::Done => deactivate(store, state, imp, &client, v.deactivate, stop),
            other => Ok(other),
        };
    }
    // Resuming after a restart: what validation learnt is gone, and the
    // store's own comparison finds the unchanged rows instead.
    apply(store, &src, &client, stop, (&RowSet::default(), None))
}

/// What the validation pass learnt that the apply pass can use.
#[derive(Debug, Default)]
struct Validated {
    /// Rows known unchanged before applying.
    same: RowSet,
    /// Good rows whose person was not stored (for this import's source):
    /// new people, mostly, whose records are worth preparing.
    unseen: RowSet,
    /// Good rows that would change nothing.
    unchanged: u64,
    /// Good rows in all.
    good: u64,
    last_row: u64,
    /// Snapshot imports: the people of the source to deactivate.
    deactivate: Vec<String>,
}

/// What validation concluded about one row.
enum Checked {
    Errors {
        errs: Vec<RowErrorRecord>,
        /// The digest of the row's external id, when its key cell is valid.
        key: Option<u64>,
    },
    Good {
        key: u64,
        unchanged: bool,
        /// No fingerprint of the import's source is stored for the person.
        unseen: bool,
        /// The manager the row names, if any, with its digest (checked
        /// once the whole file has been seen: the manager may come later).
        manager: Option<(u64, String)>,
    },
}

const CHUNK_ROWS: usize = 1024;

/// Maps one chunk of rows, checks the write policy, and looks up which
/// good rows would change nothing (their fingerprint is already stored).
fn check_chunk(
    store: &dyn Store,
    src: &Source<'_>,
    client: &ClientRow,
    compiled: &CompiledMapping,
    fp_key: &muster_core::person::FingerprintKey,
    digester: &Digester,
    items: Vec<Item>,
) -> Result<Vec<(u64, Checked)>, RunError> {
    let mut out = Vec::with_capacity(items.len());
    let mut good: Vec<(usize, Incoming)> = Vec::new();
    for item in items {
        match item {
            Item::Problem(p) => out.push((
                p.row,
                Checked::Errors {
                    errs: vec![RowErrorRecord {
                        row: p.row,
                        column: p.column,
                        attribute: None,
                        code: p.code.to_string(),
                        message: p.message,
                    }],
                    key: None,
                },
            )),
            Item::Record(rec) => {
                let (row, mapped) = map_record(compiled, &rec);
                match mapped {
                    Err(es) => out.push((
                        row,
                        Checked::Errors {
                            errs: es.into_iter().map(|e| row_error(row, e)).collect(),
                            key: record_key(compiled, &rec).map(|k| digester.digest(k.as_str())),
                        },
                    )),
                    Ok(inc) => {
                        let column_of = |a: &str| compiled.column_of(a);
                        let errs: Vec<RowErrorRecord> = policy_errors(
                            row,
                            &client.client_id,
                            &client.write_policy,
                            &inc,
                            &column_of,
                        )
                        .into_iter()
                        .map(|e| RowErrorRecord {
                            row: e.row,
                            column: e.column,
                            attribute: e.attribute,
                            code: e.code,
                            message: e.message,
                        })
                        .collect();
                        let mut errs = errs;
                        let manager = manager_of(&inc);
                        if manager.as_deref() == Some(inc.external_id.as_str()) {
                            errs.push(RowErrorRecord {
                                row,
                                column: compiled.column_of(MANAGER),
                                attribute: Some(MANAGER.into()),
                                code: ErrorCode::SelfManager.as_str().into(),
                                message: "a person cannot be their own manager".into(),
                            });
                        }
                        if errs.is_empty() {
                            good.push((out.len(), inc));
                            out.push((
                                row,
                                Checked::Good {
                                    key: 0,
                                    unchanged: false,
                                    unseen: false,
                                    manager: manager.map(|m| (digester.digest(&m), m)),
                                },
                            ));
                        } else {
                            let key = Some(digester.digest(inc.external_id.as_str()));
                            out.push((row, Checked::Errors { errs, key }));
                        }
                    }
                }
            }
        }
    }
    let ids: Vec<&str> = good
        .iter()
        .map(|(_, inc)| inc.external_id.as_str())
        .collect();
    let source = source_system(src.imp);
    let stored = store.person_fingerprints_of_source(&src.imp.tenant, &ids, &source)?;
    for ((slot, inc), stored) in good.iter().zip(stored) {
        if let Checked::Good {
            key,
            unchanged,
            unseen,
            ..
        } = &mut out[*slot].1
        {
            *key = digester.digest(inc.external_id.as_str());
            *unseen = stored.is_none();
            // (no fingerprint to compute for a person not stored)
            *unchanged = stored.is_some_and(|s| s == inc.fingerprint_with(fp_key));
        }
    }
    Ok(out)
}

use muster_core::schema::MANAGER;

/// The external id of a record that failed to map, when its key is valid.
fn record_key(compiled: &CompiledMapping, rec: &Record) -> Option<muster_core::ExternalId> {
    match rec {
        Record::Fields { fields, .. } => {
            let f: Vec<&str> = fields.iter().map(String::as_str).collect();
            compiled.row_key(&f)
        }
        Record::Object { object, .. } => compiled.object_key(object),
    }
}

/// The import source an import speaks for: its `source` parameter, or by
/// default the importing client's id.
pub fn source_system(imp: &ImportRow) -> String {
    imp.options
        .get("source")
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| imp.client_id.clone())
}

/// The import's warnings (`ImportWarning`s, as JSON): the optional
/// attributes whose columns the header lacks.
fn warnings(
    compiled: &CompiledMapping,
    header: Option<&[String]>,
    format: Format,
) -> serde_json::Value {
    let hint = delimiter_hint(header, format).unwrap_or_default();
    compiled
        .absent_columns()
        .iter()
        .map(|(column, attribute)| {
            serde_json::json!({
                "code": ErrorCode::MissingOptionalColumn.as_str(),
                "column": column,
                "attribute": attribute,
                "message": format!(
                    "the file has no column '{column}', so '{attribute}' was not updated for anyone in it{hint}"
                ),
            })
        })
        .collect()
}

/// For a CSV header that reads as one single column: which delimiter the
/// file seems to use, as a sentence to append to a message.
fn delimiter_hint(header: Option<&[String]>, format: Format) -> Option<String> {
    let (Some([only]), Format::Csv { delimiter }) = (header, format) else {
        return None;
    };
    let seen = [(b';', "';'"), (b'\t', "tab"), (b'|', "'|'"), (b',', "','")]
        .into_iter()
        .filter(|(d, _)| *d != delimiter)
        .max_by_key(|(d, _)| only.bytes().filter(|b| b == d).count())
        .filter(|(d, _)| only.bytes().any(|b| b == *d))?;
    Some(format!(
        "; the header reads as one single column: the file's delimiter looks like {} (pass delimiter={})",
        seen.1,
        if seen.0 == b'\t' { "tab".to_owned() } else { (seen.0 as char).to_string() }
    ))
}

/// The validation pass. Reading stays on this thread; mapping, policy
/// checks and the unchanged look-up run on two threads, chunk by chunk;
/// results are taken back in row order and written to the import's
/// [`RowIndex`]. After the pass the index settles what needed the whole
/// file (duplicates, managers, the chain under a failed manager), and the
/// row errors are recorded in row order. Returns the rows that would change
/// nothing.
fn validate(
    store: &dyn Store,
    src: &Source<'_>,
    client: &ClientRow,
    stop: &AtomicBool,
    record: bool,
) -> Result<Validated, RunError> {
    let (mut reader, compiled) = src.open()?;
    if record {
        let warnings = warnings(&compiled, reader.reader.header(), src.format);
        held(store.import_set_warnings_claimed(&src.imp.id, &src.state.instance, &warnings)?)?;
    }
    let fp_key = Incoming::fingerprint_key(&client.principal_name(), &client.write_policy);
    // Keyed with a random key of this run: digests on disk link to no id.
    let digester = Digester::new();
    let upload = upload_path(&src.state.config, &src.imp.id);
    let mut bytes = std::fs::metadata(&upload).map_or(0, |m| m.len());
    let encryption = src.imp.options.get("encryption").and_then(|v| v.as_str());
    if encryption.unwrap_or("none") != "none" {
        // Encrypted uploads are often compressed (OpenPGP does by
        // default): the file may be many times the upload.
        bytes = bytes.saturating_mul(16);
    }
    let parts = row_index::partitions_for(bytes);
    // This run's own directory, after removing any other of the import's
    // (a crash's, or a run's that lost the lease).
    let uploads = src.state.config.uploads_dir();
    row_index::clear_import(&uploads, &src.imp.id)?;
    let run = format!("{:016x}", rand::random::<u64>());
    let dir = row_index::dir_for(&uploads, &src.imp.id, &run);
    let mut index = RowIndex::create(dir, parts, record, |p| {
        crate::base::data_dir::create_private_file(p)
    })?;
    let mut unchanged = RowSet::default();
    let mut unseen = RowSet::default();
    let (mut n_same, mut n_good, mut last_row) = (0u64, 0u64, 0u64);
    let (mut total, mut failed) = (0u64, 0u64);
    let snapshot = src.imp.mode == ImportMode::Snapshot;
    let (work_tx, work_rx) = std::sync::mpsc::sync_channel::<(u64, Vec<Item>)>(4);
    let work_rx = std::sync::Mutex::new(work_rx);
    let (done_tx, done_rx) =
        std::sync::mpsc::channel::<(u64, Result<Vec<(u64, Checked)>, RunError>)>();
    let mut take = |checked: Vec<(u64, Checked)>| -> Result<(), RunError> {
        for (row, c) in checked {
            total += 1;
            last_row = last_row.max(row);
            match c {
                Checked::Errors { errs, key } => {
                    // A failed row still speaks for its person: a snapshot
                    // does not deactivate them.
                    if let (true, Some(k)) = (snapshot, key) {
                        index.add_failed_key(k)?;
                    }
                    if !errs.is_empty() {
                        failed += 1;
                    }
                    for e in &errs {
                        index.add_error(e)?;
                    }
                }
                // Good so far: a duplicate, or a manager that is not to be
                // had, fails it after the pass.
                Checked::Good {
                    key,
                    unchanged: same,
                    unseen: new,
                    manager,
                } => {
                    index.add_key(key, row)?;
                    if new {
                        unseen.insert(row);
                    }
                    if let Some((mk, m)) = manager {
                        index.add_manager(mk, key, row, &m)?;
                    }
                    n_good += 1;
                    if same {
                        unchanged.insert(row);
                        n_same += 1;
                    }
                }
            }
        }
        Ok(())
    };
    std::thread::scope(|scope| -> Result<(), RunError> {
        for _ in 0..2 {
            let (work_rx, done_tx) = (&work_rx, done_tx.clone());
            let (compiled, fp_key, digester) = (&compiled, &fp_key, &digester);
            scope.spawn(move || loop {
                let next = work_rx.lock().map(|rx| rx.recv());
                let Ok(Ok((seq, items))) = next else { return };
                let r = check_chunk(store, src, client, compiled, fp_key, digester, items);
                if done_tx.send((seq, r)).is_err() {
                    return;
                }
            });
        }
        drop(done_tx);
        // Chunks come back in any order; they are taken in sequence.
        let mut waiting: std::collections::BTreeMap<u64, Vec<(u64, Checked)>> = Default::default();
        let mut next_seq = 0u64;
        let mut drain = |block: bool,
                         waiting: &mut std::collections::BTreeMap<u64, Vec<(u64, Checked)>>,
                         next_seq: &mut u64|
         -> Result<(), RunError> {
            loop {
                let got = if block {
                    done_rx.recv().ok()
                } else {
                    done_rx.try_recv().ok()
                };
                let Some((seq, r)) = got else { return Ok(()) };
                waiting.insert(seq, r?);
                while let Some(c) = waiting.remove(next_seq) {
                    take(c)?;
                    *next_seq += 1;
                }
            }
        };
        let mut seq = 0u64;
        let mut chunk = Vec::with_capacity(CHUNK_ROWS);
        let read = loop {
            match reader.next_item() {
                Ok(Some(i)) => {
                    chunk.push(i);
                    if chunk.len() == CHUNK_ROWS {
                        // Validation starts over when resumed, so it may
                        // stop at any chunk.
                        if stop.load(Ordering::SeqCst) {
                            break Err(RunError::Halted);
                        }
                        let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_ROWS));
                        if work_tx.send((seq, full)).is_err() {
                            break Ok(());
                        }
                        seq += 1;
                        drain(false, &mut waiting, &mut next_seq)?;
                    }
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        if read.is_ok() && !chunk.is_empty() && work_tx.send((seq, chunk)).is_ok() {
            seq += 1;
        }
        drop(work_tx);
        read?;
        drain(true, &mut waiting, &mut next_seq)?;
        if next_seq != seq {
            return Err(RunError::Fail(anyhow::anyhow!(
                "a validation thread stopped early"
            )));
        }
        Ok(())
    })?;
    drop(reader);
    // What needed the whole file: duplicates; managers named before their
    // own row, or not in the file at all, which must then be stored; and
    // the rows under a manager whose row failed, down the chain.
    let exists = |ids: &[&str]| -> Result<Vec<bool>, RunError> {
        Ok(store.person_exists(&src.imp.tenant, ids)?)
    };
    let mut fail_late = |row: u64, _: Late| {
        failed += 1;
        n_good -= 1;
        if unchanged.remove(row) {
            n_same -= 1;
        }
    };
    let settled = index
        .finish()?
        .settle(last_row, snapshot, exists, &mut fail_late)?;
    if record {
        // The late errors go in among the pass's, so the list is in row order.
        let key_column = compiled.key_column();
        let manager_column = compiled.column_of(MANAGER);
        let late = |row: u64, what: Late| match what {
            Late::Duplicate { first } => RowErrorRecord {
                row,
                column: key_column.clone(),
                attribute: None,
                code: ErrorCode::DuplicateKey.as_str().into(),
                message: format!(
                    "the same external id appears on row {first}; only the first is applied"
                ),
            },
            Late::UnknownManager => RowErrorRecord {
                row,
                column: manager_column.clone(),
                attribute: Some(MANAGER.into()),
                code: ErrorCode::UnknownManager.as_str().into(),
                message: "the manager is neither in this file nor already stored".into(),
            },
            Late::ManagerFailed => RowErrorRecord {
                row,
                column: manager_column.clone(),
                attribute: Some(MANAGER.into()),
                code: ErrorCode::UnknownManager.as_str().into(),
                message: "the manager's own row has errors, so the manager will not be stored"
                    .into(),
            },
        };
        let me = &*src.state.instance;
        settled.errors(&late, &mut |errs| -> Result<(), RunError> {
            held(store.import_add_errors_claimed(&src.imp.id, me, errs)?)
        })?;
        held(store.import_set_total_claimed(&src.imp.id, me, total, failed)?)?;
    }
    // The index's files go now; a snapshot keeps the sorted key digests.
    let file_keys = settled.into_file_keys();
    let max_rate = compiled.max_error_rate();
    if total > 0 && failed as f64 / total as f64 > max_rate {
        return Err(reject(
            ErrorCode::TooManyRowErrors,
            format!(
                "{failed} of {total} rows have errors, more than the mapping allows ({:.1}%); nothing was applied",
                max_rate * 100.0
            ),
        ));
    }
    let deactivate = if snapshot {
        // Every key in the file: good rows, and rows with errors (a row
        // error is not a departure).
        let file_has = |id: &str| file_keys.binary_search(&digester.digest(id)).is_ok();
        snapshot_plan(store, src, &file_has, record)?
    } else {
        Vec::new()
    };
    Ok(Validated {
        same: unchanged,
        unseen,
        unchanged: n_same,
        good: n_good,
        last_row,
        deactivate,
    })
}

/// The people of the import's source that a snapshot deactivates: those
/// not terminated and not in the file (not even on a row with errors).
/// With `check`, refuses the import when they are more than the allowed
/// share of the source's active people.
fn snapshot_plan(
    store: &dyn Store,
    src: &Source<'_>,
    file_has: &dyn Fn(&str) -> bool,
    check: bool,
) -> Result<Vec<String>, RunError> {
    let source = source_system(src.imp);
    let (mut active, mut missing) = (0u64, Vec::new());
    let mut after: Option<String> = None;
    loop {
        let page = store.person_source_active(&src.imp.tenant, &source, after.as_deref(), 5000)?;
        let Some(last) = page.last().cloned() else {
            break;
        };
        active += page.len() as u64;
        missing.extend(page.into_iter().filter(|id| !file_has(id)));
        after = Some(last);
    }
    if !check || missing.is_empty() {
        return Ok(missing);
    }
    let opts = &src.imp.options;
    let allowed = opts
        .get("allow_mass_deactivation")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let limit = opts
        .get("max_deactivate_percent")
        .and_then(|v| v.as_f64())
        .unwrap_or(src.state.config.import.snapshot_max_deactivate_percent);
    let share = missing.len() as f64 * 100.0 / active.max(1) as f64;
    if !allowed && share > limit {
        return Err(reject(
            ErrorCode::MassDeactivation,
            format!(
                "snapshot would deactivate {} of {active} people of source {source} ({}%), \
                 over the {}% limit; nothing was applied (allow_mass_deactivation=true permits it)",
                missing.len(),
                percent(share),
                percent(limit),
            ),
        ));
    }
    Ok(missing)
}

/// A percentage as people read it: `25`, `12.5`.
fn percent(p: f64) -> String {
    let r = (p * 10.0).round() / 10.0;
    if r.fract() == 0.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.1}")
    }
}

/// Deactivates the people a snapshot left out, in batches through the one
/// write path: each with its audit entry and `person.deactivated` event,
/// counted with the import (the checkpoint stays on the last row).
fn deactivate(
    store: &dyn Store,
    state: &AppState,
    imp: &ImportRow,
    client: &ClientRow,
    ids: Vec<String>,
    stop: &AtomicBool,
) -> Result<Outcome, RunError> {
    if ids.is_empty() {
        return Ok(Outcome::Done);
    }
    let row = store.import_get(&imp.tenant, &imp.id)?.checkpoint_row;
    let size = state.config.import.batch_size;
    let mut ids = ids.into_iter().peekable();
    while ids.peek().is_some() {
        if stop.load(Ordering::SeqCst) {
            return Ok(Outcome::Interrupted);
        }
        let mut items = Vec::with_capacity(size);
        for id in ids.by_ref().take(size) {
            let Ok(ext) = muster_core::ExternalId::parse(&id) else {
                continue;
            };
            let mut inc = Incoming::new(ext);
            inc.attrs.insert(
                "employment_status".into(),
                Some(muster_core::AttrValue::string("terminated")),
            );
            items.push(BatchItem::new(0, inc));
        }
        let ctx = write_context(state, imp, client);
        store
            .apply_batch_claimed(
                &ctx,
                items,
                Checkpoint {
                    import_id: imp.id.clone(),
                    row,
                    unchanged: 0,
                },
                &state.instance,
                imp.dry_run,
            )?
            .ok_or(RunError::LeaseLost)?;
        state.changes_committed.notify_waiters();
    }
    Ok(Outcome::Done)
}

fn apply(
    store: &dyn Store,
    src: &Source<'_>,
    client: &ClientRow,
    stop: &AtomicBool,
    (same, unseen): (&RowSet, Option<&RowSet>),
) -> Result<Outcome, RunError> {
    let imp = store.import_get(&src.imp.tenant, &src.imp.id)?;
    let resume = imp.checkpoint_row;
    // A bit per row, however many of them have errors.
    let bad: RowSet = store.import_error_rows(&imp.id)?.into_iter().collect();
    let (mut reader, compiled) = src.open()?;
    let ctx = write_context(src.state, &imp, client);
    let size = src.state.config.import.batch_size;
    // Mapping (this thread) and writing (the store's writer, fed by the
    // applier thread) overlap: while one batch commits, the next is mapped.
    // The channel holds one batch, so memory stays bounded. Written
    // batches come back to this thread to be freed (see `Applied`).
    let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(1);
    let (spent_tx, spent) = std::sync::mpsc::sync_channel::<Vec<BatchItem>>(1);
    std::thread::scope(|scope| {
        let ctx = &ctx;
        let imp = &imp;
        let applier = scope.spawn(move || -> Result<(), RunError> {
            for Batch {
                items,
                last_row,
                unchanged,
            } in rx
            {
                let mut ctx = ctx.clone();
                ctx.now = src.state.clock.now();
                // Fenced: committed only while this instance holds the
                // lease, so a stalled instance cannot apply rows the one
                // that took the import over is applying too.
                let applied = store
                    .apply_batch_claimed(
                        &ctx,
                        items,
                        Checkpoint {
                            import_id: imp.id.clone(),
                            row: last_row,
                            unchanged,
                        },
                        &src.state.instance,
                        imp.dry_run,
                    )?
                    .ok_or(RunError::LeaseLost)?;
                src.state.changes_committed.notify_waiters();
                // Never waits: when the producer is behind on freeing (or
                // done), this batch is freed here.
                let _ = spent_tx.try_send(applied.items);
            }
            Ok(())
        });
        let produced = produce(
            &mut reader,
            &compiled,
            (&bad, same, unseen),
            (resume, size),
            stop,
            ctx,
            (&tx, &spent),
        );
        drop(tx);
        let applied = applier
            .join()
            .map_err(|_| RunError::Fail(anyhow::anyhow!("the applier thread panicked")))?;
        // A failed write explains a stopped producer better than its own error.
        applied?;
        produced
    })
}

/// Who an import's writes are by, and under which policy.
fn write_context(state: &AppState, imp: &ImportRow, client: &ClientRow) -> WriteContext {
    WriteContext {
        tenant: imp.tenant.clone(),
        principal: client.principal_name(),
        on_behalf_of: imp.on_behalf_of.clone(),
        source: format!("import:{}", imp.id),
        policy: client.write_policy.clone(),
        now: state.clock.now(),
        source_system: Some(source_system(imp)),
    }
}

/// A batch for the applier: the records, the last source row it covers,
/// and how many rows in its stretch were skipped as unchanged.
struct Batch {
    items: Vec<BatchItem>,
    last_row: u64,
    unchanged: u64,
}

/// Reads, maps and batches the rows after `resume` that have no errors and
/// were not found unchanged; hands each batch to `tx`.
fn produce(
    reader: &mut Records<'_>,
    compiled: &CompiledMapping,
    (bad, same, unseen): (&RowSet, &RowSet, Option<&RowSet>),
    (resume, size): (u64, usize),
    stop: &AtomicBool,
    ctx: &WriteContext,
    (tx, spent): (
        &std::sync::mpsc::SyncSender<Batch>,
        &std::sync::mpsc::Receiver<Vec<BatchItem>>,
    ),
) -> Result<Outcome, RunError> {
    // Creating a person is most of the writer's work in an all-new import;
    // this thread does its share (fingerprint, JSON, audit detail) while
    // the writer commits the previous batch.
    let key = Incoming::fingerprint_key(&ctx.principal, &ctx.policy);
    let today = muster_core::person::today(ctx.now);
    let mut batch: Vec<BatchItem> = Vec::with_capacity(size);
    let mut last_row = resume;
    let mut rows_in_batch = 0u64;
    let mut unchanged = 0u64;
    // The applier has gone: it failed, and says why when joined.
    let gone = || RunError::Fail(anyhow::anyhow!("the applier stopped"));
    loop {
        let item = match reader.next_item() {
            Ok(Some(i)) => i,
            Ok(None) => break,
            Err(e) => return Err(e),
        };
        let Item::Record(rec) = item else { continue };
        let row = rec.row();
        if row <= resume {
            continue;
        }
        last_row = row;
        rows_in_batch += 1;
        if bad.contains(row) {
            continue;
        }
        if same.contains(row) {
            unchanged += 1;
            // A long unchanged stretch still moves the checkpoint. The
            // records gathered so far go with it: a checkpoint past rows
            // whose changes are not in its batch would, after a crash,
            // resume beyond them and lose them.
            if unchanged >= size as u64 * 4 {
                let items = std::mem::replace(&mut batch, Vec::with_capacity(size));
                tx.send(Batch {
                    items,
                    last_row,
                    unchanged,
                })
                .map_err(|_| gone())?;
                unchanged = 0;
                rows_in_batch = 0;
            }
            continue;
        }
        match map_record(compiled, &rec).1 {
            // Prepared only where validation found no one stored (or, when
            // resuming, knows nothing): a backend may take a prepared
            // record for a creation without looking first.
            Ok(incoming) if unseen.is_none_or(|u| u.contains(row)) => batch.push(
                BatchItem::prepared_on(row, incoming, &key, &ctx.policy, &today),
            ),
            Ok(incoming) => batch.push(BatchItem::new(row, incoming)),
            // Validation saw this row as good; a different answer now means
            // the upload changed under us.
            Err(_) => {
                return Err(RunError::Fail(anyhow::anyhow!(
                    "row {row} mapped differently on the second pass"
                )))
            }
        }
        if batch.len() >= size {
            // Frees what was made here and has been written since.
            spent.try_iter().for_each(drop);
            let items = std::mem::replace(&mut batch, Vec::with_capacity(size));
            tx.send(Batch {
                items,
                last_row,
                unchanged,
            })
            .map_err(|_| gone())?;
            rows_in_batch = 0;
            unchanged = 0;
            if stop.load(Ordering::SeqCst) {
                return Ok(Outcome::Interrupted);
            }
        }
    }
    if !batch.is_empty() || rows_in_batch > 0 {
        tx.send(Batch {
            items: batch,
            last_row,
            unchanged,
        })
        .map_err(|_| gone())?;
    }
    Ok(Outcome::Done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use muster_core::policy::WritePolicy;
    use muster_core::TenantId;

    const MAPPING: &str = r#"{"key": "id", "attributes": {"given_name": {"column": "name"}}}"#;

    /// The batches `produce` hands the applier for `rows` rows, of which
    /// those in `same` were found unchanged by validation.
    fn batches(rows: u64, same: &RowSet, size: usize) -> Vec<Batch> {
        let mut csv = String::from("id,name\n");
        for i in 1..=rows {
            csv.push_str(&format!("E{i},N{i}\n"));
        }
        let input: Box<dyn Read + Send> = Box::new(std::io::Cursor::new(csv.into_bytes()));
        let mut reader = Records {
            reader: RecordReader::new(
                BufReader::new(input),
                Format::Csv { delimiter: b',' },
                Limits::default(),
            )
            .unwrap(),
            scim: None,
        };
        let doc = MappingDoc::parse(MAPPING, MappingFormat::Json).unwrap();
        let compiled = doc.compile(&["id", "name"], &BTreeMap::new()).unwrap();
        let ctx = WriteContext {
            tenant: TenantId::default_tenant(),
            principal: "client:c".into(),
            on_behalf_of: None,
            source: "import:i".into(),
            policy: WritePolicy::allow_all(),
            now: chrono::Utc::now(),
            source_system: None,
        };
        let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(1024);
        let (_, spent) = std::sync::mpsc::sync_channel::<Vec<BatchItem>>(1);
        let outcome = produce(
            &mut reader,
            &compiled,
            (&RowSet::default(), same, None),
            (0, size),
            &AtomicBool::new(false),
            &ctx,
            (&tx, &spent),
        );
        assert!(matches!(outcome, Ok(Outcome::Done)));
        drop(tx);
        rx.into_iter().collect()
    }

    #[test]
    fn a_checkpoint_never_passes_a_row_whose_change_is_not_in_its_batch() {
        // Mostly unchanged rows with a few changes among them: the long
        // unchanged stretches move the checkpoint while changed records
        // are still gathering. A crash after such a checkpoint resumes
        // after it, so the records must have gone with it.
        let (rows, size) = (2000u64, 10usize);
        let mut same = RowSet::default();
        let mut changed = Vec::new();
        for row in 2..=rows + 1 {
            if row % 7 == 0 {
                changed.push(row);
            } else {
                same.insert(row);
            }
        }
        let got = batches(rows, &same, size);
        assert!(got.len() > 2);
        let mut previous = 0u64;
        let mut applied = Vec::new();
        let mut unchanged = 0u64;
        for b in &got {
            for item in &b.items {
                assert!(
                    item.row > previous && item.row <= b.last_row,
                    "row {} travels with a batch whose stretch is {previous}..={}",
                    item.row,
                    b.last_row
                );
                applied.push(item.row);
            }
            unchanged += b.unchanged;
            previous = b.last_row;
        }
        assert_eq!(applied, changed, "every changed row once, in order");
        assert_eq!(unchanged, rows - changed.len() as u64);
        assert_eq!(previous, rows + 1, "the last checkpoint is the last row");
    }

    /// A gateway on a fresh data directory whose own worker is off, so the
    /// test decides who works on what.
    async fn gateway(dir: &std::path::Path) -> crate::app::Running {
        let env = [
            ("MUSTER_DATA_DIR", dir.display().to_string()),
            ("MUSTER_IMPORT__WORKER", "false".into()),
        ]
        .map(|(k, v)| (k.to_owned(), v));
        let config = crate::base::config::Config::load_from(None, env).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let clock = Arc::new(muster_core::clock::SystemClock);
        crate::app::spawn(config, listener, clock).await.unwrap()
    }

    /// Uploads `csv` through the API (mapping `m`: key `id`, a required
    /// `name`) and answers the import's id.
    async fn upload(running: &crate::app::Running, dir: &std::path::Path, csv: &str) -> String {
        let base = format!("http://{}", running.addr);
        let admin = std::fs::read_to_string(dir.join("initial-admin-token")).unwrap();
        let http = reqwest::Client::new();
        let mapping = "key = \"id\"\n[attributes.given_name]\ncolumn = \"name\"\nrequired = true\n";
        let r = http
            .put(format!("{base}/api/v1/mappings/m"))
            .bearer_auth(admin.trim())
            .header("content-type", "application/toml")
            .body(mapping)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
        let r = http
            .post(format!("{base}/api/v1/clients"))
            .bearer_auth(admin.trim())
            .json(&serde_json::json!({
                "role": "syncer",
                "write_policy": {"attributes": ["*"], "roles": ["*"]}
            }))
            .send()
            .await
            .unwrap();
        let v: serde_json::Value = r.json().await.unwrap();
        let (id, secret) = (
            v["client"]["client_id"].as_str().unwrap(),
            v["client_secret"].as_str().unwrap(),
        );
        let v: serde_json::Value = http
            .post(format!("{base}/oauth2/token"))
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = v["access_token"].as_str().unwrap();
        let r = http
            .post(format!("{base}/api/v1/imports?mapping=m"))
            .bearer_auth(token)
            .header("content-type", "text/csv")
            .body(csv.to_owned())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let v: serde_json::Value = r.json().await.unwrap();
        v["id"].as_str().unwrap().to_owned()
    }

    /// An instance running an import whose lease another instance holds
    /// (it stalled past its lease and was taken over) writes nothing: no
    /// reset, no state, no row errors, no rejection, and the upload stays
    /// for the holder. Every row of the file is bad, so a run that did
    /// write would reject the import and delete the upload.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_run_without_the_lease_records_nothing_and_keeps_the_upload() {
        let dir = tempfile::tempdir().unwrap();
        let running = gateway(dir.path()).await;
        let id = upload(&running, dir.path(), "id,name\nE1,\nE2,\nE3,\n").await;
        let state = running.state.clone();
        let tenant = TenantId::default_tenant();
        let lease = chrono::Duration::seconds(600);
        let imp = state
            .store
            .import_claim("another-instance", lease, state.clock.now())
            .unwrap()
            .unwrap();
        assert_eq!(imp.id, id);
        let before = state.store.import_get(&tenant, &id).unwrap();
        let st = state.clone();
        let outcome =
            tokio::task::spawn_blocking(move || process(&st, imp, &AtomicBool::new(false), lease))
                .await
                .unwrap();
        assert!(matches!(outcome, Outcome::LeaseLost));
        let after = state.store.import_get(&tenant, &id).unwrap();
        assert_eq!(after.state, ImportState::Received);
        assert_eq!(after.error_code, None);
        assert_eq!(after.counts, before.counts);
        assert_eq!(after.updated_at, before.updated_at);
        assert!(state.store.import_errors(&id, 0, 100).unwrap().is_empty());
        assert!(upload_path(&state.config, &id).exists());
        assert!(
            state
                .store
                .import_renew(&id, "another-instance", lease, state.clock.now())
                .unwrap(),
            "the holder keeps its lease"
        );
        running.stop().await.unwrap();
    }
}
