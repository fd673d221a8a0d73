//! Wire types of Muster's HTTP API, shared by the server and the client SDK
//! so that both sides agree on every field. No logic lives here.
#![forbid(unsafe_code)]

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

mod client_keys;
pub use client_keys::*;
pub mod error_code;
pub use error_code::ErrorCode;

/// An RFC 9457 problem document: the body of every API error outside the
/// OAuth endpoints. `code` is stable and meant for programs.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// What went wrong, for programs: one of [`ErrorCode`] (docs/errors.md).
    #[schema(value_type = ErrorCode)]
    pub code: String,
    /// Field-level problems, when the request had several.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<RowErrorInfo>,
}

/// RFC 6749 section 5.1.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
    pub scope: String,
}

/// RFC 6749 section 5.2.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OAuthError {
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

/// RFC 8414 authorization server metadata (the fields Muster serves).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ServerMetadata {
    pub issuer: String,
    pub token_endpoint: String,
    pub revocation_endpoint: String,
    pub grant_types_supported: Vec<String>,
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// RFC 8414 2: algorithms accepted for `private_key_jwt`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub token_endpoint_auth_signing_alg_values_supported: Vec<String>,
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revocation_endpoint_auth_signing_alg_values_supported: Vec<String>,
    pub scopes_supported: Vec<String>,
    pub response_types_supported: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenPolicy {
    /// The token is consumed by the first request that presents it.
    OneTime,
    /// Reusable until it expires.
    Ttl,
}

impl TokenPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenPolicy::OneTime => "one_time",
            TokenPolicy::Ttl => "ttl",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "one_time" => Some(Self::OneTime),
            "ttl" => Some(Self::Ttl),
            _ => None,
        }
    }
}

/// Attributes a client may set and roles it may grant; `*` means all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WritePolicyInfo {
    #[serde(default)]
    pub attributes: Vec<String>,
    #[serde(default)]
    pub roles: Vec<String>,
}

/// What a client may read of people (docs/people.md#read-policies):
/// the attributes its person reads, change feed and own subscriptions
/// carry (`*`: all; `roles` for the roles), and the change feed's event
/// names (empty: all).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadPolicyInfo {
    pub attributes: Vec<String>,
    #[serde(default)]
    pub events: Vec<String>,
}

impl Default for ReadPolicyInfo {
    fn default() -> Self {
        Self {
            attributes: vec!["*".into()],
            events: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantSpec {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TenantInfo {
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// A new tenant and its first admin's API token, shown once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TenantCreated {
    pub tenant: TenantInfo,
    pub admin_token: String,
}

/// What an admin sends to mint an admin API token for itself.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminTokenSpec {
    /// What the token is for (1 to 64 printable characters), shown in the
    /// list.
    pub name: String,
    /// Seconds until it expires; default from the gateway's configuration
    /// (90 days), at most its maximum (one year).
    #[serde(default)]
    pub lifetime_seconds: Option<u64>,
}

/// An admin API token as listed: never the token or its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AdminTokenInfo {
    /// Public id, to revoke it by.
    pub id: String,
    pub name: String,
    /// The admin it speaks for.
    pub admin: String,
    pub created_at: DateTime<Utc>,
    /// `null`: never (tokens made before lifetimes existed).
    pub expires_at: Option<DateTime<Utc>>,
    /// To the minute.
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A new admin API token; `admin_token` is shown this once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AdminTokenCreated {
    pub token: AdminTokenInfo,
    pub admin_token: String,
}

/// What an admin sends to register an integration client.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientSpec {
    /// Chosen by the gateway when absent.
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// A built-in role: importer, syncer, reader, node, auditor, scim, admin.
    pub role: String,
    #[serde(default = "default_policy")]
    pub token_policy: TokenPolicy,
    /// Lifetime of access tokens; default 900 (15 minutes).
    #[serde(default)]
    pub token_ttl_seconds: Option<u64>,
    #[serde(default)]
    pub write_policy: WritePolicyInfo,
    /// Default: everything its permissions let it read.
    #[serde(default)]
    pub read_policy: Option<ReadPolicyInfo>,
}

fn default_policy() -> TokenPolicy {
    TokenPolicy::Ttl
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SecretInfo {
    pub created_at: DateTime<Utc>,
    /// Set while an old secret is in its rotation overlap.
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ClientInfo {
    pub client_id: String,
    pub name: String,
    pub role: String,
    pub permissions: Vec<String>,
    pub token_policy: TokenPolicy,
    pub token_ttl_seconds: u64,
    pub write_policy: WritePolicyInfo,
    #[serde(default)]
    pub read_policy: ReadPolicyInfo,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    pub secrets: Vec<SecretInfo>,
}

/// A new client and its secret, shown once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ClientCreated {
    pub client: ClientInfo,
    pub client_secret: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecretRequest {
    /// How long the previous secret keeps working; default 86400 (one day), 0 ends it now.
    #[serde(default)]
    pub overlap_seconds: Option<u64>,
}

/// A new SCIM token for a client (docs/scim.md#authentication).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScimTokenRequest {
    /// How long the client's previous SCIM tokens keep working; default 86400 (one day), 0 ends them now.
    #[serde(default)]
    pub overlap_seconds: Option<u64>,
    /// The SCIM attribute whose value becomes the external id of the people the client provisions: `userName` (the default), `externalId` or `employeeNumber`. Absent: unchanged.
    #[serde(default)]
    pub key: Option<String>,
}

/// A SCIM token, shown once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ScimTokenCreated {
    pub client_id: String,
    /// The token's id (in the audit trail).
    pub token_id: String,
    /// The bearer token for the identity provider's SCIM connector.
    pub token: String,
    /// The SCIM attribute that keys the client's people.
    pub key: String,
    /// When the client's earlier SCIM tokens stop working.
    pub previous_tokens_expire_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SecretRotated {
    pub client_id: String,
    pub client_secret: String,
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MappingInfo {
    pub name: String,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    /// Attributes the mapping writes.
    pub attributes: Vec<String>,
    /// The document, in its canonical JSON form.
    pub document: serde_json::Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImportState {
    Received,
    Decrypting,
    Parsing,
    Applying,
    Succeeded,
    SucceededWithErrors,
    Failed,
    Rejected,
}

impl ImportState {
    pub fn as_str(self) -> &'static str {
        match self {
            ImportState::Received => "received",
            ImportState::Decrypting => "decrypting",
            ImportState::Parsing => "parsing",
            ImportState::Applying => "applying",
            ImportState::Succeeded => "succeeded",
            ImportState::SucceededWithErrors => "succeeded_with_errors",
            ImportState::Failed => "failed",
            ImportState::Rejected => "rejected",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "received" => Self::Received,
            "decrypting" => Self::Decrypting,
            "parsing" => Self::Parsing,
            "applying" => Self::Applying,
            "succeeded" => Self::Succeeded,
            "succeeded_with_errors" => Self::SucceededWithErrors,
            "failed" => Self::Failed,
            "rejected" => Self::Rejected,
            _ => return None,
        })
    }
    pub fn is_final(self) -> bool {
        Self::FINAL.contains(&self)
    }

    /// The states an import ends in.
    pub const FINAL: [ImportState; 4] = [
        Self::Succeeded,
        Self::SucceededWithErrors,
        Self::Failed,
        Self::Rejected,
    ];

    /// The states of an import still under way (waiting, or taken by a
    /// worker).
    pub const PENDING: [ImportState; 4] = [
        Self::Received,
        Self::Decrypting,
        Self::Parsing,
        Self::Applying,
    ];
}

/// How an import treats the people its file leaves out: `upsert` leaves
/// them alone; `snapshot` deactivates the source's people missing from the
/// file (docs/people.md#import-semantics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImportMode {
    /// Create or update the people in the file; leave the others.
    #[default]
    Upsert,
    /// Also deactivate this source's people that the file leaves out.
    Snapshot,
}

impl ImportMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Upsert => "upsert",
            Self::Snapshot => "snapshot",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "upsert" => Some(Self::Upsert),
            "snapshot" => Some(Self::Snapshot),
            _ => None,
        }
    }
}

impl std::str::FromStr for ImportMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or_else(|| format!("'{s}' is not a mode: use upsert or snapshot"))
    }
}

/// Whether a webhook subscription is delivered to: `disabled` by an admin
/// or when its receiver answered 410 Gone (docs/events.md#webhook-subscriptions).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionState {
    #[default]
    Active,
    Disabled,
}

impl SubscriptionState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Disabled => "disabled",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "disabled" => Some(Self::Disabled),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ImportCounts {
    pub rows_total: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub deactivated: u64,
    pub failed: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ImportFailure {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ImportLinks {
    #[serde(rename = "self")]
    pub self_: String,
    pub errors: String,
    pub events: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ImportInfo {
    pub id: String,
    pub state: ImportState,
    pub client_id: String,
    pub on_behalf_of: Option<String>,
    pub mapping: String,
    pub mapping_version: i64,
    pub mode: String,
    /// The import source the file speaks for (snapshot scope): the
    /// `source` parameter, or the client's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub dry_run: bool,
    pub format: String,
    pub bytes: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub counts: ImportCounts,
    pub error: Option<ImportFailure>,
    /// What the import could not read but went on without: an optional
    /// attribute's column the file lacks (`missing_optional_column`).
    #[serde(default)]
    pub warnings: Vec<ImportWarning>,
    pub links: ImportLinks,
}

/// Something an import went on without. Never quotes a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ImportWarning {
    /// `missing_optional_column`.
    pub code: String,
    /// The column of the file it concerns.
    pub column: Option<String>,
    /// The attribute it concerns.
    pub attribute: Option<String>,
    pub message: String,
}

/// One row's problem. Never quotes the cell's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RowErrorInfo {
    pub row: u64,
    pub column: Option<String>,
    pub attribute: Option<String>,
    pub code: String,
    pub message: String,
}

/// A page of a listing; pass `next_cursor` as `after` for the next one.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Progress of an import, the data of its Server-Sent Events.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ImportProgress {
    pub state: ImportState,
    pub rows_processed: u64,
    pub counts: ImportCounts,
}

/// A person as written through the API. Values are JSON strings, booleans,
/// integers, or null to clear the attribute.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonInput {
    #[serde(default)]
    pub attributes: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub roles: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncItem {
    pub external_id: String,
    #[serde(default)]
    pub attributes: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub roles: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    pub people: Vec<SyncItem>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SyncResult {
    pub external_id: String,
    /// created, updated, unchanged, deactivated, reactivated, or error.
    pub status: String,
    pub version: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<RowErrorInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SyncResponse {
    pub results: Vec<SyncResult>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PersonInfo {
    pub external_id: String,
    pub attributes: BTreeMap<String, serde_json::Value>,
    pub roles: Vec<String>,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
    pub on_behalf_of: Option<String>,
    pub source: String,
    /// The import source that last imported or confirmed this person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_system: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditEntryInfo {
    pub seq: i64,
    pub at: String,
    pub principal: String,
    pub on_behalf_of: Option<String>,
    pub source: String,
    pub action: String,
    pub person: Option<String>,
    pub detail: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditVerification {
    pub ok: bool,
    pub entries_verified: u64,
    /// The first broken entry, when not ok.
    pub first_bad_seq: Option<i64>,
    pub problem: Option<String>,
}

/// Body of `POST /api/v1/imports` answers (202) and `GET /api/v1/imports/{id}`.
pub type ImportAccepted = ImportInfo;

/// A new tenant key (`POST /api/v1/keys`): generated by the gateway from
/// `kind` and `algorithm`, or imported from `secret_key` (an armored
/// OpenPGP secret key or an age identity), or, for
/// `purpose = sender_verification`, an HR system's armored public key.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    /// `openpgp` or `age`; with `algorithm`, the gateway generates the key.
    #[serde(default)]
    pub kind: Option<String>,
    /// OpenPGP: `curve25519` (default), `rsa3072`, `rsa4096`; age: `x25519`.
    #[serde(default)]
    pub algorithm: Option<String>,
    /// An existing secret key to import instead of generating one.
    #[serde(default)]
    pub secret_key: Option<String>,
    /// `decryption` (default) or `sender_verification`.
    #[serde(default)]
    pub purpose: Option<String>,
    /// The sender's armored OpenPGP public key (`sender_verification`).
    #[serde(default)]
    pub public_key: Option<String>,
}

/// A tenant key as clients and admins see it: never its secret.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct KeyInfo {
    /// What clients quote as `encryption_key_id`.
    pub id: String,
    pub kind: String,
    pub algorithm: String,
    pub purpose: String,
    /// `active`, `decrypt_only` or `revoked`.
    pub state: String,
    /// The ids messages name this key by (OpenPGP key ids, age recipient).
    pub key_ids: Vec<String>,
    /// Armored OpenPGP public key or age recipient: what to encrypt to.
    pub public_key: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a client's uploads must be (docs/intake.md#intake-policies).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntakePolicyInfo {
    /// Plaintext uploads are refused before anything is read.
    #[serde(default)]
    pub require_encryption: bool,
    /// Files must be OpenPGP-signed by this sender-verification key.
    #[serde(default)]
    pub require_signed_by: Option<String>,
}

/// Registers an identity-provider issuer for login sync (docs/authentication.md#login-sync).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssuerSpec {
    /// The issuer's name within the tenant (letters, digits, `-_.`).
    pub name: String,
    /// The `iss` its tokens carry (RFC 7519 4.1.1).
    pub issuer: String,
    /// The `aud` its tokens must carry (RFC 7519 4.1.3).
    pub audience: String,
    /// Accepted JWS algorithms; default `RS256`, `ES256`, `EdDSA`. `HS256`
    /// only together with `hs256_secret`; `none` never.
    #[serde(default)]
    pub algorithms: Option<Vec<String>>,
    /// Tolerance on `exp` and `nbf`, in seconds (default 60, at most 600).
    #[serde(default)]
    pub clock_skew_seconds: Option<u64>,
    /// The issuer's JWK Set (RFC 7517 5), public keys only.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<serde_json::Value>,
    /// Or where to fetch it (`https://`, or `http://` for a loopback host).
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// How long a fetched JWK Set is kept (default 300 s).
    #[serde(default)]
    pub jwks_cache_seconds: Option<u64>,
    /// The HS256 shared secret (at least 32 bytes); stored sealed, never
    /// shown again.
    #[serde(default)]
    pub hs256_secret: Option<String>,
    /// The tenant mapping the claims go through (claims are its fields).
    pub mapping: String,
    /// The claim holding the person's roles (an array of names, or one
    /// space-separated string).
    #[serde(default)]
    pub roles_claim: Option<String>,
    /// What logins through this issuer may write.
    #[serde(default)]
    pub write_policy: WritePolicyInfo,
}

/// A registered issuer, as the admin API shows it (never its secret).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IssuerInfo {
    pub name: String,
    pub issuer: String,
    pub audience: String,
    pub algorithms: Vec<String>,
    pub clock_skew_seconds: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    pub jwks_cache_seconds: u64,
    /// Whether an HS256 secret is registered.
    pub hs256: bool,
    pub mapping: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles_claim: Option<String>,
    pub write_policy: WritePolicyInfo,
    /// How audit entries name the issuer: `issuer:<tenant>/<name>`.
    pub principal: String,
    pub created_at: DateTime<Utc>,
}

/// The answer to `POST /api/v1/effective-dates/run`: how many due
/// effective-date transitions were applied.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EffectiveDatesRun {
    pub applied: u64,
}

/// The answer to `POST /api/v1/login-sync`: which person, its version and
/// what happened (`created`, `updated`, `unchanged`, ...).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LoginSyncResult {
    pub external_id: String,
    pub version: i64,
    pub change: String,
    /// The issuer's name.
    pub issuer: String,
}

// ---- change events and subscriptions (docs/events.md) ----------------------------

/// One attribute's new value in a change event; `null`: cleared. `roles`
/// is the sorted role set.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AttributeChange {
    pub attribute: String,
    pub value: serde_json::Value,
}

/// What changed, and by whose hand.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChangeEventData {
    pub external_id: String,
    /// The person's version after this change.
    pub version: i64,
    /// `import:<id>`, `api`, `login-sync`, ...
    pub source: String,
    pub principal: String,
    pub on_behalf_of: Option<String>,
    pub changes: Vec<AttributeChange>,
}

/// A change event: the body of a webhook delivery and an item of
/// `GET /api/v1/changes`. Shaped as a Standard Webhooks payload
/// (`type`, `timestamp`, `data`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChangeEventInfo {
    /// Stable across redeliveries (also the `webhook-id`).
    pub id: String,
    /// Per tenant, increasing.
    pub cursor: i64,
    #[serde(rename = "type")]
    pub kind: String,
    pub timestamp: String,
    pub data: ChangeEventData,
}

/// A page of the change feed; `next_cursor` is always set: pass it as
/// `after` to continue (also when the page was empty).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChangesPage {
    pub items: Vec<ChangeEventInfo>,
    pub next_cursor: String,
}

/// Where a subscription's events go (docs/events.md#subscription-kinds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionKind {
    /// Signed HTTP POSTs to a receiver (Standard Webhooks).
    #[default]
    Webhook,
    /// Messages published to a NATS JetStream stream, acknowledged.
    Nats,
    /// Users and Groups provisioned into the application's own SCIM 2.0
    /// service provider (docs/provisioning.md).
    Scim,
}

impl SubscriptionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Nats => "nats",
            Self::Scim => "scim",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "webhook" => Some(Self::Webhook),
            "nats" => Some(Self::Nats),
            "scim" => Some(Self::Scim),
            _ => None,
        }
    }
}

/// How a `nats` subscription authenticates to its server; one of the
/// three (none: the server takes anonymous clients).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NatsCredentials {
    /// A server token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// The text of a `.creds` file (a user JWT and its NKey seed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creds: Option<String>,
}

impl std::fmt::Debug for NatsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsCredentials")
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("user", &self.user.as_ref().map(|_| "[redacted]"))
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("creds", &self.creds.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// How a `scim` subscription authenticates to its target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScimAuth {
    /// `Authorization: Bearer` with the target's long-lived token.
    #[default]
    Bearer,
    /// OAuth 2.0 client credentials (RFC 6749 section 4.4) at
    /// `token_url`; the token is fetched and renewed as it expires.
    Oauth,
    /// HTTP Basic (RFC 7617) with `username` and the sealed password.
    Basic,
    /// Nothing (a target that trusts its network).
    None,
}

/// Which attribute finds a person's User on the target before one is
/// created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum ScimMatch {
    #[default]
    #[serde(rename = "userName")]
    UserName,
    #[serde(rename = "externalId")]
    ExternalId,
}

/// How a changed User is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScimUpdate {
    /// PATCH with only what changed.
    #[default]
    Patch,
    /// PUT of the whole User, for targets that need it.
    Put,
}

/// What a 404 on an update means: the User was deleted on the target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScimOnMissing {
    /// Look it up again (it may have a new id), create it if absent.
    #[default]
    Rematch,
    /// Create it again at once.
    Recreate,
}

/// What leaving (terminated, or out of scope) does to a User.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScimDeprovision {
    /// `active: false`.
    #[default]
    Deactivate,
    /// DELETE the User.
    Delete,
}

/// What a reconcile does with Users on the target that no person is
/// linked to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScimExtraUsers {
    /// List them in the report, change nothing.
    #[default]
    Report,
    /// Deactivate them (`active: false`).
    Deactivate,
}

/// Which people go to a target; each list empty means all. A person is
/// in scope when every non-empty condition holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScimScope {
    /// `employment_status` values (`active`, `leave`, ...). Terminated
    /// people are never provisioned active, whatever this says.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statuses: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub departments: Vec<String>,
    /// The person holds at least one of these roles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// A SCIM filter (RFC 7644 section 3.4.2.2) on the User as it would
    /// be sent, e.g. `title sw "Eng"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

/// A `scim` subscription's settings (docs/provisioning.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ScimTarget {
    pub auth: ScimAuth,
    /// `basic`: the user name (the password is sealed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// `oauth`: the target's token endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    /// `oauth`: the client id (the secret is sealed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// `oauth`: the scope to ask for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oauth_scope: Option<String>,
    #[serde(rename = "match")]
    pub match_on: ScimMatch,
    pub update: ScimUpdate,
    pub on_missing: ScimOnMissing,
    pub deprovision: ScimDeprovision,
    /// Roles become Groups on the target, created on demand.
    pub groups: bool,
    /// Overrides of the default attribute mapping: a SCIM path
    /// (`title`, `name.givenName`, `emails[type eq "work"].value`,
    /// `urn:...:enterprise:2.0:User:department`) to an expression over
    /// the person (`job_title`, `lower(email)`, `join(" ", given_name,
    /// family_name)`, `coalesce(a, b)`, `"text"`), or `null` to send
    /// nothing for that path.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub mapping: std::collections::BTreeMap<String, Option<String>>,
    pub scope: ScimScope,
    /// Requests in flight to the target at once (1 to 32).
    pub concurrency: u32,
    /// Most requests a second to the target (0: no limit).
    pub rate_per_second: u32,
    pub extra_users: ScimExtraUsers,
}

impl Default for ScimTarget {
    fn default() -> Self {
        ScimTarget {
            auth: ScimAuth::Bearer,
            username: None,
            token_url: None,
            client_id: None,
            oauth_scope: None,
            match_on: ScimMatch::UserName,
            update: ScimUpdate::Patch,
            on_missing: ScimOnMissing::Rematch,
            deprovision: ScimDeprovision::Deactivate,
            groups: true,
            mapping: Default::default(),
            scope: ScimScope::default(),
            concurrency: 4,
            rate_per_second: 25,
            extra_users: ScimExtraUsers::Report,
        }
    }
}

/// A `scim` subscription's secret: the one its `auth` needs.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScimSecret {
    /// `bearer`: the target's token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// `basic`: the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// `oauth`: the client secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

impl std::fmt::Debug for ScimSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = |v: &Option<String>| v.as_ref().map(|_| "[redacted]");
        f.debug_struct("ScimSecret")
            .field("token", &r(&self.token))
            .field("password", &r(&self.password))
            .field("client_secret", &r(&self.client_secret))
            .finish()
    }
}

/// Where provisioning into a target stands.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProvisioningState {
    /// The people who were there before the subscription are being
    /// provisioned first.
    pub backfilling: bool,
    /// Since when the target is quarantined (tried only hourly, then
    /// daily, until a request succeeds), and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantined_since: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine_reason: Option<String>,
    /// Why provisioning the people already there last failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill_error: Option<String>,
}

/// What a reconcile found and did (or, dry, would do). People are named
/// by external id; Users only Muster does not know by their target id.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct ReconcileReport {
    pub dry_run: bool,
    /// Users read from the target.
    pub target_users: u64,
    /// People in scope.
    pub in_scope: u64,
    /// Created on the target (absent there).
    pub created: Vec<String>,
    /// Found on the target by the match attribute and linked.
    pub linked: Vec<String>,
    /// Whose User differed; with the SCIM paths that did.
    pub updated: Vec<ReconcileChange>,
    /// Active on the target though they should not be.
    pub deactivated: Vec<String>,
    /// Group memberships added or removed.
    pub memberships: u64,
    /// Users on the target no person is linked to (target ids).
    pub extra: Vec<String>,
    /// Whether `extra` were deactivated.
    pub extra_deactivated: bool,
    /// People that could not be fixed, with why (no values).
    pub failed: Vec<ReconcileFailure>,
}

/// A person a reconcile could not fix.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct ReconcileFailure {
    pub external_id: String,
    /// What the target answered (a status and SCIM error type, no value).
    pub error: String,
}

/// A person whose User differed, and the SCIM paths that did.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct ReconcileChange {
    pub external_id: String,
    pub paths: Vec<String>,
}

/// A new subscription.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionSpec {
    /// `webhook` (the default) or `nats`.
    #[serde(default)]
    pub kind: SubscriptionKind,
    /// A webhook's `https://...` (or `http://` to private destinations
    /// where allowed); a NATS server's `tls://host:4222` (or `nats://`,
    /// without TLS, to private destinations where allowed).
    pub url: String,
    /// `nats`: the first tokens of every subject (default `muster`); an
    /// event goes to `<prefix>.<tenant>.<event type>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_prefix: Option<String>,
    /// `nats`: how to authenticate to the server; sealed at rest, never
    /// shown again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<NatsCredentials>,
    /// `scim`: the target's settings (the `url` is its SCIM base URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scim: Option<ScimTarget>,
    /// `scim`: the secret its `auth` needs; sealed, never shown again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scim_secret: Option<ScimSecret>,
    /// Event names; default: all.
    #[serde(default)]
    pub events: Vec<String>,
    /// The attributes its payloads may carry (`roles` for the role set,
    /// `*` for all). Required: data minimisation is explicit.
    pub attributes: Vec<String>,
    /// Deliver events from now on (default), or from the tenant's first.
    #[serde(default)]
    pub from_beginning: bool,
}

/// A change to a subscription; absent fields stay.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionPatch {
    pub url: Option<String>,
    /// `nats` only.
    pub subject_prefix: Option<String>,
    /// `nats` only: replaces the stored credentials.
    pub credentials: Option<NatsCredentials>,
    /// `scim` only: replaces the settings.
    pub scim: Option<ScimTarget>,
    /// `scim` only: replaces the stored secret.
    pub scim_secret: Option<ScimSecret>,
    pub events: Option<Vec<String>>,
    pub attributes: Option<Vec<String>>,
    /// `active` (re-enables, e.g. after a 410) or `disabled`.
    pub state: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SubscriptionInfo {
    pub id: String,
    #[serde(default)]
    pub kind: SubscriptionKind,
    pub url: String,
    /// `nats`: the subjects' first tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_prefix: Option<String>,
    /// `scim`: the target's settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scim: Option<ScimTarget>,
    /// `scim`: where provisioning stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning: Option<ProvisioningState>,
    pub events: Vec<String>,
    pub attributes: Vec<String>,
    /// The client that made it and manages it; absent for an
    /// administrator's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// `active` or `disabled`.
    pub state: String,
    pub disabled_reason: Option<String>,
    /// Every event up to this cursor is done with.
    pub cursor: i64,
    /// Failed attempts at the next event.
    pub attempt: u32,
    pub next_attempt_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Until when the previous secret still signs (rotation overlap).
    pub previous_secret_until: Option<chrono::DateTime<chrono::Utc>>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// A subscription and (a webhook's) signing secret, shown this once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SubscriptionCreated {
    pub subscription: SubscriptionInfo,
    /// A webhook's `whsec_` + base64 of 32 random bytes; absent for a
    /// `nats` subscription, which signs nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookSecretRotate {
    /// How long the old secret keeps signing too (default: a day).
    pub overlap_seconds: Option<u64>,
}

/// Manual redelivery: one event (by id or cursor) or a cursor range.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeliverRequest {
    pub event_id: Option<String>,
    pub from_cursor: Option<i64>,
    /// Inclusive; default: `from_cursor`.
    pub to_cursor: Option<i64>,
}

/// One delivery attempt.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeliveryInfo {
    pub seq: i64,
    pub event_id: String,
    pub cursor: i64,
    pub attempt: u32,
    pub at: chrono::DateTime<chrono::Utc>,
    /// The receiver's status, when it answered.
    pub status: Option<u16>,
    /// `delivered`, `failed`, `dead` or `gone`.
    pub outcome: String,
    pub error: Option<String>,
    pub manual: bool,
}
