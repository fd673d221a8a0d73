//! The catalogue of machine-readable error codes the gateway answers with:
//! the `code` of an RFC 9457 problem document, of a row error and of an
//! import's rejection, the `error` of an OAuth 2.0 error (RFC 6749 5.2),
//! and the refusal reasons of login sync and of signed requests (RFC 9421).
//! Each code is one variant whose wire string is [`ErrorCode::as_str`];
//! the same string may serve several families (`invalid_key` is both a
//! row error and a 422 problem), and the variant's documentation says what
//! it means in each. The tables with statuses are in `docs/errors.md`.
//!
//! Programs should match on these codes, never on the human-readable
//! `detail`. New codes may be added, so a client should treat a code it
//! does not know by its HTTP status.
use serde::{Deserialize, Serialize};
use std::fmt;
use utoipa::ToSchema;

/// A machine-readable error code, serialized as its wire string.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// Problem, 400: a query parameter is malformed or out of range
    /// (`limit`, `after`, `wait`, `mode`, `format`, `delimiter`, a boolean
    /// that is not `true`/`false`, a parameter given twice). The detail
    /// names it.
    ///
    /// To do: fix the parameter the detail names and send again.
    InvalidParameter,
    /// Problem, 400: a header is malformed: `On-Behalf-Of` (1 to 256
    /// printable ASCII characters) or `Idempotency-Key` (1 to 255).
    ///
    /// To do: fix the header the detail names.
    InvalidHeader,
    /// Problem, 400: the JSON body does not parse or does not have the
    /// expected shape; the detail names the path, line and column.
    ///
    /// To do: fix the body; the OpenAPI document at `/openapi.json` has its
    /// schema.
    InvalidBody,
    /// Problem, 400: a mapping document is not UTF-8 text.
    ///
    /// To do: send the mapping as UTF-8.
    InvalidEncoding,
    /// Problem, 400: a mapping name is not 1 to 64 letters, digits, `-`,
    /// `_` or `.`.
    ///
    /// To do: use a valid name.
    InvalidMappingName,
    /// Problem, 400: the request body ended before its declared length.
    ///
    /// To do: send the request again; check proxies in between.
    BodyInterrupted,
    /// Problem, 400: an upload ended before the body was complete; nothing
    /// was kept and no import exists.
    ///
    /// To do: send the file again with the same `Idempotency-Key`.
    UploadInterrupted,
    /// Problem, 401: the bearer token is missing, unknown, expired, revoked
    /// or (for a `one_time` token) already used; also a signature sent to a
    /// route that does not take one.
    ///
    /// To do: fetch a new token at `/oauth2/token` and retry once; a second
    /// refusal is not transient.
    InvalidToken,
    /// Problem, 403: the credential lacks the permission the route needs;
    /// the detail names it.
    ///
    /// To do: use a client whose role has the permission, or a token whose
    /// `scope` includes it.
    Forbidden,
    /// Problem, 404: no such resource in the caller's tenant (another
    /// tenant's ids answer the same).
    ///
    /// To do: check the id and the tenant of the credential.
    NotFound,
    /// Problem, 408: a request body sent nothing for
    /// `limits.body_read_timeout_seconds`, or averaged under
    /// `limits.min_upload_bytes_per_second`.
    ///
    /// To do: send again from a faster link; an operator may lower the
    /// minimum rate.
    BodyTooSlow,
    /// Problem, 408: an upload arrived too slowly (as `body_too_slow`);
    /// nothing was kept.
    ///
    /// To do: send the file again with the same `Idempotency-Key`.
    UploadTooSlow,
    /// Problem, 409: the request contradicts stored state: a name or id
    /// already taken, a key the tenant already holds, a revoked key to be
    /// revived, a retirement of the previous master key while it is still
    /// needed.
    ///
    /// To do: read the detail; change the request or wait for the state it
    /// names.
    Conflict,
    /// Problem, 413: the body is larger than the route allows
    /// (`limits.max_unauthenticated_body_bytes` before authentication,
    /// `limits.max_json_bytes`, `limits.max_upload_bytes`,
    /// `limits.max_sync_items`).
    ///
    /// To do: send less: split the batch, or ask the operator about the
    /// limit.
    PayloadTooLarge,
    /// Problem, 415: the `Content-Type` is not one the route reads
    /// (`application/json`; for uploads `text/csv`, `application/x-ndjson`,
    /// or `application/octet-stream` with `format=`; for mappings
    /// `application/toml` or `application/json`).
    ///
    /// To do: send the body with the right media type.
    UnsupportedMediaType,
    /// Problem, 422: the declared `encryption=` contradicts what the
    /// upload's first bytes show; nothing was kept.
    ///
    /// To do: declare the encryption the file really has, or leave it out.
    EncryptionMismatch,
    /// As a problem (422): the client's intake policy requires encrypted
    /// uploads and this one is plaintext; refused before anything was kept.
    /// To do: encrypt the file to one of the tenant's keys (`GET
    /// /api/v1/keys`; `muster push --encrypt`).
    ///
    /// As an import rejection: the client must encrypt its uploads and this
    /// one is plaintext. To do: encrypt the file to a tenant key.
    EncryptionRequired,
    /// Problem, 422: the client's intake policy requires OpenPGP messages
    /// signed by a sender key, and this upload is not OpenPGP.
    ///
    /// To do: sign and encrypt the file with OpenPGP (age has no
    /// signatures).
    SignatureRequired,
    /// Problem, 422: `mode=snapshot` deactivates people by writing
    /// `employment_status`, which the client's write policy does not allow.
    ///
    /// To do: use `mode=upsert`, or have an administrator add
    /// `employment_status` to the write policy.
    SnapshotNotPermitted,
    /// Problem, 422: the `mapping` parameter names no mapping of the
    /// tenant.
    ///
    /// To do: store the mapping first (`PUT /api/v1/mappings/{name}`) or
    /// fix the name.
    UnknownMapping,
    /// As a problem (422): a mapping document does not compile (an unknown
    /// option, a bad regular expression, a custom attribute without a type,
    /// ...); the detail says where. To do: fix the document; see
    /// docs/mapping.md.
    ///
    /// As an import rejection: the mapping cannot be applied to this file.
    /// To do: fix the mapping.
    InvalidMapping,
    /// Problem, 422: a chosen `client_id` is not a valid client id.
    ///
    /// To do: choose another id, or leave it out and let the gateway
    /// choose.
    InvalidClientId,
    /// Problem, 422: a tenant id is not 1 to 64 lowercase letters, digits,
    /// `-` or `_`.
    ///
    /// To do: choose a valid id.
    InvalidTenantId,
    /// Problem, 422: a login-sync issuer registration is not acceptable
    /// (`alg` list with `none`, `HS256` without a secret, a skew over 600
    /// s, a JWK Set with private or unusable keys, a `jwks_url` the
    /// outbound rule refuses, ...).
    ///
    /// To do: fix the field the detail names.
    InvalidIssuer,
    /// As a problem (422): a key sent to the gateway is not usable: a
    /// client's Ed25519 public key or JWK Set (private members and
    /// symmetric keys are refused), a tenant key to import, a sender public
    /// key, or a `require_signed_by` that names a key of the wrong purpose
    /// or a revoked one. To do: send a public key of a supported kind; the
    /// detail says what was wrong.
    ///
    /// As a row error: the key is not a valid external id (1 to 256 bytes,
    /// no control characters or `/`, no leading or trailing white space).
    /// To do: fix the id in the source.
    InvalidKey,
    /// Problem, 422: a request for a tenant key mixes what cannot go
    /// together (a `public_key` for a decryption key, a `secret_key` with
    /// `kind`/`algorithm`, an unknown kind or algorithm).
    ///
    /// To do: ask for one thing: generate (`kind`, `algorithm`), import
    /// (`secret_key`) or register a sender key (`public_key`).
    InvalidKeySpec,
    /// As a problem (422): an intake policy's `require_signed_by` names no
    /// key of the tenant. To do: register the sender key first (`purpose:
    /// sender_verification`), then name its id.
    ///
    /// As a signature refusal (401): (Audit only.) The `keyid` names no
    /// client with a signing key; the answer is `bad_signature`. To do: as
    /// for `bad_signature`.
    UnknownKey,
    /// Problem, 422: an admin token's `lifetime_seconds` is under 60 or
    /// over `tokens.admin_max_ttl_seconds`.
    ///
    /// To do: ask for a lifetime in range.
    InvalidLifetime,
    /// Problem, 422: an admin token's name is not 1 to 64 characters
    /// without control characters.
    ///
    /// To do: choose a valid name.
    InvalidName,
    /// Problem, 422: an `overlap_seconds` for a secret or key rotation is
    /// over 30 days.
    ///
    /// To do: ask for at most 2592000 seconds.
    InvalidOverlap,
    /// As a problem (422): a client's `role` is not one of the built-in
    /// roles (`importer`, `syncer`, `reader`, `auditor`, `admin`). To do:
    /// use a built-in role; see docs/people.md.
    ///
    /// As a row error: a role name is not 1 to 64 letters, digits or `_.:-`
    /// (or a `roles` claim has the wrong shape). To do: fix the role names,
    /// or the mapping's `split`.
    InvalidRole,
    /// Problem, 422: a client's `token_ttl_seconds` is not between 1 and
    /// 86400.
    ///
    /// To do: ask for a lifetime in range.
    InvalidTtl,
    /// Problem, 422: a write policy names something that is not an
    /// attribute or role name.
    ///
    /// To do: fix the name the detail quotes.
    InvalidWritePolicy,
    /// Problem, 422: a subscription is not acceptable: an unknown event
    /// name, no attributes listed, a URL the outbound rule refuses, a state
    /// other than `active`/`disabled`.
    ///
    /// To do: fix the field the detail names.
    InvalidSubscription,
    /// Problem, 422: a redelivery request gives neither an `event_id` nor a
    /// valid `from_cursor` (at least 1) and optional `to_cursor` (at least
    /// `from_cursor`).
    ///
    /// To do: give one of the two forms.
    InvalidRedelivery,
    /// Problem, 422: a single write (`PUT /api/v1/people/{id}`, login sync)
    /// was not applied; `errors` holds its row errors.
    ///
    /// To do: fix what the row errors name.
    InvalidPerson,
    /// Problem, 422: a login-sync token maps to attributes or roles outside
    /// the issuer's write policy; `errors` names each one and the issuer.
    /// Nothing was written.
    ///
    /// To do: change the issuer's mapping or its write policy.
    NotPermitted,
    /// As a problem (500): the gateway could not complete the request; the
    /// cause is in its log, never in the answer. To do: retry later; if it
    /// persists, give the operator the time of the request.
    ///
    /// As an import rejection: the import failed (state `failed`) for a
    /// reason on the gateway's side; the cause is in its log. To do: retry
    /// the import; if it persists, tell the operator.
    Internal,
    /// Problem, 503: the gateway cannot reach its database.
    ///
    /// To do: retry with backoff; `/readyz` says when it is back.
    Unavailable,
    /// Row error: the key column (or field) is empty or absent.
    ///
    /// To do: give every record its external id.
    MissingKey,
    /// Row error: the same external id appears earlier in the file or
    /// batch; the first one applies.
    ///
    /// To do: remove the duplicate from the export.
    DuplicateKey,
    /// Row error: a `required` attribute is empty.
    ///
    /// To do: fill the column, or give the mapping a `default`.
    Required,
    /// Row error: the value is not in the attribute's `values` map.
    ///
    /// To do: add the value to the map, or set `values_passthrough`.
    UnmappedValue,
    /// Row error: the value is not a date (in the mapping's `date_format`,
    /// or `YYYY-MM-DD`).
    ///
    /// To do: fix the value or the `date_format`.
    InvalidDate,
    /// Row error: the value is not an e-mail address.
    ///
    /// To do: fix the value in the source.
    InvalidEmail,
    /// Row error: the value is not one of the attribute's allowed values
    /// (`employment_status`, a custom `enum`).
    ///
    /// To do: map it with `values`, or fix the source.
    InvalidEnum,
    /// Row error: the value is not a boolean.
    ///
    /// To do: use `true`/`false` (or map it with `values`).
    InvalidBool,
    /// Row error: the value is not a whole number.
    ///
    /// To do: fix the value in the source.
    InvalidInteger,
    /// Row error: the value does not match the attribute's `pattern`.
    ///
    /// To do: fix the value, or the pattern.
    PatternMismatch,
    /// Row error: a value is over 1024 bytes.
    ///
    /// To do: shorten it in the source.
    ValueTooLong,
    /// Row error: a value holds control characters.
    ///
    /// To do: clean the value in the source.
    InvalidCharacters,
    /// Row error: a CSV row has a different number of fields from the
    /// header.
    ///
    /// To do: fix the export (quoting, delimiter).
    RaggedRow,
    /// Row error: a line is not valid UTF-8.
    ///
    /// To do: export as UTF-8.
    InvalidUtf8,
    /// Row error: a JSON-lines line is not valid JSON.
    ///
    /// To do: fix the line.
    InvalidJson,
    /// Row error: a JSON-lines line is JSON but not an object.
    ///
    /// To do: give one object per line.
    NotAnObject,
    /// Row error: a JSON record lacks a field the mapping requires.
    ///
    /// To do: add the field, or make it optional.
    MissingField,
    /// Row error: a JSON value has the wrong type (the key must be text; an
    /// attribute a string, boolean, number or `null`).
    ///
    /// To do: send the value with the expected type.
    InvalidType,
    /// Row error: `roles` was sent as an attribute; roles go in the `roles`
    /// list.
    ///
    /// To do: move the roles into `roles`.
    InvalidAttribute,
    /// Row error: the name is neither a core attribute nor a valid custom
    /// attribute name.
    ///
    /// To do: fix the name; see docs/people.md.
    UnknownAttribute,
    /// Row error: the writer's write policy does not allow this attribute;
    /// the message names the attribute and the client or issuer. The row is
    /// not applied.
    ///
    /// To do: drop the attribute from the mapping, or extend the write
    /// policy.
    AttributeNotPermitted,
    /// Row error: the writer's write policy does not allow granting this
    /// role; the message names the role and the client or issuer. The row
    /// is not applied.
    ///
    /// To do: drop the role, or extend the write policy.
    RoleNotPermitted,
    /// Row error: `manager_external_id` names nobody in the file (or
    /// request) or the store, or a manager whose own row failed.
    ///
    /// To do: include the manager, or fix the reference.
    UnknownManager,
    /// Row error: a person names themself as their manager.
    ///
    /// To do: fix the reference in the source.
    SelfManager,
    /// Import rejection: the file has no header row and no records.
    ///
    /// To do: check the export.
    EmptyFile,
    /// Import rejection: the file cannot be read as its format: an
    /// over-long line, too many fields, a broken CSV record, an invalid
    /// header (not UTF-8, an empty or duplicated name), an invalid
    /// delimiter.
    ///
    /// To do: fix the export; the message says where.
    InvalidFormat,
    /// Import rejection: the header lacks columns the mapping requires.
    ///
    /// To do: export the columns, or map them with `header_map`.
    MissingColumns,
    /// Import rejection: more rows failed than the mapping's
    /// `max_error_rate` allows; nothing was applied.
    ///
    /// To do: fix the rows listed at `/errors`, then import again.
    TooManyRowErrors,
    /// Import rejection: a snapshot would deactivate more than the allowed
    /// share of the source's people; nothing was applied.
    ///
    /// To do: check the file is complete; if the departures are real, send
    /// again with `allow_mass_deactivation=true` or a higher
    /// `max_deactivate_percent`.
    MassDeactivation,
    /// Import rejection: the upload was to be decrypted but has no OpenPGP
    /// or age header.
    ///
    /// To do: encrypt the file, or do not declare encryption.
    NotEncrypted,
    /// Import rejection: the file is encrypted to none of the tenant's
    /// usable keys; the message names the key ids it was encrypted to.
    ///
    /// To do: encrypt to a current key (`GET /api/v1/keys`).
    NoMatchingKey,
    /// Import rejection: the file is encrypted only to a revoked key.
    ///
    /// To do: encrypt to a current key.
    KeyRevoked,
    /// Import rejection: the encrypted file was altered or truncated.
    ///
    /// To do: send the file again; if it persists, check the transfer.
    IntegrityFailure,
    /// Import rejection: an OpenPGP message without integrity protection
    /// (SED packets).
    ///
    /// To do: encrypt with a current GnuPG (integrity-protected).
    LegacyEncryption,
    /// Import rejection: the compressed content expands past
    /// `limits.max_decompressed_bytes` or `limits.max_decompression_ratio`.
    ///
    /// To do: send an uncompressed or smaller file.
    DecompressionBomb,
    /// Import rejection: the OpenPGP or age container is damaged.
    ///
    /// To do: encrypt the file again.
    MalformedEncryption,
    /// Import rejection: the file uses an algorithm or packet the gateway
    /// does not support.
    ///
    /// To do: encrypt with the defaults of GnuPG or age.
    UnsupportedEncryption,
    /// Import rejection: the client must sign its uploads and this one is
    /// not signed (or is age, which cannot be).
    ///
    /// To do: sign the file with the registered sender key.
    SignatureMissing,
    /// Import rejection: the file is signed, but not by the sender key the
    /// intake policy names.
    ///
    /// To do: sign with the registered key, or register the new one.
    SignatureWrongKey,
    /// Import rejection: the file's signature does not verify.
    ///
    /// To do: sign the file again.
    SignatureInvalid,
    /// OAuth error, 400: the request is malformed (a missing `grant_type`,
    /// a parameter twice, several client authentication methods); also 413
    /// or 408 with this code when the body is too large or too slow.
    ///
    /// To do: fix the request.
    InvalidRequest,
    /// OAuth error, 401: client authentication failed: unknown client,
    /// wrong secret, a `client_assertion` that does not verify, a disabled
    /// client.
    ///
    /// To do: check the credentials; do not retry in a loop (failures are
    /// slowed down).
    InvalidClient,
    /// OAuth error, 400: a scope names an unknown permission, one the
    /// client's role lacks, or is empty.
    ///
    /// To do: ask only for permissions of the client's role.
    InvalidScope,
    /// OAuth error, 400: a `grant_type` other than `client_credentials`.
    ///
    /// To do: use `grant_type=client_credentials`.
    UnsupportedGrantType,
    /// OAuth error, 500: the gateway could not issue the token; the cause
    /// is in its log.
    ///
    /// To do: retry later.
    ServerError,
    /// OAuth error, 429: too many token requests from this address or
    /// client (`limits.token_requests_per_second`); `Retry-After` says when
    /// to retry. Not an RFC 6749 code.
    ///
    /// To do: wait for `Retry-After`; reuse `ttl` tokens instead of
    /// fetching one per request.
    TooManyRequests,
    /// Login-sync refusal, 401: no `Authorization: Bearer` JWT.
    ///
    /// To do: send the IdP's JWT.
    MissingToken,
    /// Login-sync refusal, 401: not a JWS compact serialization with JSON
    /// claims (or a JWE, or a `crit` header).
    ///
    /// To do: send the ID or access token as the IdP issued it.
    MalformedToken,
    /// Login-sync refusal, 401: an unsecured JWT (`alg: none`); never
    /// accepted.
    ///
    /// To do: have the IdP sign its tokens.
    AlgNone,
    /// Login-sync refusal, 401: `iss` names no issuer of the route's tenant
    /// (also: the tenant does not exist).
    ///
    /// To do: register the issuer in the tenant, or call the tenant's own
    /// route.
    UnknownIssuer,
    /// Login-sync refusal, 401: `aud` does not name the issuer's registered
    /// audience.
    ///
    /// To do: fix the audience at the IdP or in the registration.
    WrongAudience,
    /// Login-sync refusal, 401: the token's `alg` is not in the issuer's
    /// accepted list.
    ///
    /// To do: add the algorithm to the issuer, or change the IdP's signing
    /// algorithm.
    AlgNotAllowed,
    /// Login-sync refusal, 401: an HS256 token for an issuer without a
    /// shared secret.
    ///
    /// To do: register the secret, or use an asymmetric algorithm.
    Hs256NotConfigured,
    /// Login-sync refusal, 401: the issuer's JWK Set could not be fetched
    /// (or was fetched too recently to try again).
    ///
    /// To do: retry after a few seconds; check the `jwks_url` is reachable.
    JwksUnavailable,
    /// Login-sync refusal, 401: no key of the issuer matches the token's
    /// `kid` and `alg`.
    ///
    /// To do: upload the IdP's current keys, or wait for the cached set to
    /// refresh.
    UnknownKid,
    /// As a login-sync refusal (401): the token's signature does not
    /// verify. To do: check the issuer's keys; the token may be forged.
    ///
    /// As a signature refusal (401): the signature does not verify (also an
    /// unknown `keyid`, a client without a key, a key of the other
    /// algorithm). To do: check the key, the covered components and the
    /// target URI (`public_url`).
    BadSignature,
    /// Login-sync refusal, 401: `exp`, `sub` or `jti` is missing.
    ///
    /// To do: have the IdP include them.
    MissingClaim,
    /// Login-sync refusal, 401: `exp` has passed (beyond the issuer's clock
    /// skew).
    ///
    /// To do: send a fresh token.
    TokenExpired,
    /// Login-sync refusal, 401: `nbf` or `iat` is in the future (beyond the
    /// skew).
    ///
    /// To do: check the clocks of the IdP and the gateway.
    TokenNotYetValid,
    /// Login-sync refusal, 401: this token's `jti` was already used.
    ///
    /// To do: send each token once.
    JtiReplayed,
    /// Signature refusal, 401: no signature with the expected label.
    ///
    /// To do: sign the request (RFC 9421).
    MissingSignature,
    /// Signature refusal, 401: the `Signature`/`Signature-Input` fields do
    /// not parse, or the nonce is not 1 to 128 characters.
    ///
    /// To do: fix the signer.
    Malformed,
    /// Signature refusal, 401: the signature has no `keyid`.
    ///
    /// To do: set `keyid` to the client id.
    MissingKeyid,
    /// Signature refusal, 401: (Audit only.) The `alg` does not fit the
    /// client's key; the answer is `bad_signature`.
    ///
    /// To do: as for `bad_signature`.
    AlgMismatch,
    /// Signature refusal, 401: `created` is more than 300 s in the past.
    ///
    /// To do: sign each request just before sending; check the clock.
    Expired,
    /// Signature refusal, 401: `created` is more than 300 s in the future.
    ///
    /// To do: check the client's clock.
    CreatedInFuture,
    /// Signature refusal, 401: the signature has no `created` parameter.
    ///
    /// To do: include `created`.
    MissingCreated,
    /// Signature refusal, 401: the signature has no `nonce` parameter.
    ///
    /// To do: include a fresh `nonce`.
    MissingNonce,
    /// Signature refusal, 401: a required component (`@method`,
    /// `@target-uri`, `content-digest` with a body) is not covered.
    ///
    /// To do: cover the components the detail names.
    MissingComponent,
    /// Signature refusal, 401: a covered component is absent from the
    /// request.
    ///
    /// To do: send the header you signed.
    ComponentUnavailable,
    /// Signature refusal, 401: a covered component is not supported.
    ///
    /// To do: cover only supported components.
    UnsupportedComponent,
    /// Signature refusal, 401: `Content-Digest` does not match the body; an
    /// upload is discarded.
    ///
    /// To do: compute the digest over the exact bytes sent.
    DigestMismatch,
    /// Signature refusal, 401: `Content-Digest` uses no supported algorithm
    /// (sha-256, sha-512).
    ///
    /// To do: use sha-256.
    UnsupportedDigest,
    /// Signature refusal, 401: the nonce was already used by this client.
    ///
    /// To do: use a fresh nonce per request.
    NonceReused,
    /// Signature refusal, 401: the signing client is disabled.
    ///
    /// To do: ask an administrator to enable it.
    ClientDisabled,
    /// Signature refusal, 401: the request carries both a signature and an
    /// `Authorization` header.
    ///
    /// To do: send one credential.
    MultipleCredentials,
}

impl ErrorCode {
    /// Every code, in catalogue order.
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::InvalidParameter,
        ErrorCode::InvalidHeader,
        ErrorCode::InvalidBody,
        ErrorCode::InvalidEncoding,
        ErrorCode::InvalidMappingName,
        ErrorCode::BodyInterrupted,
        ErrorCode::UploadInterrupted,
        ErrorCode::InvalidToken,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::BodyTooSlow,
        ErrorCode::UploadTooSlow,
        ErrorCode::Conflict,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::EncryptionMismatch,
        ErrorCode::EncryptionRequired,
        ErrorCode::SignatureRequired,
        ErrorCode::SnapshotNotPermitted,
        ErrorCode::UnknownMapping,
        ErrorCode::InvalidMapping,
        ErrorCode::InvalidClientId,
        ErrorCode::InvalidTenantId,
        ErrorCode::InvalidIssuer,
        ErrorCode::InvalidKey,
        ErrorCode::InvalidKeySpec,
        ErrorCode::UnknownKey,
        ErrorCode::InvalidLifetime,
        ErrorCode::InvalidName,
        ErrorCode::InvalidOverlap,
        ErrorCode::InvalidRole,
        ErrorCode::InvalidTtl,
        ErrorCode::InvalidWritePolicy,
        ErrorCode::InvalidSubscription,
        ErrorCode::InvalidRedelivery,
        ErrorCode::InvalidPerson,
        ErrorCode::NotPermitted,
        ErrorCode::Internal,
        ErrorCode::Unavailable,
        ErrorCode::MissingKey,
        ErrorCode::DuplicateKey,
        ErrorCode::Required,
        ErrorCode::UnmappedValue,
        ErrorCode::InvalidDate,
        ErrorCode::InvalidEmail,
        ErrorCode::InvalidEnum,
        ErrorCode::InvalidBool,
        ErrorCode::InvalidInteger,
        ErrorCode::PatternMismatch,
        ErrorCode::ValueTooLong,
        ErrorCode::InvalidCharacters,
        ErrorCode::RaggedRow,
        ErrorCode::InvalidUtf8,
        ErrorCode::InvalidJson,
        ErrorCode::NotAnObject,
        ErrorCode::MissingField,
        ErrorCode::InvalidType,
        ErrorCode::InvalidAttribute,
        ErrorCode::UnknownAttribute,
        ErrorCode::AttributeNotPermitted,
        ErrorCode::RoleNotPermitted,
        ErrorCode::UnknownManager,
        ErrorCode::SelfManager,
        ErrorCode::EmptyFile,
        ErrorCode::InvalidFormat,
        ErrorCode::MissingColumns,
        ErrorCode::TooManyRowErrors,
        ErrorCode::MassDeactivation,
        ErrorCode::NotEncrypted,
        ErrorCode::NoMatchingKey,
        ErrorCode::KeyRevoked,
        ErrorCode::IntegrityFailure,
        ErrorCode::LegacyEncryption,
        ErrorCode::DecompressionBomb,
        ErrorCode::MalformedEncryption,
        ErrorCode::UnsupportedEncryption,
        ErrorCode::SignatureMissing,
        ErrorCode::SignatureWrongKey,
        ErrorCode::SignatureInvalid,
        ErrorCode::InvalidRequest,
        ErrorCode::InvalidClient,
        ErrorCode::InvalidScope,
        ErrorCode::UnsupportedGrantType,
        ErrorCode::ServerError,
        ErrorCode::TooManyRequests,
        ErrorCode::MissingToken,
        ErrorCode::MalformedToken,
        ErrorCode::AlgNone,
        ErrorCode::UnknownIssuer,
        ErrorCode::WrongAudience,
        ErrorCode::AlgNotAllowed,
        ErrorCode::Hs256NotConfigured,
        ErrorCode::JwksUnavailable,
        ErrorCode::UnknownKid,
        ErrorCode::BadSignature,
        ErrorCode::MissingClaim,
        ErrorCode::TokenExpired,
        ErrorCode::TokenNotYetValid,
        ErrorCode::JtiReplayed,
        ErrorCode::MissingSignature,
        ErrorCode::Malformed,
        ErrorCode::MissingKeyid,
        ErrorCode::AlgMismatch,
        ErrorCode::Expired,
        ErrorCode::CreatedInFuture,
        ErrorCode::MissingCreated,
        ErrorCode::MissingNonce,
        ErrorCode::MissingComponent,
        ErrorCode::ComponentUnavailable,
        ErrorCode::UnsupportedComponent,
        ErrorCode::DigestMismatch,
        ErrorCode::UnsupportedDigest,
        ErrorCode::NonceReused,
        ErrorCode::ClientDisabled,
        ErrorCode::MultipleCredentials,
    ];

    /// The exact string the gateway sends.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidParameter => "invalid_parameter",
            ErrorCode::InvalidHeader => "invalid_header",
            ErrorCode::InvalidBody => "invalid_body",
            ErrorCode::InvalidEncoding => "invalid_encoding",
            ErrorCode::InvalidMappingName => "invalid_mapping_name",
            ErrorCode::BodyInterrupted => "body_interrupted",
            ErrorCode::UploadInterrupted => "upload_interrupted",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::BodyTooSlow => "body_too_slow",
            ErrorCode::UploadTooSlow => "upload_too_slow",
            ErrorCode::Conflict => "conflict",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::EncryptionMismatch => "encryption_mismatch",
            ErrorCode::EncryptionRequired => "encryption_required",
            ErrorCode::SignatureRequired => "signature_required",
            ErrorCode::SnapshotNotPermitted => "snapshot_not_permitted",
            ErrorCode::UnknownMapping => "unknown_mapping",
            ErrorCode::InvalidMapping => "invalid_mapping",
            ErrorCode::InvalidClientId => "invalid_client_id",
            ErrorCode::InvalidTenantId => "invalid_tenant_id",
            ErrorCode::InvalidIssuer => "invalid_issuer",
            ErrorCode::InvalidKey => "invalid_key",
            ErrorCode::InvalidKeySpec => "invalid_key_spec",
            ErrorCode::UnknownKey => "unknown_key",
            ErrorCode::InvalidLifetime => "invalid_lifetime",
            ErrorCode::InvalidName => "invalid_name",
            ErrorCode::InvalidOverlap => "invalid_overlap",
            ErrorCode::InvalidRole => "invalid_role",
            ErrorCode::InvalidTtl => "invalid_ttl",
            ErrorCode::InvalidWritePolicy => "invalid_write_policy",
            ErrorCode::InvalidSubscription => "invalid_subscription",
            ErrorCode::InvalidRedelivery => "invalid_redelivery",
            ErrorCode::InvalidPerson => "invalid_person",
            ErrorCode::NotPermitted => "not_permitted",
            ErrorCode::Internal => "internal",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::MissingKey => "missing_key",
            ErrorCode::DuplicateKey => "duplicate_key",
            ErrorCode::Required => "required",
            ErrorCode::UnmappedValue => "unmapped_value",
            ErrorCode::InvalidDate => "invalid_date",
            ErrorCode::InvalidEmail => "invalid_email",
            ErrorCode::InvalidEnum => "invalid_enum",
            ErrorCode::InvalidBool => "invalid_bool",
            ErrorCode::InvalidInteger => "invalid_integer",
            ErrorCode::PatternMismatch => "pattern_mismatch",
            ErrorCode::ValueTooLong => "value_too_long",
            ErrorCode::InvalidCharacters => "invalid_characters",
            ErrorCode::RaggedRow => "ragged_row",
            ErrorCode::InvalidUtf8 => "invalid_utf8",
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::NotAnObject => "not_an_object",
            ErrorCode::MissingField => "missing_field",
            ErrorCode::InvalidType => "invalid_type",
            ErrorCode::InvalidAttribute => "invalid_attribute",
            ErrorCode::UnknownAttribute => "unknown_attribute",
            ErrorCode::AttributeNotPermitted => "attribute_not_permitted",
            ErrorCode::RoleNotPermitted => "role_not_permitted",
            ErrorCode::UnknownManager => "unknown_manager",
            ErrorCode::SelfManager => "self_manager",
            ErrorCode::EmptyFile => "empty_file",
            ErrorCode::InvalidFormat => "invalid_format",
            ErrorCode::MissingColumns => "missing_columns",
            ErrorCode::TooManyRowErrors => "too_many_row_errors",
            ErrorCode::MassDeactivation => "mass_deactivation",
            ErrorCode::NotEncrypted => "not_encrypted",
            ErrorCode::NoMatchingKey => "no_matching_key",
            ErrorCode::KeyRevoked => "key_revoked",
            ErrorCode::IntegrityFailure => "integrity_failure",
            ErrorCode::LegacyEncryption => "legacy_encryption",
            ErrorCode::DecompressionBomb => "decompression_bomb",
            ErrorCode::MalformedEncryption => "malformed_encryption",
            ErrorCode::UnsupportedEncryption => "unsupported_encryption",
            ErrorCode::SignatureMissing => "signature_missing",
            ErrorCode::SignatureWrongKey => "signature_wrong_key",
            ErrorCode::SignatureInvalid => "signature_invalid",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TooManyRequests => "too_many_requests",
            ErrorCode::MissingToken => "missing_token",
            ErrorCode::MalformedToken => "malformed_token",
            ErrorCode::AlgNone => "alg_none",
            ErrorCode::UnknownIssuer => "unknown_issuer",
            ErrorCode::WrongAudience => "wrong_audience",
            ErrorCode::AlgNotAllowed => "alg_not_allowed",
            ErrorCode::Hs256NotConfigured => "hs256_not_configured",
            ErrorCode::JwksUnavailable => "jwks_unavailable",
            ErrorCode::UnknownKid => "unknown_kid",
            ErrorCode::BadSignature => "bad_signature",
            ErrorCode::MissingClaim => "missing_claim",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::TokenNotYetValid => "token_not_yet_valid",
            ErrorCode::JtiReplayed => "jti_replayed",
            ErrorCode::MissingSignature => "missing_signature",
            ErrorCode::Malformed => "malformed",
            ErrorCode::MissingKeyid => "missing_keyid",
            ErrorCode::AlgMismatch => "alg_mismatch",
            ErrorCode::Expired => "expired",
            ErrorCode::CreatedInFuture => "created_in_future",
            ErrorCode::MissingCreated => "missing_created",
            ErrorCode::MissingNonce => "missing_nonce",
            ErrorCode::MissingComponent => "missing_component",
            ErrorCode::ComponentUnavailable => "component_unavailable",
            ErrorCode::UnsupportedComponent => "unsupported_component",
            ErrorCode::DigestMismatch => "digest_mismatch",
            ErrorCode::UnsupportedDigest => "unsupported_digest",
            ErrorCode::NonceReused => "nonce_reused",
            ErrorCode::ClientDisabled => "client_disabled",
            ErrorCode::MultipleCredentials => "multiple_credentials",
        }
    }

    /// The code for a wire string, if the catalogue has it.
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.as_str() == code)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ErrorCode {
    type Err = UnknownErrorCode;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or(UnknownErrorCode)
    }
}

/// A string that is not a code of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownErrorCode;

impl fmt::Display for UnknownErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a Muster error code")
    }
}

impl std::error::Error for UnknownErrorCode {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Lists the variants through a `match` without a wildcard: a variant
    /// added to the enum and not here is a compile error, and one added
    /// here and not to `ALL` fails `all_holds_every_variant`.
    macro_rules! variants {
        ($($v:ident),* $(,)?) => {{
            #[allow(dead_code)]
            fn exhaustive(c: ErrorCode) {
                match c {
                    $(ErrorCode::$v => {})*
                }
            }
            [$(ErrorCode::$v),*]
        }};
    }

    fn every_variant() -> Vec<ErrorCode> {
        variants!(
            InvalidParameter,
            InvalidHeader,
            InvalidBody,
            InvalidEncoding,
            InvalidMappingName,
            BodyInterrupted,
            UploadInterrupted,
            InvalidToken,
            Forbidden,
            NotFound,
            BodyTooSlow,
            UploadTooSlow,
            Conflict,
            PayloadTooLarge,
            UnsupportedMediaType,
            EncryptionMismatch,
            EncryptionRequired,
            SignatureRequired,
            SnapshotNotPermitted,
            UnknownMapping,
            InvalidMapping,
            InvalidClientId,
            InvalidTenantId,
            InvalidIssuer,
            InvalidKey,
            InvalidKeySpec,
            UnknownKey,
            InvalidLifetime,
            InvalidName,
            InvalidOverlap,
            InvalidRole,
            InvalidTtl,
            InvalidWritePolicy,
            InvalidSubscription,
            InvalidRedelivery,
            InvalidPerson,
            NotPermitted,
            Internal,
            Unavailable,
            MissingKey,
            DuplicateKey,
            Required,
            UnmappedValue,
            InvalidDate,
            InvalidEmail,
            InvalidEnum,
            InvalidBool,
            InvalidInteger,
            PatternMismatch,
            ValueTooLong,
            InvalidCharacters,
            RaggedRow,
            InvalidUtf8,
            InvalidJson,
            NotAnObject,
            MissingField,
            InvalidType,
            InvalidAttribute,
            UnknownAttribute,
            AttributeNotPermitted,
            RoleNotPermitted,
            UnknownManager,
            SelfManager,
            EmptyFile,
            InvalidFormat,
            MissingColumns,
            TooManyRowErrors,
            MassDeactivation,
            NotEncrypted,
            NoMatchingKey,
            KeyRevoked,
            IntegrityFailure,
            LegacyEncryption,
            DecompressionBomb,
            MalformedEncryption,
            UnsupportedEncryption,
            SignatureMissing,
            SignatureWrongKey,
            SignatureInvalid,
            InvalidRequest,
            InvalidClient,
            InvalidScope,
            UnsupportedGrantType,
            ServerError,
            TooManyRequests,
            MissingToken,
            MalformedToken,
            AlgNone,
            UnknownIssuer,
            WrongAudience,
            AlgNotAllowed,
            Hs256NotConfigured,
            JwksUnavailable,
            UnknownKid,
            BadSignature,
            MissingClaim,
            TokenExpired,
            TokenNotYetValid,
            JtiReplayed,
            MissingSignature,
            Malformed,
            MissingKeyid,
            AlgMismatch,
            Expired,
            CreatedInFuture,
            MissingCreated,
            MissingNonce,
            MissingComponent,
            ComponentUnavailable,
            UnsupportedComponent,
            DigestMismatch,
            UnsupportedDigest,
            NonceReused,
            ClientDisabled,
            MultipleCredentials,
        )
        .to_vec()
    }

    #[test]
    fn all_holds_every_variant() {
        let listed = every_variant();
        assert_eq!(ErrorCode::ALL.len(), listed.len());
        for c in listed {
            assert!(ErrorCode::ALL.contains(&c), "{c:?} is missing from ALL");
        }
    }

    #[test]
    fn every_code_is_unique() {
        let mut seen = HashSet::new();
        for c in ErrorCode::ALL {
            assert!(seen.insert(c.as_str()), "{} appears twice", c.as_str());
        }
    }

    #[test]
    fn every_code_is_snake_case() {
        for c in ErrorCode::ALL {
            let s = c.as_str();
            assert!(
                s.starts_with(|ch: char| ch.is_ascii_lowercase())
                    && !s.ends_with('_')
                    && !s.contains("__")
                    && s.chars()
                        .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_'),
                "{s} is not snake_case"
            );
        }
    }

    #[test]
    fn every_code_round_trips_through_serde_as_its_string() {
        for &c in ErrorCode::ALL {
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
            let back: ErrorCode = serde_json::from_str(&json).unwrap();
            assert_eq!(back, c);
            assert_eq!(c.to_string(), c.as_str());
            assert_eq!(c.as_str().parse::<ErrorCode>(), Ok(c));
        }
    }

    #[test]
    fn an_unknown_string_is_not_a_code() {
        assert!(serde_json::from_str::<ErrorCode>("\"no_such_code\"").is_err());
        assert_eq!(ErrorCode::parse("no_such_code"), None);
        assert_eq!("".parse::<ErrorCode>(), Err(UnknownErrorCode));
    }

    #[test]
    fn the_schema_is_a_string_enum_of_every_code() {
        use utoipa::PartialSchema;
        let schema = serde_json::to_value(ErrorCode::schema()).unwrap();
        assert_eq!(schema["type"], "string");
        let listed: Vec<&str> = schema["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let all: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(listed, all);
    }

    #[test]
    fn the_error_catalogue_page_lists_every_code() {
        let page = include_str!("../../../docs/errors.md");
        for c in ErrorCode::ALL {
            assert!(
                page.contains(&format!("| `{}` |", c.as_str())),
                "docs/errors.md has no row for {}",
                c.as_str()
            );
        }
    }
}
