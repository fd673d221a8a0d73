//! The storage contract: the [`Store`] trait every backend implements, the
//! rows it passes, and [`StoreError`]. The server is written against this
//! trait only; `contract` holds the behaviour suite every backend must pass.
#![forbid(unsafe_code)]

pub mod contract;
pub mod contract_atomic;
pub mod contract_crash;
pub mod contract_fairness;
pub mod contract_fanout;
pub mod contract_rotate;
pub mod contract_scim;
pub mod contract_semantics;
pub mod shared;
pub mod transfer;

pub use muster_proto::{ImportMode, ImportState, SubscriptionKind, SubscriptionState};

/// The states of an import still under way ([`ImportState::PENDING`]) as an
/// SQL list, `('received', ...)`, for both backends' queries: a literal, so
/// it can stand inside `concat!`. A test holds it to `ImportState::PENDING`.
#[macro_export]
macro_rules! pending_states_sql {
    () => {
        "('received', 'decrypting', 'parsing', 'applying')"
    };
}
use chrono::{DateTime, Utc};
use muster_core::audit::AuditEntry;
use muster_core::person::{ChangeKind, FingerprintKey, Incoming, PersonState};
use muster_core::policy::{IntakePolicy, ReadPolicy, WritePolicy};
use muster_core::secret::SecretDigest;
use muster_core::{ExternalId, TenantId};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} not found")]
    NotFound { what: &'static str },
    #[error("conflict: {0}")]
    Conflict(String),
    /// The backend failed; what it says is for the log, never for a client.
    #[error(transparent)]
    Backend(BackendError),
}

impl StoreError {
    /// A backend failure that Muster itself detected (a stored value that
    /// does not decode, a thread that stopped).
    pub fn backend(what: impl Into<String>) -> Self {
        StoreError::Backend(BackendError {
            what: what.into(),
            source: None,
        })
    }

    /// A backend failure with the driver's or the system's error as its
    /// cause, kept as the error's `source()` so that a log shows the whole
    /// chain. The cause must not carry row values: the PostgreSQL store
    /// passes a redacted copy of the driver error (docs/security.md).
    pub fn caused(
        what: impl Into<String>,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        StoreError::Backend(BackendError {
            what: what.into(),
            source: Some(Box::new(cause)),
        })
    }
}

/// What a backend failure was doing, and why it failed.
#[derive(Debug)]
pub struct BackendError {
    what: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "storage backend error: {}", self.what)
    }
}

impl std::error::Error for BackendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRow {
    pub id: TenantId,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// A tenant to create, with its first administrator and their first
/// admin token ([`Tenants::tenant_create`]).
#[derive(Debug, Clone)]
pub struct NewTenant {
    pub id: TenantId,
    pub name: String,
    pub admin: NewClient,
    pub token: NewAdminToken,
}

/// What creating a tenant made.
#[derive(Debug, Clone)]
pub struct TenantCreated {
    pub tenant: TenantRow,
    pub admin: ClientRow,
    pub token: AdminTokenRow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    Admin,
    Client,
}

/// An admin user or integration client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRow {
    /// Internal id, stable across renames.
    pub id: String,
    pub tenant: TenantId,
    pub kind: PrincipalKind,
    /// Public id (`client_id` for clients, the user name for admins).
    pub client_id: String,
    pub name: String,
    pub role: String,
    pub token_policy: String,
    pub token_ttl_seconds: u64,
    pub write_policy: WritePolicy,
    /// What it may read of people (all, unless narrowed).
    pub read_policy: ReadPolicy,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    pub secrets: Vec<SecretRow>,
    /// The SCIM attribute whose value is the external id of the people
    /// this client provisions over SCIM (`None`: the default, `userName`).
    pub scim_key: Option<String>,
}

impl ClientRow {
    /// How this principal is named in audit entries and imports.
    pub fn principal_name(&self) -> String {
        match self.kind {
            PrincipalKind::Admin => format!("admin:{}", self.client_id),
            PrincipalKind::Client => format!("client:{}", self.client_id),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRow {
    pub digest: SecretDigest,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct NewClient {
    pub tenant: TenantId,
    pub kind: PrincipalKind,
    pub client_id: String,
    pub name: String,
    pub role: String,
    pub token_policy: String,
    pub token_ttl_seconds: u64,
    pub write_policy: WritePolicy,
    pub read_policy: ReadPolicy,
    /// The first secret's digest (clients), if any.
    pub secret: Option<SecretDigest>,
}

#[derive(Debug, Clone)]
pub struct NewToken {
    pub digest: SecretDigest,
    pub principal_id: String,
    /// Space-separated permissions the token carries.
    pub scope: String,
    pub one_time: bool,
    pub created_at: DateTime<Utc>,
    /// `None`: never expires (admin API tokens).
    pub expires_at: Option<DateTime<Utc>>,
}

/// Why a bearer token was refused (for the 401's reason; no secrets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRefusal {
    Unknown,
    Expired,
    Consumed,
    Revoked,
    ClientDisabled,
}

impl TokenRefusal {
    pub fn reason(self) -> &'static str {
        match self {
            TokenRefusal::Unknown => "the token is not known",
            TokenRefusal::Expired => "the token has expired",
            TokenRefusal::Consumed => "the one-time token was already used",
            TokenRefusal::Revoked => "the token was revoked",
            TokenRefusal::ClientDisabled => "the client is disabled",
        }
    }
}

impl TokenRefusal {
    /// The refusal as the holder of a token of a `kind` principal is told
    /// it. An admin API token that expired or was revoked is answered as
    /// an unknown one: whoever holds a stolen or left-behind admin token
    /// learns nothing about its life. Integration clients are told
    /// `Expired`, which their SDKs take as the cue to fetch a new token.
    pub fn as_told_to(self, kind: PrincipalKind) -> TokenRefusal {
        match (kind, self) {
            (PrincipalKind::Admin, TokenRefusal::Expired | TokenRefusal::Revoked) => {
                TokenRefusal::Unknown
            }
            (_, r) => r,
        }
    }
}

/// A new admin API token: its digest (never the token), a public id to
/// list and revoke it by, and a name its owner chose.
#[derive(Debug, Clone)]
pub struct NewAdminToken {
    pub id: String,
    pub digest: SecretDigest,
    pub principal_id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    /// `None`: never expires (only tokens made before lifetimes existed).
    pub expires_at: Option<DateTime<Utc>>,
}

/// An admin API token as listed: never the token or its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminTokenRow {
    pub id: String,
    /// The admin principal's public id (`admin`, `admin@acme`).
    pub admin: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Which admin token to revoke.
#[derive(Debug, Clone)]
pub enum AdminTokenRef {
    Id(String),
    /// The token presented with the request, by its digest.
    Digest(SecretDigest),
}

/// How often a token's last use is written: an admin API call costs a
/// write at most once a minute, and the list is still accurate to that.
pub const LAST_USE_RESOLUTION_SECONDS: i64 = 60;

/// The name of the token `bootstrap` creates for the first admin.
pub const INITIAL_TOKEN_NAME: &str = "initial";

/// A token that authenticated, and who it speaks for.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    pub principal: ClientRow,
    pub scope: String,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct MappingRow {
    pub tenant: TenantId,
    pub name: String,
    pub version: i64,
    pub document: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub rows_total: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub deactivated: u64,
    pub failed: u64,
}

impl Counts {
    pub fn add_kind(&mut self, k: ChangeKind) {
        match k {
            ChangeKind::Created => self.created += 1,
            ChangeKind::Updated | ChangeKind::Reactivated => self.updated += 1,
            ChangeKind::Deactivated => self.deactivated += 1,
            ChangeKind::Unchanged => self.unchanged += 1,
        }
    }
    pub fn add(&mut self, o: &Counts) {
        self.rows_total += o.rows_total;
        self.created += o.created;
        self.updated += o.updated;
        self.unchanged += o.unchanged;
        self.deactivated += o.deactivated;
        self.failed += o.failed;
    }
}

#[derive(Debug, Clone)]
pub struct NewImport {
    pub id: String,
    pub tenant: TenantId,
    pub principal_id: String,
    pub client_id: String,
    pub on_behalf_of: Option<String>,
    pub idempotency_key: Option<String>,
    pub mapping: String,
    pub mapping_version: i64,
    pub mode: ImportMode,
    pub dry_run: bool,
    pub format: String,
    /// Import options (delimiter, header map) as JSON.
    pub options: serde_json::Value,
    pub bytes: u64,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct ImportRow {
    pub id: String,
    pub tenant: TenantId,
    pub principal_id: String,
    pub client_id: String,
    pub on_behalf_of: Option<String>,
    pub idempotency_key: Option<String>,
    pub mapping: String,
    pub mapping_version: i64,
    pub mode: ImportMode,
    pub dry_run: bool,
    pub format: String,
    pub options: serde_json::Value,
    pub bytes: u64,
    pub state: ImportState,
    pub counts: Counts,
    /// The last source row whose effects are committed (0: none yet).
    pub checkpoint_row: u64,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// Which imports [`Imports::import_claim_in`] may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimScope {
    /// Any claimable import, by the tenants' turns.
    AnyTenant,
    /// Only imports of tenants with no import running: the slot an
    /// instance keeps so that one tenant's queue never fills all of them.
    IdleTenants,
}

#[derive(Debug, Clone, Default)]
pub struct ImportFilter {
    pub state: Option<ImportState>,
    /// Only imports created by this principal.
    pub principal_id: Option<String>,
    /// Cursor: imports created before this one (newest first).
    pub before_id: Option<String>,
    pub limit: u32,
}

pub use muster_core::RowErrorRecord;

/// Who writes, on whose behalf, from where, under which policy.
#[derive(Debug, Clone)]
pub struct WriteContext {
    pub tenant: TenantId,
    /// `client:<id>` or `admin:<name>`.
    pub principal: String,
    pub on_behalf_of: Option<String>,
    /// `import:<id>`, `api`, `login-sync`, ...
    pub source: String,
    pub policy: WritePolicy,
    pub now: DateTime<Utc>,
    /// The import source (system) this write speaks for: every person an
    /// import writes or confirms is marked with it, and a snapshot import
    /// deactivates the people of its source missing from its file. `None`
    /// (API calls, login sync, the scheduler) leaves the mark as it is.
    pub source_system: Option<String>,
}

/// One record to apply, with the source row it came from (0 for API calls).
#[derive(Debug, Clone)]
pub struct BatchItem {
    pub row: u64,
    pub incoming: Incoming,
    /// Work done ahead, off the store's writer (see [`BatchItem::prepared`]).
    pub prepared: Option<Box<Prepared>>,
}

/// What a backend would compute for a record whose person does not exist
/// yet: its fingerprint, the stored JSON of the new person and the detail
/// of its `person.created` audit entry. Made by [`BatchItem::prepared`] on
/// the caller's thread, so a single writer (SQLite) spends its time writing.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The fingerprint under the context's writer and policy.
    pub fingerprint: [u8; 16],
    pub attrs_json: String,
    pub roles_json: String,
    /// The stored audit detail for version 1
    /// ([`muster_core::person::created_detail_json`]).
    pub detail_json: String,
    /// The day (`YYYY-MM-DD`) the new state was settled for (see
    /// [`muster_core::person::settle`]): a backend uses this preparation
    /// only when its context's day is the same.
    pub today: String,
    /// [`muster_core::person::due_on`] of the new state.
    pub due_on: Option<String>,
}

impl BatchItem {
    pub fn new(row: u64, incoming: Incoming) -> Self {
        Self {
            row,
            incoming,
            prepared: None,
        }
    }

    /// An item with its creation precomputed for `key` (from
    /// [`Incoming::fingerprint_key`] of the context's principal and policy)
    /// and `policy`. Prepare records whose person was not stored when
    /// last looked: a backend may take a prepared record for a creation
    /// without looking the person up, and look only when the creation
    /// finds them there after all (which costs more than looking first).
    pub fn prepared(
        row: u64,
        incoming: Incoming,
        key: &FingerprintKey,
        policy: &WritePolicy,
    ) -> Self {
        let today = muster_core::person::today(Utc::now());
        Self::prepared_on(row, incoming, key, policy, &today)
    }

    /// [`BatchItem::prepared`] for the day `today` (the context's).
    pub fn prepared_on(
        row: u64,
        incoming: Incoming,
        key: &FingerprintKey,
        policy: &WritePolicy,
        today: &str,
    ) -> Self {
        let mut next = muster_core::person::apply(None, &incoming, policy);
        muster_core::person::settle(&mut next, today);
        let prepared = serde_json::to_string(&next.attrs)
            .and_then(|a| Ok((a, serde_json::to_string(&next.roles)?)))
            .ok()
            .map(|(attrs_json, roles_json)| {
                Box::new(Prepared {
                    fingerprint: incoming.fingerprint_with(key),
                    detail_json: muster_core::person::created_detail_json(
                        &attrs_json,
                        &roles_json,
                        1,
                    ),
                    attrs_json,
                    roles_json,
                    today: today.to_owned(),
                    due_on: muster_core::person::due_on(&next),
                })
            });
        Self {
            row,
            incoming,
            prepared,
        }
    }
}

/// A fenced batch that committed ([`People::apply_batch_claimed`]): each
/// item's result, and the items themselves, handed back so that the thread
/// that made them frees them. An import makes thousands of records' maps
/// per batch; freed on another thread they cost the allocator several
/// times as much, on cores the single writer needs.
#[derive(Debug)]
pub struct Applied {
    pub results: Vec<ItemResult>,
    pub items: Vec<BatchItem>,
}

/// Progress of an import, committed with the batch it describes.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub import_id: String,
    /// The last source row covered by this batch.
    pub row: u64,
    /// Rows of this stretch found unchanged before the batch was built
    /// (and so not in it); they count as unchanged with the batch.
    pub unchanged: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemResult {
    pub kind: ChangeKind,
    pub version: i64,
}

#[derive(Debug, Clone)]
pub struct PersonRow {
    pub external_id: ExternalId,
    pub state: PersonState,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
    pub on_behalf_of: Option<String>,
    pub source: String,
    /// The import source that last wrote or confirmed this person (see
    /// [`WriteContext::source_system`]).
    pub source_system: Option<String>,
    /// The person's SCIM `id`: assigned by the store when the person is
    /// created, `None` once a SCIM client deleted it (see [`Scim::scim_link`]).
    pub scim_id: Option<String>,
}

/// The person attributes in which the SCIM door keeps SCIM's own
/// identifiers; the store indexes them for [`Scim::scim_find`]
/// (docs/scim.md#users).
pub mod scim_attrs {
    /// SCIM `userName` (looked up ignoring case).
    pub const USER_NAME: &str = "user_name";
    /// SCIM `externalId`, the identity provider's own id (exact).
    pub const EXTERNAL_ID: &str = "scim_external_id";
    /// The enterprise extension's `employeeNumber` (ignoring case).
    pub const EMPLOYEE_NUMBER: &str = "employee_number";
}

/// An indexed lookup of SCIM people. Text compared "ignoring case" is
/// compared after lower-casing by the database (ASCII letters on SQLite).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScimLookup {
    /// The SCIM `id`.
    Id(String),
    /// `userName`, ignoring case.
    UserName(String),
    /// The `email` attribute (SCIM `emails.value`), ignoring case.
    Email(String),
    /// `employeeNumber`, ignoring case.
    EmployeeNumber(String),
    /// `externalId`, exactly.
    ExternalId(String),
}

/// A SCIM Group: one of a tenant's roles, with a stable id; its members
/// are the people whose role set holds `display_name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRow {
    pub tenant: TenantId,
    pub id: String,
    /// The role name.
    pub display_name: String,
    /// The identity provider's id for the group, if it sent one.
    pub external_id: Option<String>,
    /// 1 on creation, one more per change of the group or its members.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A change of a group row ([`Scim::scim_group_update`]).
#[derive(Debug, Clone)]
pub struct GroupUpdate {
    pub display_name: Option<String>,
    /// `Some(None)` clears it.
    pub external_id: Option<Option<String>>,
    /// Refuse with [`StoreError::Conflict`] unless the stored version is this.
    pub if_version: Option<i64>,
    pub now: DateTime<Utc>,
}

/// A new SCIM bearer token for a client ([`Scim::scim_token_rotate`]).
#[derive(Debug, Clone)]
pub struct NewScimToken {
    pub tenant: TenantId,
    /// The client's public id.
    pub client_id: String,
    pub id: String,
    pub digest: SecretDigest,
    pub created_at: DateTime<Utc>,
    /// The client's earlier SCIM tokens stop working at this time (now:
    /// at once) unless they expire sooner.
    pub previous_until: DateTime<Utc>,
    /// The SCIM attribute that becomes the person's external id, when it
    /// changes (`None` keeps what the client has).
    pub key: Option<String>,
}

/// The name every SCIM token row has (they are listed with admin tokens'
/// rows, by [`AdminTokenRow`]).
pub const SCIM_TOKEN_NAME: &str = "scim";
/// The scope a SCIM token carries: it works at the SCIM door only.
pub const SCIM_TOKEN_SCOPE: &str = "scim:provision";

/// An audit entry and its stored hash.
#[derive(Debug, Clone)]
pub struct AuditRow {
    pub entry: AuditEntry,
    pub hash: String,
}

impl AuditRow {
    /// The row for reading (see [`AuditTrail::audit_list`]).
    pub fn for_display(mut self) -> Self {
        self.entry.detail = muster_core::person::into_display_detail(self.entry.detail);
        self
    }
}

/// An audit entry to append; the store assigns seq, prev_hash and hash.
#[derive(Debug, Clone)]
pub struct AuditDraft {
    pub tenant: TenantId,
    pub at: DateTime<Utc>,
    pub principal: String,
    pub on_behalf_of: Option<String>,
    pub source: String,
    pub action: String,
    pub person: Option<String>,
    pub detail: serde_json::Value,
}

/// The format of audit timestamps: fixed precision, so the hashed text is
/// reproducible.
pub fn audit_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// What a tenant key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyPurpose {
    /// A private key uploads are encrypted to (its secret is sealed).
    Decryption,
    /// An HR system's public signing key that files may be required to be
    /// signed with (no secret).
    SenderVerification,
}

impl KeyPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyPurpose::Decryption => "decryption",
            KeyPurpose::SenderVerification => "sender_verification",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "decryption" => Some(KeyPurpose::Decryption),
            "sender_verification" => Some(KeyPurpose::SenderVerification),
            _ => None,
        }
    }
}

/// The life of a decryption key: `active` keys are offered to clients,
/// `decrypt_only` keys still open files during a rotation overlap, and
/// `revoked` keys open nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    Active,
    DecryptOnly,
    Revoked,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Active => "active",
            KeyState::DecryptOnly => "decrypt_only",
            KeyState::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(KeyState::Active),
            "decrypt_only" => Some(KeyState::DecryptOnly),
            "revoked" => Some(KeyState::Revoked),
            _ => None,
        }
    }
}

/// What a key rotation ([`Keys::key_rotate`]) left: the new active key and
/// the old one, now `decrypt_only`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRotation {
    pub new: KeyRow,
    pub old: KeyRow,
}

/// Why a key cannot be rotated, if it cannot: only an active decryption
/// key is (both backends check it inside the rotation's transaction).
pub fn rotation_refused(old: &KeyRow) -> Option<StoreError> {
    (old.purpose != KeyPurpose::Decryption || old.state != KeyState::Active).then(|| {
        StoreError::Conflict(format!(
            "key {} is not an active decryption key; only those are rotated",
            old.id
        ))
    })
}

/// A tenant's key. The private part, when there is one, is only ever held
/// sealed under the master key (`sealed_secret`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    pub id: String,
    pub tenant: TenantId,
    /// `openpgp` or `age`.
    pub kind: String,
    /// e.g. `rsa3072`, `curve25519`, `x25519`.
    pub algorithm: String,
    pub purpose: KeyPurpose,
    /// The ids a message names its recipients (or signer) by: OpenPGP key
    /// ids of the primary key and subkeys, or the age recipient.
    pub key_ids: Vec<String>,
    /// Armored OpenPGP public key, or the age recipient string.
    pub public_key: String,
    pub sealed_secret: Option<Vec<u8>>,
    pub state: KeyState,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A client's credentials besides its secrets (docs/authentication.md#managing-keys-admin-api). Each is
/// optional and they combine freely.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientKeys {
    /// The HMAC-SHA256 request-signing key, sealed under the master key
    /// (never stored in plaintext).
    pub hmac_sealed: Option<Vec<u8>>,
    /// The Ed25519 request-signing public key, 32 raw bytes.
    pub ed25519_public: Option<Vec<u8>>,
    /// For `private_key_jwt` (RFC 7523): a JWK, a JWKS or `{"pem": ...}`,
    /// as JSON text.
    pub jwt_keys: Option<String>,
    /// When any of them last changed; `None` when none was ever set.
    pub updated_at: Option<DateTime<Utc>>,
    /// The HMAC key before the last rotation, sealed, still accepted until
    /// `hmac_previous_until` (the rotation overlap).
    pub hmac_previous_sealed: Option<Vec<u8>>,
    pub hmac_previous_until: Option<DateTime<Utc>>,
}

/// One change to a client's [`ClientKeys`]; `None` removes the credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientKeyChange {
    Hmac(Option<Vec<u8>>),
    Ed25519(Option<Vec<u8>>),
    JwtKeys(Option<String>),
}

/// How a login-sync issuer is configured (docs/authentication.md#login-sync), stored as one JSON
/// document so a new setting needs no schema change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerSettings {
    /// JWS `alg` values accepted (RFC 7515 4.1.1); never `none`.
    pub algorithms: Vec<String>,
    /// Tolerance on `exp` and `nbf` (RFC 7519 4.1.4, 4.1.5), in seconds.
    pub clock_skew_seconds: u64,
    /// An uploaded JWK Set (RFC 7517 5), as JSON text.
    #[serde(default)]
    pub jwks: Option<String>,
    /// Where the JWK Set is fetched from instead.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// How long a fetched JWK Set is used before it is fetched again.
    pub jwks_cache_seconds: u64,
    /// The name of the tenant mapping the claims go through.
    pub mapping: String,
    /// The claim that holds the person's roles, if any.
    #[serde(default)]
    pub roles_claim: Option<String>,
    /// What logins through this issuer may write.
    pub write_policy: WritePolicy,
}

/// A tenant's registered identity-provider issuer. `name` and
/// `(issuer, audience)` are unique within the tenant; two tenants may
/// register the same identity provider and audience.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerRow {
    pub id: String,
    pub tenant: TenantId,
    pub name: String,
    /// The `iss` value its tokens carry (RFC 7519 4.1.1).
    pub issuer: String,
    /// The `aud` value its tokens must carry (RFC 7519 4.1.3).
    pub audience: String,
    pub settings: IssuerSettings,
    /// The HS256 secret, only ever sealed under the master key.
    pub hs256_sealed: Option<Vec<u8>>,
    pub created_at: DateTime<Utc>,
}

/// The audit entries that record a change, built from the row the change
/// produced. A method that changes state takes one and appends its entries
/// to the tenant's chain in the same transaction as the change: there is no
/// way to commit the change and leave its entry for later. An empty list
/// records nothing (an update that changed nothing).
pub type Audit<T> = Box<dyn FnOnce(&T) -> Vec<AuditDraft> + Send>;

/// Storage for one Muster installation. Methods block; async callers run
/// them on a blocking thread. Every method that changes state takes its
/// [`Audit`] and writes the entries in the same transaction; people writes
/// carry theirs in the batch.
pub trait Store:
    Tenants
    + Principals
    + Mappings
    + Imports
    + People
    + Keys
    + Issuers
    + AuditTrail
    + Events
    + Cluster
    + Scim
    + Send
    + Sync
    + 'static
{
}

impl<S> Store for S where
    S: Tenants
        + Principals
        + Mappings
        + Imports
        + People
        + Keys
        + Issuers
        + AuditTrail
        + Events
        + Cluster
        + Scim
        + Send
        + Sync
        + 'static
{
}

/// Every capability trait, for callers of [`Store`] methods (a method of a
/// supertrait needs its trait in scope): `use muster_store::prelude::*;`.
pub mod prelude {
    pub use crate::{
        AuditTrail, Cluster, Events, Imports, Issuers, Keys, Mappings, People, Principals, Scim,
        Store, Tenants,
    };
}

/// Tenants, and the first tenant and admin of an empty database.
pub trait Tenants {
    /// Creates the default tenant and its first admin when the database is
    /// empty. Returns the admin's token (shown once) when it did.
    fn bootstrap(&self, admin_token: SecretDigest, now: DateTime<Utc>) -> Result<bool> {
        self.bootstrap_admin(admin_token, None, now)
    }

    /// [`Tenants::bootstrap`] with the first admin token's expiry; the token
    /// is an admin token named [`INITIAL_TOKEN_NAME`], listed and revoked
    /// like any other.
    fn bootstrap_admin(
        &self,
        admin_token: SecretDigest,
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// Creates a tenant, its first administrator and that administrator's
    /// first admin token in one transaction, with the audit entries: a
    /// tenant is never left without the admin who can reach it. The
    /// administrator is made in the new tenant and the token is theirs,
    /// whatever `t.admin.tenant` and `t.token.principal_id` hold.
    fn tenant_create(
        &self,
        t: NewTenant,
        now: DateTime<Utc>,
        audit: Audit<TenantCreated>,
    ) -> Result<TenantCreated>;

    fn tenant_list(&self) -> Result<Vec<TenantRow>>;
}

/// Who calls: admins and integration clients, their tokens (OAuth and admin
/// API), their signing and assertion keys, and the nonces their signatures use
/// once.
pub trait Principals {
    fn client_create(
        &self,
        c: NewClient,
        now: DateTime<Utc>,
        audit: Audit<ClientRow>,
    ) -> Result<ClientRow>;

    /// By public client id (unique across tenants).
    fn client_get(&self, client_id: &str) -> Result<ClientRow>;

    fn client_list(&self, tenant: &TenantId) -> Result<Vec<ClientRow>>;

    /// Disabling also revokes every live token of the client.
    fn client_set_disabled(
        &self,
        client_id: &str,
        disabled: bool,
        audit: Audit<ClientRow>,
    ) -> Result<ClientRow>;

    /// Replaces what the client may read of people.
    fn client_set_read_policy(
        &self,
        client_id: &str,
        policy: &ReadPolicy,
        audit: Audit<ClientRow>,
    ) -> Result<ClientRow>;

    /// Adds `new_secret`; every older secret without an earlier expiry now
    /// expires at `old_until`.
    fn client_rotate_secret(
        &self,
        client_id: &str,
        new_secret: SecretDigest,
        old_until: DateTime<Utc>,
        now: DateTime<Utc>,
        audit: Audit<ClientRow>,
    ) -> Result<ClientRow>;

    fn token_insert(&self, t: NewToken) -> Result<()>;

    /// Checks a presented token; consumes a one-time token atomically, so
    /// that of several racing requests exactly one succeeds.
    fn token_use(
        &self,
        digest: SecretDigest,
        now: DateTime<Utc>,
    ) -> Result<Result<TokenGrant, TokenRefusal>>;

    /// Revokes the token if it belongs to `principal_id` (RFC 7009: no error otherwise).
    fn token_revoke(&self, digest: SecretDigest, principal_id: &str) -> Result<()>;

    /// Stores an admin API token (its digest) for an admin principal.
    fn admin_token_create(
        &self,
        t: NewAdminToken,
        audit: Audit<AdminTokenRow>,
    ) -> Result<AdminTokenRow>;

    /// The admin tokens of `tenant`'s admins, revoked ones included, oldest
    /// first.
    fn admin_token_list(&self, tenant: &TenantId) -> Result<Vec<AdminTokenRow>>;

    /// Revokes one admin token of `tenant` (at once: its next use is
    /// refused). Revoking a revoked token changes nothing. `NotFound` when
    /// `tenant` has no such admin token.
    fn admin_token_revoke(
        &self,
        tenant: &TenantId,
        which: AdminTokenRef,
        now: DateTime<Utc>,
        audit: Audit<AdminTokenRow>,
    ) -> Result<AdminTokenRow>;

    /// A client's signing and assertion keys (empty when none is set).
    /// `NotFound` when no principal has this public client id.
    fn client_keys_get(&self, client_id: &str) -> Result<ClientKeys>;

    /// Sets, replaces or removes one of a client's keys.
    fn client_keys_set(
        &self,
        client_id: &str,
        change: ClientKeyChange,
        now: DateTime<Utc>,
        audit: Audit<ClientKeys>,
    ) -> Result<ClientKeys>;

    /// Records that `principal_id` used `nonce` (a request-signature nonce
    /// or a client-assertion `jti`), remembered until `expires_at`. Returns
    /// `true` when it was not seen before (or its record had expired), and
    /// `false` for a replay. Atomic across concurrent callers and gateway
    /// instances sharing the database. Also purges some expired records.
    fn nonce_record(
        &self,
        principal_id: &str,
        nonce: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// Installs a new sealed HMAC key. The current one, if any, becomes the
    /// previous key, accepted until `previous_until`; `None` drops it.
    fn client_hmac_rotate(
        &self,
        client_id: &str,
        sealed: Vec<u8>,
        previous_until: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        audit: Audit<ClientKeys>,
    ) -> Result<ClientKeys>;
}

/// Versioned mappings from a source's records to the person schema.
pub trait Mappings {
    fn mapping_put(&self, m: MappingRow, audit: Audit<MappingRow>) -> Result<MappingRow>;

    fn mapping_get(
        &self,
        tenant: &TenantId,
        name: &str,
        version: Option<i64>,
    ) -> Result<MappingRow>;

    fn mapping_list(&self, tenant: &TenantId) -> Result<Vec<MappingRow>>;

    fn mapping_versions(&self, tenant: &TenantId, name: &str) -> Result<Vec<MappingRow>>;
}

/// Imports: their rows, the queue instances divide with leases, and the lease
/// holder's fenced bookkeeping.
pub trait Imports {
    /// Records a new import, or returns the existing one (and `false`) when
    /// the principal already used its idempotency key.
    fn import_create(&self, i: NewImport) -> Result<(ImportRow, bool)>;

    fn import_get(&self, tenant: &TenantId, id: &str) -> Result<ImportRow>;

    fn import_list(&self, tenant: &TenantId, f: &ImportFilter) -> Result<Vec<ImportRow>>;

    /// The import `principal_id` created with idempotency key `key`, found
    /// on the key's index however many imports the principal has made.
    fn import_by_key(&self, principal_id: &str, key: &str) -> Result<Option<ImportRow>>;

    /// Imports that are not final, oldest first (the worker's queue).
    fn import_pending(&self) -> Result<Vec<ImportRow>>;

    /// Claims a pending import that no live instance holds, for `owner`
    /// until `now + lease`, taking turns between tenants: of the tenants
    /// with a claimable import, the one with the fewest imports running
    /// (held under a live lease, by any instance) goes first, then the one
    /// whose last import ended longest ago (or never), and of its imports
    /// the oldest. Of instances polling at once each gets a different
    /// import; one whose lease ran out (its instance died or stalled) is
    /// claimed again, and resumes from its checkpoint. The holder keeps it
    /// with [`Imports::import_renew`]; a final state set by
    /// [`Imports::import_set_state_claimed`] releases it.
    fn import_claim(
        &self,
        owner: &str,
        lease: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<ImportRow>> {
        self.import_claim_in(owner, lease, now, ClaimScope::AnyTenant)
    }

    /// [`Imports::import_claim`] limited to `scope`: with
    /// [`ClaimScope::IdleTenants`], only imports of tenants that have no
    /// import running at all.
    fn import_claim_in(
        &self,
        owner: &str,
        lease: chrono::Duration,
        now: DateTime<Utc>,
        scope: ClaimScope,
    ) -> Result<Option<ImportRow>>;

    /// Extends `owner`'s lease on an import to `now + lease` (a zero lease
    /// hands it back at once, for a clean shutdown). `false` when `owner`
    /// no longer holds it: the caller must stop working on the import.
    fn import_renew(
        &self,
        id: &str,
        owner: &str,
        lease: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// Row errors in row order; `after` is the cursor of the previous page.
    fn import_errors(&self, id: &str, after: u64, limit: u32)
        -> Result<Vec<(u64, RowErrorRecord)>>;

    /// Row numbers with errors, for the apply pass to skip.
    fn import_error_rows(&self, id: &str) -> Result<Vec<u64>>;

    // The import worker's own bookkeeping, fenced like its batches
    // ([`People::apply_batch_claimed`]): each writes only while `owner`
    // holds the import's lease, checked in the write's own transaction, and
    // answers `false`, having changed nothing, when it does not (another
    // instance took the import over, or it has ended). So an instance that
    // stalled past its lease cannot reset, re-state or add errors to an
    // import the new holder is validating.
    /// Starts (or restarts) validation: forgets the import's errors and
    /// counts.
    fn import_reset_claimed(&self, id: &str, owner: &str, now: DateTime<Utc>) -> Result<bool>;

    /// Sets an import's state (and, for a failure, its error code and
    /// message), for the lease holder; a final state releases the lease.
    fn import_set_state_claimed(
        &self,
        id: &str,
        owner: &str,
        state: ImportState,
        error: Option<(&str, &str)>,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// Records row errors, all or none.
    fn import_add_errors_claimed(
        &self,
        id: &str,
        owner: &str,
        errors: &[RowErrorRecord],
    ) -> Result<bool>;

    /// Records the import's warnings (a JSON array: what the file lacks
    /// that the mapping could read), kept with its options as `warnings`,
    /// replacing any earlier. Fenced like the other `_claimed` calls.
    fn import_set_warnings_claimed(
        &self,
        id: &str,
        owner: &str,
        warnings: &serde_json::Value,
    ) -> Result<bool>;

    /// Records how many rows the file has, and how many of them failed.
    fn import_set_total_claimed(
        &self,
        id: &str,
        owner: &str,
        rows_total: u64,
        failed: u64,
    ) -> Result<bool>;
}

/// People: batches of records applied with their audit entries and events,
/// reads, and the import semantics (sources, managers, effective dates).
pub trait People {
    /// Applies records in one transaction: only changed people are written,
    /// each with its audit entry; with a checkpoint, the import's progress
    /// commits with them. With `dry_run` nothing but the checkpoint is kept.
    fn apply_batch(
        &self,
        ctx: &WriteContext,
        items: Vec<BatchItem>,
        checkpoint: Option<Checkpoint>,
        dry_run: bool,
    ) -> Result<Vec<ItemResult>>;

    fn person_get(&self, tenant: &TenantId, id: &ExternalId) -> Result<PersonRow>;

    fn person_list(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<PersonRow>>;

    /// The external ids of a source's people that are not terminated, in
    /// id order after `after`: what a snapshot import of that source would
    /// deactivate if its file left them out.
    fn person_source_active(
        &self,
        tenant: &TenantId,
        source_system: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>>;

    /// Which of these people exist, in order.
    fn person_exists(&self, tenant: &TenantId, ids: &[&str]) -> Result<Vec<bool>>;

    /// The fingerprints stored with these people, in order, `None` for no
    /// such person and for a person whose source system is not
    /// `source_system`: an import must confirm such a person (through
    /// `apply_batch`) even when the record is unchanged. Read-only; the
    /// import's validation pass uses it to find unchanged rows before
    /// anything is written.
    fn person_fingerprints_of_source(
        &self,
        tenant: &TenantId,
        ids: &[&str],
        source_system: &str,
    ) -> Result<Vec<Option<[u8; 16]>>>;

    /// Applies up to `limit` due effective-date transitions of the
    /// context's tenant (people whose `due_on` is on or before the
    /// context's day), in one transaction, through the same path as
    /// `apply_batch`: each with its audit entry and event, as
    /// `ctx.principal` from `ctx.source`. The due people are chosen and
    /// re-read under the write lock (the tenant's audit chain head), so
    /// instances running this at once never both apply one transition.
    fn person_settle_due(&self, ctx: &WriteContext, limit: u32) -> Result<Vec<ItemResult>>;

    /// [`People::apply_batch`] for the import worker: the batch and its
    /// checkpoint commit only while `owner` still holds the import's lease
    /// (see [`Imports::import_claim`]), checked in the same transaction. An
    /// instance that stalled past its lease, while another one took the
    /// import over, gets `Ok(None)` and nothing of its batch is written,
    /// so no row is applied (or counted) twice. A committed batch's items
    /// come back with its results ([`Applied`]).
    fn apply_batch_claimed(
        &self,
        ctx: &WriteContext,
        items: Vec<BatchItem>,
        checkpoint: Checkpoint,
        owner: &str,
        dry_run: bool,
    ) -> Result<Option<Applied>>;
}

/// Tenant keys (decryption and sender verification) and clients' intake
/// policies.
pub trait Keys {
    /// Stores a new key (its id must be unique installation-wide).
    fn key_create(&self, k: KeyRow, audit: Audit<KeyRow>) -> Result<KeyRow>;

    fn key_get(&self, tenant: &TenantId, id: &str) -> Result<KeyRow>;

    /// A tenant's keys, oldest first.
    fn key_list(&self, tenant: &TenantId) -> Result<Vec<KeyRow>>;

    fn key_set_state(
        &self,
        tenant: &TenantId,
        id: &str,
        state: KeyState,
        now: DateTime<Utc>,
        audit: Audit<KeyRow>,
    ) -> Result<KeyRow>;

    /// Stores `new` and makes the tenant's key `old` `decrypt_only`, in one
    /// transaction: no failure leaves both keys active or the new one
    /// missing. `Conflict` when `old` is not an active decryption key (any
    /// more), and then nothing is written.
    fn key_rotate(
        &self,
        new: KeyRow,
        old: &str,
        now: DateTime<Utc>,
        audit: Audit<KeyRotation>,
    ) -> Result<KeyRotation>;

    /// A client's intake policy (the default when none was set).
    fn intake_policy_get(&self, principal_id: &str) -> Result<IntakePolicy>;

    fn intake_policy_put(
        &self,
        principal_id: &str,
        p: &IntakePolicy,
        audit: Audit<()>,
    ) -> Result<()>;
}

/// Login-sync issuers, each a tenant's own.
pub trait Issuers {
    // Login-sync issuers, each a tenant's own.
    /// Registers an issuer. `Conflict` when the tenant has one of this
    /// name, or one with the same `issuer` and `audience` (another
    /// tenant may register the same pair: it is another issuer).
    fn issuer_create(&self, i: IssuerRow, audit: Audit<IssuerRow>) -> Result<IssuerRow>;

    fn issuer_get(&self, tenant: &TenantId, name: &str) -> Result<IssuerRow>;

    /// A tenant's issuers by name.
    fn issuer_list(&self, tenant: &TenantId) -> Result<Vec<IssuerRow>>;

    /// The tenant's issuers whose tokens carry this `iss` (one per
    /// audience); never another tenant's.
    fn issuer_find(&self, tenant: &TenantId, issuer: &str) -> Result<Vec<IssuerRow>>;

    fn issuer_delete(&self, tenant: &TenantId, name: &str, audit: Audit<()>) -> Result<()>;
}

/// The audit chain: entries of their own, and reading and walking it.
pub trait AuditTrail {
    /// Appends an entry that records no change of its own (aggregated
    /// failed authentications, a delivery given up, a master-key file
    /// rotation). A change's entry goes with the change, as its [`Audit`].
    fn audit_append(&self, d: AuditDraft) -> Result<i64>;

    /// A tenant's audit entries after `after`, for reading: each detail as
    /// its diff ([`muster_core::person::display_detail`]), which for a
    /// creation is not the text its hash covers.
    fn audit_list(&self, tenant: &TenantId, after: i64, limit: u32) -> Result<Vec<AuditRow>>;

    /// Visits a tenant's whole chain in order, for verification: entries
    /// exactly as stored and hashed.
    fn audit_walk(&self, tenant: &TenantId, f: &mut dyn FnMut(AuditRow) -> bool) -> Result<()>;
}

/// Change events and the subscriptions that deliver them, with their delivery
/// leases and log.
pub trait Events {
    /// A tenant's change events with a cursor above `after`, in cursor
    /// order. `apply_batch` writes them with the changes they describe.
    fn changes_list(&self, tenant: &TenantId, after: i64, limit: u32) -> Result<Vec<ChangeEvent>>;

    /// The tenant's newest event cursor (0: none yet).
    fn changes_head(&self, tenant: &TenantId) -> Result<i64>;

    /// Stores a new subscription; its progress starts where the row says.
    fn subscription_create(
        &self,
        s: SubscriptionRow,
        audit: Audit<SubscriptionRow>,
    ) -> Result<SubscriptionRow>;

    fn subscription_get(&self, tenant: &TenantId, id: &str) -> Result<SubscriptionRow>;

    /// A tenant's subscriptions, oldest first.
    fn subscription_list(&self, tenant: &TenantId) -> Result<Vec<SubscriptionRow>>;

    /// Every active subscription of every tenant (the delivery worker's).
    fn subscription_active(&self) -> Result<Vec<SubscriptionRow>>;

    /// Replaces what an admin may change: url, events, attributes, secrets,
    /// state and reason. Leaves the progress and the owner alone.
    fn subscription_update(
        &self,
        s: &SubscriptionRow,
        audit: Audit<SubscriptionRow>,
    ) -> Result<SubscriptionRow>;

    fn subscription_delete(&self, tenant: &TenantId, id: &str, audit: Audit<()>) -> Result<()>;

    /// Sets the range to deliver again (manual redelivery).
    fn subscription_redeliver(
        &self,
        tenant: &TenantId,
        id: &str,
        range: (i64, i64),
        now: DateTime<Utc>,
        audit: Audit<SubscriptionRow>,
    ) -> Result<SubscriptionRow>;

    /// A subscription's delivery log, oldest first, after `after` (a seq).
    fn delivery_list(&self, id: &str, after: i64, limit: u32) -> Result<Vec<DeliveryRecord>>;

    /// Takes the delivery lease of an active subscription for `owner` until
    /// `now + lease` (or extends `owner`'s own) when no other owner holds an
    /// unexpired one, and returns the row as it is now. `None`: another
    /// instance delivers it, or it is gone or disabled. Of instances
    /// claiming at once, one gets it; one whose lease ran out (its instance
    /// died) loses it to the next claim.
    fn subscription_claim(
        &self,
        id: &str,
        owner: &str,
        lease: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<SubscriptionRow>>;

    /// Records attempts and moves the progress together (and disables the
    /// subscription when `save.disable` says so), for the lease holder:
    /// writes only while `owner` holds the lease, and extends it to
    /// `now + lease`. A
    /// redelivery range an admin set since `save.redeliver_seen` was read
    /// is kept. `false`: the lease was lost and nothing was written.
    fn subscription_save(
        &self,
        id: &str,
        owner: &str,
        lease: chrono::Duration,
        save: &DeliverySave,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// Hands `owner`'s lease back, so any instance may claim the
    /// subscription at once (nothing happens when `owner` does not hold it).
    fn subscription_release(&self, id: &str, owner: &str) -> Result<()>;

    /// A provisioning subscription's links for these keys, in order.
    fn target_links(
        &self,
        subscription: &str,
        kind: LinkKind,
        keys: &[&str],
    ) -> Result<Vec<Option<TargetLink>>>;

    /// Stores a link (replacing the one with its key).
    fn target_link_put(&self, subscription: &str, kind: LinkKind, link: &TargetLink) -> Result<()>;

    /// The link, if any, to the target's object `target_id`: whose User
    /// it is.
    fn target_link_of(
        &self,
        subscription: &str,
        kind: LinkKind,
        target_id: &str,
    ) -> Result<Option<TargetLink>>;

    /// Forgets a link (nothing happens when there is none).
    fn target_link_delete(&self, subscription: &str, kind: LinkKind, key: &str) -> Result<()>;

    /// A subscription's links in key order after `after`.
    fn target_link_list(
        &self,
        subscription: &str,
        kind: LinkKind,
        after: &str,
        limit: u32,
    ) -> Result<Vec<TargetLink>>;
}

/// What the SCIM door needs beyond [`People`] (docs/scim.md): the indexed
/// lookups of SCIM filters, paging in a stable order, a person's SCIM id,
/// Groups, and SCIM bearer tokens. Reads see only people with a SCIM id.
pub trait Scim {
    /// Up to `limit` people matching `by`, in external id order.
    fn scim_find(&self, tenant: &TenantId, by: &ScimLookup, limit: u32) -> Result<Vec<PersonRow>>;

    /// People with a SCIM id in external id order, skipping `offset`.
    fn scim_page(&self, tenant: &TenantId, offset: u64, limit: u32) -> Result<Vec<PersonRow>>;

    /// How many people have a SCIM id.
    fn scim_count(&self, tenant: &TenantId) -> Result<u64>;

    /// The SCIM ids of these people (by external id), in order; `None` for
    /// no such person or one without a SCIM id.
    fn scim_ids(&self, tenant: &TenantId, ids: &[&str]) -> Result<Vec<Option<String>>>;

    /// Gives the person a new SCIM id (`link`) when it has none, or takes
    /// it away (SCIM DELETE: the person stays, hidden from SCIM; a later
    /// link gives it a new id, never the old one), with the audit entries
    /// `audit` makes of the result, in one transaction. Nothing changes,
    /// and nothing is recorded, when the person already is as asked.
    fn scim_link(
        &self,
        tenant: &TenantId,
        id: &ExternalId,
        link: bool,
        audit: Audit<PersonRow>,
    ) -> Result<PersonRow>;

    /// Up to `limit` people with a SCIM id whose role set holds `role`,
    /// after external id `after`, in external id order.
    fn scim_role_members(
        &self,
        tenant: &TenantId,
        role: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<PersonRow>>;

    /// Stores a new group: its id and its display name are unique in the
    /// tenant ([`StoreError::Conflict`]).
    fn scim_group_create(&self, g: GroupRow, audit: Audit<GroupRow>) -> Result<GroupRow>;

    fn scim_group_get(&self, tenant: &TenantId, id: &str) -> Result<GroupRow>;

    /// The tenant's groups by display name.
    fn scim_group_list(&self, tenant: &TenantId) -> Result<Vec<GroupRow>>;

    /// Changes a group and counts one more version (also with nothing to
    /// change: a change of its members).
    fn scim_group_update(
        &self,
        tenant: &TenantId,
        id: &str,
        change: GroupUpdate,
        audit: Audit<GroupRow>,
    ) -> Result<GroupRow>;

    fn scim_group_delete(
        &self,
        tenant: &TenantId,
        id: &str,
        audit: Audit<GroupRow>,
    ) -> Result<GroupRow>;

    /// Stores a new SCIM token for a client of `t.tenant` (scope
    /// [`SCIM_TOKEN_SCOPE`], named [`SCIM_TOKEN_NAME`], never expiring),
    /// makes its earlier SCIM tokens expire at `t.previous_until`, and sets
    /// its SCIM key when `t.key` says so, in one transaction.
    fn scim_token_rotate(
        &self,
        t: NewScimToken,
        audit: Audit<AdminTokenRow>,
    ) -> Result<AdminTokenRow>;
}

/// A store's connection pool at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStatus {
    /// Connections running a call.
    pub in_use: u64,
    /// Open connections waiting for one.
    pub idle: u64,
    /// The most the pool opens; 0 when they are opened on demand.
    pub max: u64,
}

/// What instances sharing the database keep together: how the backend reads,
/// live instances, failed-authentication counters, and master-key re-sealing.
pub trait Cluster {
    /// How this store's connections are used now, for the metrics.
    fn pool_status(&self) -> PoolStatus {
        PoolStatus::default()
    }

    /// Whether a read is a local, short call that never waits on a network
    /// or on the writer (an embedded database's reader connections): the
    /// server may then run a hot read on the async thread that wants it,
    /// sparing a hand-off to the blocking pool and back.
    fn reads_are_local(&self) -> bool {
        false
    }

    /// Every value sealed under the master key, of every tenant, with the
    /// id its seal is bound to (see [`SealedColumn`]), for re-sealing.
    fn sealed_all(&self) -> Result<Vec<SealedValue>>;

    /// Replaces sealed values of one column in one transaction, each only
    /// where the row still holds `old` (a value changed meanwhile is left
    /// alone: it was sealed afresh). Returns how many were replaced.
    fn sealed_replace(&self, column: SealedColumn, swaps: Vec<SealedSwap>) -> Result<u64>;

    /// Counts one failed authentication against each key (`addr:..`,
    /// `client:..`): a key whose window (of `window`) ran out starts a new
    /// one. Returns each key's failures in its window and the window's start,
    /// in order. Shared by all instances on the database.
    fn auth_failure_record(
        &self,
        keys: &[String],
        window: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<(u32, DateTime<Utc>)>>;

    /// The keys with at least `max` failures in a window still running, and
    /// when each window started. Also purges some expired counters.
    fn auth_failures_over(
        &self,
        max: u32,
        window: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, DateTime<Utc>)>>;

    /// Records that instance `id` is alive, and the master key it seals with.
    fn instance_heartbeat(&self, id: &str, master_key_id: &str, now: DateTime<Utc>) -> Result<()>;

    /// Instances seen at or after `since`, by id.
    fn instance_list(&self, since: DateTime<Utc>) -> Result<Vec<InstanceRow>>;

    /// Forgets an instance (a clean shutdown).
    fn instance_remove(&self, id: &str) -> Result<()>;
}

// ---- rotate: master-key rotation, HMAC overlap, limits, instances --------

/// A column that holds values sealed under the master key. Each seal's
/// associated data names its owner: a key id, a client id, an issuer id or
/// a subscription id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SealedColumn {
    /// `keys.sealed_secret`, bound to the key id (a sealed stream).
    KeySecret,
    /// A client's HMAC request-signing key, bound to its client id.
    ClientHmac,
    /// The HMAC key before the last rotation, during its overlap.
    ClientHmacPrevious,
    /// A login-sync issuer's HS256 secret, bound to the issuer id.
    IssuerHs256,
    /// A webhook subscription's secret, bound to the subscription id.
    WebhookSecret,
    /// A subscription's secret before its last rotation.
    WebhookPreviousSecret,
}

impl SealedColumn {
    /// The query listing this column's sealed values as `(id, sealed)`, in
    /// id order: plain SQL that both backends run as it is.
    pub fn select_sql(self) -> &'static str {
        match self {
            SealedColumn::KeySecret => {
                "SELECT id, sealed_secret FROM keys WHERE sealed_secret IS NOT NULL ORDER BY id"
            }
            SealedColumn::ClientHmac => {
                "SELECT p.client_id, k.hmac_sealed FROM client_keys k \
                 JOIN principals p ON p.id = k.principal_id \
                 WHERE k.hmac_sealed IS NOT NULL ORDER BY p.client_id"
            }
            SealedColumn::ClientHmacPrevious => {
                "SELECT p.client_id, k.hmac_previous_sealed FROM client_keys k \
                 JOIN principals p ON p.id = k.principal_id \
                 WHERE k.hmac_previous_sealed IS NOT NULL ORDER BY p.client_id"
            }
            SealedColumn::IssuerHs256 => {
                "SELECT id, hs256_sealed FROM issuers WHERE hs256_sealed IS NOT NULL ORDER BY id"
            }
            SealedColumn::WebhookSecret => {
                "SELECT id, secret_sealed FROM subscriptions ORDER BY id"
            }
            SealedColumn::WebhookPreviousSecret => {
                "SELECT id, previous_secret_sealed FROM subscriptions \
                 WHERE previous_secret_sealed IS NOT NULL ORDER BY id"
            }
        }
    }

    pub const ALL: [SealedColumn; 6] = [
        SealedColumn::KeySecret,
        SealedColumn::ClientHmac,
        SealedColumn::ClientHmacPrevious,
        SealedColumn::IssuerHs256,
        SealedColumn::WebhookSecret,
        SealedColumn::WebhookPreviousSecret,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SealedColumn::KeySecret => "tenant_keys",
            SealedColumn::ClientHmac => "client_hmac_keys",
            SealedColumn::ClientHmacPrevious => "client_hmac_previous_keys",
            SealedColumn::IssuerHs256 => "issuer_secrets",
            SealedColumn::WebhookSecret => "webhook_secrets",
            SealedColumn::WebhookPreviousSecret => "webhook_previous_secrets",
        }
    }
}

/// One sealed value and the id its seal is bound to.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedValue {
    pub column: SealedColumn,
    pub id: String,
    pub sealed: Vec<u8>,
}

impl std::fmt::Debug for SealedValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedValue")
            .field("column", &self.column)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Replace `old` by `new` for the row bound to `id`.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSwap {
    pub id: String,
    pub old: Vec<u8>,
    pub new: Vec<u8>,
}

impl std::fmt::Debug for SealedSwap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedSwap")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A running gateway instance, as its last heartbeat described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRow {
    pub id: String,
    pub seen_at: DateTime<Utc>,
    /// The id of the master key it seals with (never the key).
    pub master_key_id: String,
}

/// The `Conflict` text a backend uses internally to roll back a fenced
/// batch whose lease is gone; [`People::apply_batch_claimed`] turns it into
/// `Ok(None)`.
pub const LEASE_LOST: &str = "the import's lease is held by another instance";

/// Maps the [`LEASE_LOST`] rollback of a fenced batch to `Ok(None)`.
pub fn fenced<T>(r: Result<T>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(StoreError::Conflict(m)) if m == LEASE_LOST => Ok(None),
        Err(e) => Err(e),
    }
}

/// What one delivery round of a lease holder commits
/// ([`Events::subscription_save`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliverySave {
    pub progress: DeliveryProgress,
    /// The redelivery range as the round read it: if an admin changed it
    /// since, the admin's stands and `progress.redeliver` is dropped.
    pub redeliver_seen: Option<(i64, i64)>,
    pub records: Vec<DeliveryRecord>,
    /// Disables the subscription with this reason (a 410).
    pub disable: Option<String>,
}

// ---- change events and subscriptions (docs/events.md) ----------------------------

/// One change event (docs/events.md), as written in the same transaction as the
/// change it describes. The field-level diff is the change's audit detail
/// (`{"changes":[{"after","attribute","before"}],"version"}`): an event
/// row points at its audit entry instead of holding a second copy.
#[derive(Clone, PartialEq, Eq)]
pub struct ChangeEvent {
    /// UUIDv7, stable: the `webhook-id` of every delivery of this event.
    pub id: String,
    pub tenant: TenantId,
    /// Per tenant, strictly increasing in commit order.
    pub cursor: i64,
    /// `person.created`, `person.updated`, `person.deactivated`,
    /// `person.reactivated` or `roles.changed`.
    pub kind: String,
    pub external_id: String,
    pub version: i64,
    /// `import:<id>`, `api`, `login-sync`, ...
    pub source: String,
    pub principal: String,
    pub on_behalf_of: Option<String>,
    /// The audit detail of the change, as its diff
    /// ([`muster_core::person::display_detail`]).
    pub detail: String,
    /// The audit timestamp text of the change.
    pub created_at: String,
}

impl std::fmt::Debug for ChangeEvent {
    /// Leaves out the detail: it holds personnel data.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeEvent")
            .field("id", &self.id)
            .field("tenant", &self.tenant)
            .field("cursor", &self.cursor)
            .field("kind", &self.kind)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// The event names a change produces, in the order they are written: the
/// person event, then `roles.changed` when the role set differs. An update
/// of the roles alone is only `roles.changed`.
pub fn change_event_kinds(
    kind: ChangeKind,
    attrs_changed: bool,
    roles_changed: bool,
) -> &'static [&'static str] {
    match (kind, roles_changed) {
        (ChangeKind::Unchanged, _) => &[],
        (ChangeKind::Updated, true) if !attrs_changed => &["roles.changed"],
        (ChangeKind::Created, false) => &["person.created"],
        (ChangeKind::Created, true) => &["person.created", "roles.changed"],
        (ChangeKind::Updated, false) => &["person.updated"],
        (ChangeKind::Updated, true) => &["person.updated", "roles.changed"],
        (ChangeKind::Deactivated, false) => &["person.deactivated"],
        (ChangeKind::Deactivated, true) => &["person.deactivated", "roles.changed"],
        (ChangeKind::Reactivated, false) => &["person.reactivated"],
        (ChangeKind::Reactivated, true) => &["person.reactivated", "roles.changed"],
    }
}

/// Whether a change touched (attributes, roles), for [`change_event_kinds`].
pub fn event_changes(before: Option<&PersonState>, after: &PersonState) -> (bool, bool) {
    match before {
        None => (true, !after.roles.is_empty()),
        Some(b) if b.roles != after.roles => (b.attrs != after.attrs, true),
        Some(_) => (true, false),
    }
}

/// Every event name a subscription may ask for.
pub const EVENT_KINDS: [&str; 5] = [
    "person.created",
    "person.updated",
    "person.deactivated",
    "person.reactivated",
    "roles.changed",
];

/// A new event id: UUIDv7, so ids sort roughly by creation time.
pub fn new_event_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A webhook subscription (docs/events.md#webhook-subscriptions) and its delivery progress.
#[derive(Clone, PartialEq, Eq)]
pub struct SubscriptionRow {
    pub id: String,
    pub tenant: TenantId,
    /// Where its events go; fixed when it is made.
    pub kind: SubscriptionKind,
    pub url: String,
    /// What the kind needs besides the URL (a NATS subject prefix);
    /// `Null` for a webhook.
    pub target: serde_json::Value,
    /// Event names it receives.
    pub events: Vec<String>,
    /// Attributes its payloads may carry (`*`: all; `roles` for the roles).
    pub attributes: Vec<String>,
    /// The client that created it and manages it, bounded by its read
    /// policy (`None`: made by an administrator).
    pub owner: Option<String>,
    /// The kind's secret, sealed under the master key: a webhook's
    /// `whsec_` signing secret, a NATS subscription's credentials (JSON).
    pub secret_sealed: Vec<u8>,
    /// The secret before the last rotation, also signed with until
    /// `previous_until`.
    pub previous_secret_sealed: Option<Vec<u8>>,
    pub previous_until: Option<DateTime<Utc>>,
    /// `active` or `disabled`.
    pub state: SubscriptionState,
    pub disabled_reason: Option<String>,
    pub progress: DeliveryProgress,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for SubscriptionRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriptionRow")
            .field("id", &self.id)
            .field("tenant", &self.tenant)
            .field("kind", &self.kind)
            .field("state", &self.state)
            .field("progress", &self.progress)
            .finish_non_exhaustive()
    }
}

/// Where a subscription's delivery stands. Only the delivery worker moves
/// it (and manual redelivery, which sets the `redeliver` range).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryProgress {
    /// Every event up to this cursor was delivered, skipped (filtered out)
    /// or dead-lettered.
    pub cursor: i64,
    /// Failed attempts so far at the event after `cursor`.
    pub attempt: u32,
    /// When to try again (`None`: now).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// A cursor range (inclusive) to deliver again, before going on.
    pub redeliver: Option<(i64, i64)>,
    /// What a kind of sink keeps between rounds besides the cursor.
    pub sink: SinkProgress,
}

/// The part of a subscription's progress that only some kinds use
/// (docs/provisioning.md): stored as one JSON value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkProgress {
    /// Provisioning the people who were there before the subscription:
    /// the last external id done (`""`: not begun). `None`: nothing to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill: Option<String>,
    /// Set while the target fails so much that it is tried only rarely.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<Quarantine>,
    /// Why the last backfill step failed (it keeps no delivery log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill_error: Option<String>,
    /// A fingerprint of the destination (URL, secret, settings) the last
    /// failure was for: once it is changed, the next try is due at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_for: Option<String>,
}

impl SinkProgress {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// A target put aside: tried again at `progress.next_attempt_at`, ever
/// less often, until a request succeeds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quarantine {
    pub since: DateTime<Utc>,
    /// How many times it has been tried since and failed.
    pub tries: u32,
    /// The last failure (a status and the error, never personnel data).
    pub reason: String,
}

/// What a provisioning subscription knows of one of its objects on the
/// target: a person's User (`key`: the external id) or a role's Group
/// (`key`: the role), the target's id for it, and what was last sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetLink {
    pub key: String,
    pub target_id: String,
    /// The resource as last sent (`Null`: linked, nothing sent yet).
    pub sent: serde_json::Value,
}

/// Which of a subscription's target objects a [`TargetLink`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    User,
    Group,
}

impl LinkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Group => "group",
        }
    }
}

/// One attempt to deliver one event, for the delivery log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    /// Assigned by the store, increasing.
    pub seq: i64,
    pub subscription_id: String,
    pub event_id: String,
    pub cursor: i64,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub at: DateTime<Utc>,
    /// The receiver's HTTP status, when it answered.
    pub status: Option<u16>,
    /// `delivered`, `failed` (to be retried), `dead` (no retry left),
    /// `gone` (410: the subscription was disabled).
    pub outcome: String,
    /// Why it failed, in our words (never the receiver's body).
    pub error: Option<String>,
    pub manual: bool,
}

#[cfg(test)]
mod state_tests {
    use super::*;

    #[test]
    fn a_backend_error_keeps_its_cause_as_its_source() {
        let cause = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = StoreError::caused("cannot open the database", cause);
        assert_eq!(
            e.to_string(),
            "storage backend error: cannot open the database"
        );
        let source = std::error::Error::source(&e).expect("the cause is the source");
        assert_eq!(source.to_string(), "no such file");
        assert!(std::error::Error::source(&StoreError::backend("x")).is_none());
    }

    #[test]
    fn the_pending_states_sql_lists_exactly_the_pending_states() {
        let listed: Vec<String> = ImportState::PENDING
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect();
        assert_eq!(pending_states_sql!(), format!("({})", listed.join(", ")));
        for s in ImportState::PENDING {
            assert!(!s.is_final());
        }
    }
}
