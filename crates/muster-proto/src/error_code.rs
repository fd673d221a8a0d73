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

/// Defines [`ErrorCode`] from one list of variants and wire strings: the
/// enum, [`ErrorCode::ALL`] and [`ErrorCode::as_str`] cannot disagree.
macro_rules! catalogue {
    ($($(#[$doc:meta])* $variant:ident = $wire:literal,)*) => {
        /// A machine-readable error code, serialized as its wire string.
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
        )]
        // The wire string is the variant's name in snake_case; a test holds
        // `as_str` to what serde writes.
        #[serde(rename_all = "snake_case")]
        #[non_exhaustive]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, in catalogue order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),*];

            /// The exact string the gateway sends.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $wire,)*
                }
            }
        }
    };
}

catalogue! {
    /// Problem, 400: a query parameter is malformed or out of range
    /// (`limit`, `after`, `wait`, `mode`, `format`, `delimiter`, a boolean
    /// that is not `true`/`false`, a parameter given twice). The detail
    /// names it.
    ///
    /// To do: fix the parameter the detail names and send again.
    InvalidParameter = "invalid_parameter",
    /// Problem, 400: a header is malformed: `On-Behalf-Of` (1 to 256
    /// printable ASCII characters) or `Idempotency-Key` (1 to 255).
    ///
    /// To do: fix the header the detail names.
    InvalidHeader = "invalid_header",
    /// Problem, 400: the JSON body does not parse or does not have the
    /// expected shape; the detail names the path, line and column.
    ///
    /// To do: fix the body; the OpenAPI document at `/openapi.json` has its
    /// schema.
    InvalidBody = "invalid_body",
    /// Problem, 400: a mapping document is not UTF-8 text. Import
    /// rejection: the file is not UTF-8 and declared no encoding; the
    /// message names the first row that is not and the encoding the file
    /// looks like. Nothing was applied.
    ///
    /// To do: send the mapping as UTF-8; for a file, declare its encoding
    /// (`encoding=windows-1252`, or `charset=` in the `Content-Type`) or
    /// export it as UTF-8.
    InvalidEncoding = "invalid_encoding",
    /// Import warning: the file lacks the column of an optional attribute
    /// of the mapping; the import went on and that attribute stays as
    /// stored for everyone in the file. The warning names the column and
    /// the attribute.
    ///
    /// To do: export the column (the attribute stops updating otherwise),
    /// map it to the file's name with `header_map`, or, when it is meant to
    /// be there every time, set `missing_columns = "error"` in the mapping.
    MissingOptionalColumn = "missing_optional_column",
    /// Import rejection: the file is not text at all but an XLSX or XLS
    /// workbook, a ZIP archive, a gzip (or bzip2, xz, zstd) stream or a
    /// PDF, which the message names. Nothing was applied.
    ///
    /// To do: export CSV or JSON lines (for a workbook: save as CSV UTF-8),
    /// or unpack the archive and send the file inside.
    UnsupportedFileType = "unsupported_file_type",
    /// Problem, 400: a mapping name is not 1 to 64 letters, digits, `-`,
    /// `_` or `.`.
    ///
    /// To do: use a valid name.
    InvalidMappingName = "invalid_mapping_name",
    /// Problem, 400: the request body ended before its declared length.
    ///
    /// To do: send the request again; check proxies in between.
    BodyInterrupted = "body_interrupted",
    /// Problem, 400: an upload ended before the body was complete; nothing
    /// was kept and no import exists.
    ///
    /// To do: send the file again with the same `Idempotency-Key`.
    UploadInterrupted = "upload_interrupted",
    /// Problem, 401: the bearer token is missing, unknown, expired, revoked
    /// or (for a `one_time` token) already used; also a signature sent to a
    /// route that does not take one.
    ///
    /// To do: fetch a new token at `/oauth2/token` and retry once; a second
    /// refusal is not transient.
    InvalidToken = "invalid_token",
    /// Problem, 403: the credential lacks the permission the route needs;
    /// the detail names it.
    ///
    /// To do: use a client whose role has the permission, or a token whose
    /// `scope` includes it.
    Forbidden = "forbidden",
    /// Problem, 404: no such resource in the caller's tenant (another
    /// tenant's ids answer the same).
    ///
    /// To do: check the id and the tenant of the credential.
    NotFound = "not_found",
    /// Problem, 408: a request body sent nothing for
    /// `limits.body_read_timeout_seconds`, or averaged under
    /// `limits.min_upload_bytes_per_second`.
    ///
    /// To do: send again from a faster link; an operator may lower the
    /// minimum rate.
    BodyTooSlow = "body_too_slow",
    /// Problem, 408: an upload arrived too slowly (as `body_too_slow`);
    /// nothing was kept.
    ///
    /// To do: send the file again with the same `Idempotency-Key`.
    UploadTooSlow = "upload_too_slow",
    /// Problem, 409: the request contradicts stored state: a name or id
    /// already taken, a key the tenant already holds, a revoked key to be
    /// revived, a retirement of the previous master key while it is still
    /// needed.
    ///
    /// To do: read the detail; change the request or wait for the state it
    /// names.
    Conflict = "conflict",
    /// Problem, 413: the body is larger than the route allows
    /// (`limits.max_unauthenticated_body_bytes` before authentication,
    /// `limits.max_json_bytes`, `limits.max_upload_bytes`,
    /// `limits.max_sync_items`).
    ///
    /// To do: send less: split the batch, or ask the operator about the
    /// limit.
    PayloadTooLarge = "payload_too_large",
    /// Problem, 415: the `Content-Type` is not one the route reads
    /// (`application/json`; for uploads `text/csv`, `application/x-ndjson`,
    /// or `application/octet-stream` with `format=`; for mappings
    /// `application/toml` or `application/json`).
    ///
    /// To do: send the body with the right media type.
    UnsupportedMediaType = "unsupported_media_type",
    /// Problem, 422: the `Idempotency-Key` was used before by this client
    /// for an import with other parameters or another file; the detail
    /// names the import and what differs. Nothing was kept.
    ///
    /// To do: resend with exactly the first request's parameters and file,
    /// or use a new key for a new file.
    IdempotencyKeyReused = "idempotency_key_reused",
    /// Problem, 422: the declared `encryption=` contradicts what the
    /// upload's first bytes show; nothing was kept.
    ///
    /// To do: declare the encryption the file really has, or leave it out.
    EncryptionMismatch = "encryption_mismatch",
    /// As a problem (422): the client's intake policy requires encrypted
    /// uploads and this one is plaintext; refused before anything was kept.
    /// To do: encrypt the file to one of the tenant's keys (`GET
    /// /api/v1/keys`; `muster push --encrypt`).
    ///
    /// As an import rejection: the client must encrypt its uploads and this
    /// one is plaintext. To do: encrypt the file to a tenant key.
    EncryptionRequired = "encryption_required",
    /// Problem, 422: the client's intake policy requires OpenPGP messages
    /// signed by a sender key, and this upload is not OpenPGP.
    ///
    /// To do: sign and encrypt the file with OpenPGP (age has no
    /// signatures).
    SignatureRequired = "signature_required",
    /// Problem, 422: `mode=snapshot` deactivates people by writing
    /// `employment_status`, which the client's write policy does not allow.
    ///
    /// To do: use `mode=upsert`, or have an administrator add
    /// `employment_status` to the write policy.
    SnapshotNotPermitted = "snapshot_not_permitted",
    /// Problem, 422: the `mapping` parameter names no mapping of the
    /// tenant.
    ///
    /// To do: store the mapping first (`PUT /api/v1/mappings/{name}`) or
    /// fix the name.
    UnknownMapping = "unknown_mapping",
    /// As a problem (422): a mapping document does not compile (an unknown
    /// option, a bad regular expression, a custom attribute without a type,
    /// ...); the detail says where. To do: fix the document; see
    /// docs/mapping.md.
    ///
    /// As an import rejection: the mapping cannot be applied to this file.
    /// To do: fix the mapping.
    InvalidMapping = "invalid_mapping",
    /// Problem, 422: a chosen `client_id` is not a valid client id.
    ///
    /// To do: choose another id, or leave it out and let the gateway
    /// choose.
    InvalidClientId = "invalid_client_id",
    /// Problem, 422: a tenant id is not 1 to 64 lowercase letters, digits,
    /// `-` or `_`.
    ///
    /// To do: choose a valid id.
    InvalidTenantId = "invalid_tenant_id",
    /// Problem, 422: a login-sync issuer registration is not acceptable
    /// (`alg` list with `none`, `HS256` without a secret, a skew over 600
    /// s, a JWK Set with private or unusable keys, a `jwks_url` the
    /// outbound rule refuses, ...).
    ///
    /// To do: fix the field the detail names.
    InvalidIssuer = "invalid_issuer",
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
    InvalidKey = "invalid_key",
    /// Problem, 422: a request for a tenant key mixes what cannot go
    /// together (a `public_key` for a decryption key, a `secret_key` with
    /// `kind`/`algorithm`, an unknown kind or algorithm).
    ///
    /// To do: ask for one thing: generate (`kind`, `algorithm`), import
    /// (`secret_key`) or register a sender key (`public_key`).
    InvalidKeySpec = "invalid_key_spec",
    /// As a problem (422): an intake policy's `require_signed_by` names no
    /// key of the tenant. To do: register the sender key first (`purpose:
    /// sender_verification`), then name its id.
    ///
    /// As a signature refusal (401): (Audit only.) The `keyid` names no
    /// client with a signing key; the answer is `bad_signature`. To do: as
    /// for `bad_signature`.
    UnknownKey = "unknown_key",
    /// Problem, 422: an admin token's `lifetime_seconds` is under 60 or
    /// over `tokens.admin_max_ttl_seconds`.
    ///
    /// To do: ask for a lifetime in range.
    InvalidLifetime = "invalid_lifetime",
    /// Problem, 422: an admin token's name is not 1 to 64 characters
    /// without control characters.
    ///
    /// To do: choose a valid name.
    InvalidName = "invalid_name",
    /// Problem, 422: an `overlap_seconds` for a secret or key rotation is
    /// over 30 days.
    ///
    /// To do: ask for at most 2592000 seconds.
    InvalidOverlap = "invalid_overlap",
    /// As a problem (422): a client's `role` is not one of the built-in
    /// roles (`importer`, `syncer`, `reader`, `auditor`, `admin`). To do:
    /// use a built-in role; see docs/people.md.
    ///
    /// As a row error: a role name is not 1 to 64 letters, digits or `_.:-`
    /// (or a `roles` claim has the wrong shape). To do: fix the role names,
    /// or the mapping's `split`.
    InvalidRole = "invalid_role",
    /// Problem, 422: a client's `token_ttl_seconds` is not between 1 and
    /// 86400.
    ///
    /// To do: ask for a lifetime in range.
    InvalidTtl = "invalid_ttl",
    /// Problem, 422: a write policy names something that is not an
    /// attribute or role name.
    ///
    /// To do: fix the name the detail quotes.
    InvalidWritePolicy = "invalid_write_policy",
    /// Problem, 422: a read policy names something that is not an
    /// attribute or event name, or lists no attributes.
    ///
    /// To do: fix the name the detail quotes.
    InvalidReadPolicy = "invalid_read_policy",
    /// Problem, 422: a client that manages its own subscriptions asked for
    /// an attribute or event its read policy does not allow.
    ///
    /// To do: ask for less, or have an administrator widen the client's
    /// read policy.
    OutsideReadPolicy = "outside_read_policy",
    /// Problem, 422: a subscription is not acceptable: an unknown event
    /// name, no attributes listed, a URL the outbound rule refuses, a state
    /// other than `active`/`disabled`.
    ///
    /// To do: fix the field the detail names.
    InvalidSubscription = "invalid_subscription",
    /// Problem, 422: a redelivery request gives neither an `event_id` nor a
    /// valid `from_cursor` (at least 1) and optional `to_cursor` (at least
    /// `from_cursor`).
    ///
    /// To do: give one of the two forms.
    InvalidRedelivery = "invalid_redelivery",
    /// Problem, 422: a reconcile could not read or change the SCIM target
    /// (the detail says what it answered; nothing else was changed after).
    ///
    /// To do: check the target and the subscription's credentials, and
    /// run the reconcile again.
    TargetFailed = "target_failed",
    /// Problem, 422: a single write (`PUT /api/v1/people/{id}`, login sync)
    /// was not applied; `errors` holds its row errors.
    ///
    /// To do: fix what the row errors name.
    InvalidPerson = "invalid_person",
    /// Problem, 422: a login-sync token maps to attributes or roles outside
    /// the issuer's write policy; `errors` names each one and the issuer.
    /// Nothing was written.
    ///
    /// To do: change the issuer's mapping or its write policy.
    NotPermitted = "not_permitted",
    /// As a problem (500): the gateway could not complete the request; the
    /// cause is in its log, never in the answer. To do: retry later; if it
    /// persists, give the operator the time of the request.
    ///
    /// As an import rejection: the import failed (state `failed`) for a
    /// reason on the gateway's side; the cause is in its log. To do: retry
    /// the import; if it persists, tell the operator.
    Internal = "internal",
    /// Problem, 503: the gateway cannot reach its database.
    ///
    /// To do: retry with backoff; `/readyz` says when it is back.
    Unavailable = "unavailable",
    /// Row error: the key column (or field) is empty or absent.
    ///
    /// To do: give every record its external id.
    MissingKey = "missing_key",
    /// Row error: the same external id appears earlier in the file or
    /// batch; the first one applies.
    ///
    /// To do: remove the duplicate from the export.
    DuplicateKey = "duplicate_key",
    /// Row error: a `required` attribute is empty.
    ///
    /// To do: fill the column, or give the mapping a `default`.
    Required = "required",
    /// Row error: the value is not in the attribute's `values` map.
    ///
    /// To do: add the value to the map, or set `values_passthrough`.
    UnmappedValue = "unmapped_value",
    /// Row error: the value is not a date (in the mapping's `date_format`,
    /// or `YYYY-MM-DD`).
    ///
    /// To do: fix the value or the `date_format`.
    InvalidDate = "invalid_date",
    /// Row error: the value is not an e-mail address.
    ///
    /// To do: fix the value in the source.
    InvalidEmail = "invalid_email",
    /// Row error: the value is not one of the attribute's allowed values
    /// (`employment_status`, a custom `enum`).
    ///
    /// To do: map it with `values`, or fix the source.
    InvalidEnum = "invalid_enum",
    /// Row error: the value is not a boolean.
    ///
    /// To do: use `true`/`false` (or map it with `values`).
    InvalidBool = "invalid_bool",
    /// Row error: the value is not a whole number.
    ///
    /// To do: fix the value in the source.
    InvalidInteger = "invalid_integer",
    /// Row error: the value does not match the attribute's `pattern`.
    ///
    /// To do: fix the value, or the pattern.
    PatternMismatch = "pattern_mismatch",
    /// Row error: a value is over 1024 bytes.
    ///
    /// To do: shorten it in the source.
    ValueTooLong = "value_too_long",
    /// Row error: a value holds control characters.
    ///
    /// To do: clean the value in the source.
    InvalidCharacters = "invalid_characters",
    /// Row error: a CSV row has a different number of fields from the
    /// header.
    ///
    /// To do: fix the export (quoting, delimiter).
    RaggedRow = "ragged_row",
    /// Row error: a line is not valid UTF-8.
    ///
    /// To do: export as UTF-8.
    InvalidUtf8 = "invalid_utf8",
    /// Row error: a JSON-lines line is not valid JSON.
    ///
    /// To do: fix the line.
    InvalidJson = "invalid_json",
    /// Row error: a JSON-lines line is JSON but not an object.
    ///
    /// To do: give one object per line.
    NotAnObject = "not_an_object",
    /// Row error: an operation of a SCIM file that an import does not
    /// carry out (anything but a POST of a User).
    ///
    /// To do: send it to `/scim/v2/Bulk`, or leave it out.
    UnsupportedOperation = "unsupported_operation",
    /// Row error: a User of a SCIM file breaks the SCIM schema (RFC 7643);
    /// the message names the attribute.
    ///
    /// To do: fix the User in the export.
    InvalidUser = "invalid_user",
    /// Row error: a JSON record lacks a field the mapping requires.
    ///
    /// To do: add the field, or make it optional.
    MissingField = "missing_field",
    /// Row error: a JSON value has the wrong type (the key must be text; an
    /// attribute a string, boolean, number or `null`).
    ///
    /// To do: send the value with the expected type.
    InvalidType = "invalid_type",
    /// Row error: `roles` was sent as an attribute; roles go in the `roles`
    /// list.
    ///
    /// To do: move the roles into `roles`.
    InvalidAttribute = "invalid_attribute",
    /// Row error: the name is neither a core attribute nor a valid custom
    /// attribute name.
    ///
    /// To do: fix the name; see docs/people.md.
    UnknownAttribute = "unknown_attribute",
    /// Row error: the writer's write policy does not allow this attribute;
    /// the message names the attribute and the client or issuer. The row is
    /// not applied.
    ///
    /// To do: drop the attribute from the mapping, or extend the write
    /// policy.
    AttributeNotPermitted = "attribute_not_permitted",
    /// Row error: the writer's write policy does not allow granting this
    /// role; the message names the role and the client or issuer. The row
    /// is not applied.
    ///
    /// To do: drop the role, or extend the write policy.
    RoleNotPermitted = "role_not_permitted",
    /// Row error: `manager_external_id` names nobody in the file (or
    /// request) or the store, or a manager whose own row failed.
    ///
    /// To do: include the manager, or fix the reference.
    UnknownManager = "unknown_manager",
    /// Row error: a person names themself as their manager.
    ///
    /// To do: fix the reference in the source.
    SelfManager = "self_manager",
    /// Import rejection: the file has no header row and no records.
    ///
    /// To do: check the export.
    EmptyFile = "empty_file",
    /// Import rejection: the file cannot be read as its format: an
    /// over-long line, too many fields, a broken CSV record, an invalid
    /// header (not UTF-8, an empty or duplicated name), an invalid
    /// delimiter.
    ///
    /// To do: fix the export; the message says where.
    InvalidFormat = "invalid_format",
    /// Import rejection: the header lacks columns the mapping requires.
    ///
    /// To do: export the columns, or map them with `header_map`.
    MissingColumns = "missing_columns",
    /// Import rejection: more rows failed than the mapping's
    /// `max_error_rate` allows; nothing was applied.
    ///
    /// To do: fix the rows listed at `/errors`, then import again.
    TooManyRowErrors = "too_many_row_errors",
    /// Import rejection: a snapshot would deactivate more than the allowed
    /// share of the source's people; nothing was applied.
    ///
    /// To do: check the file is complete; if the departures are real, send
    /// again with `allow_mass_deactivation=true` or a higher
    /// `max_deactivate_percent`.
    MassDeactivation = "mass_deactivation",
    /// Import rejection: the upload was to be decrypted but has no OpenPGP
    /// or age header.
    ///
    /// To do: encrypt the file, or do not declare encryption.
    NotEncrypted = "not_encrypted",
    /// Import rejection: the file is encrypted to none of the tenant's
    /// usable keys; the message names the key ids it was encrypted to.
    ///
    /// To do: encrypt to a current key (`GET /api/v1/keys`).
    NoMatchingKey = "no_matching_key",
    /// Import rejection: the file is encrypted only to a revoked key.
    ///
    /// To do: encrypt to a current key.
    KeyRevoked = "key_revoked",
    /// Import rejection: the encrypted file was altered or truncated.
    ///
    /// To do: send the file again; if it persists, check the transfer.
    IntegrityFailure = "integrity_failure",
    /// Import rejection: an OpenPGP message without integrity protection
    /// (SED packets).
    ///
    /// To do: encrypt with a current GnuPG (integrity-protected).
    LegacyEncryption = "legacy_encryption",
    /// Import rejection: the compressed content expands past
    /// `limits.max_decompressed_bytes` or `limits.max_decompression_ratio`.
    ///
    /// To do: send an uncompressed or smaller file.
    DecompressionBomb = "decompression_bomb",
    /// Import rejection: the OpenPGP or age container is damaged.
    ///
    /// To do: encrypt the file again.
    MalformedEncryption = "malformed_encryption",
    /// Import rejection: the file uses an algorithm or packet the gateway
    /// does not support.
    ///
    /// To do: encrypt with the defaults of GnuPG or age.
    UnsupportedEncryption = "unsupported_encryption",
    /// Import rejection: the client must sign its uploads and this one is
    /// not signed (or is age, which cannot be).
    ///
    /// To do: sign the file with the registered sender key.
    SignatureMissing = "signature_missing",
    /// Import rejection: the file is signed, but not by the sender key the
    /// intake policy names.
    ///
    /// To do: sign with the registered key, or register the new one.
    SignatureWrongKey = "signature_wrong_key",
    /// Import rejection: the file's signature does not verify.
    ///
    /// To do: sign the file again.
    SignatureInvalid = "signature_invalid",
    /// OAuth error, 400: the request is malformed (a missing `grant_type`,
    /// a parameter twice, several client authentication methods); also 413
    /// or 408 with this code when the body is too large or too slow.
    ///
    /// To do: fix the request.
    InvalidRequest = "invalid_request",
    /// OAuth error, 401: client authentication failed: unknown client,
    /// wrong secret, a `client_assertion` that does not verify, a disabled
    /// client.
    ///
    /// To do: check the credentials; do not retry in a loop (failures are
    /// slowed down).
    InvalidClient = "invalid_client",
    /// OAuth error, 400: a scope names an unknown permission, one the
    /// client's role lacks, or is empty.
    ///
    /// To do: ask only for permissions of the client's role.
    InvalidScope = "invalid_scope",
    /// OAuth error, 400: a `grant_type` other than `client_credentials`.
    ///
    /// To do: use `grant_type=client_credentials`.
    UnsupportedGrantType = "unsupported_grant_type",
    /// OAuth error, 500: the gateway could not issue the token; the cause
    /// is in its log.
    ///
    /// To do: retry later.
    ServerError = "server_error",
    /// OAuth error, 429: too many token requests from this address or
    /// client (`limits.token_requests_per_second`); `Retry-After` says when
    /// to retry. Not an RFC 6749 code.
    ///
    /// To do: wait for `Retry-After`; reuse `ttl` tokens instead of
    /// fetching one per request.
    TooManyRequests = "too_many_requests",
    /// Login-sync refusal, 401: no `Authorization: Bearer` JWT.
    ///
    /// To do: send the IdP's JWT.
    MissingToken = "missing_token",
    /// Login-sync refusal, 401: not a JWS compact serialization with JSON
    /// claims (or a JWE, or a `crit` header).
    ///
    /// To do: send the ID or access token as the IdP issued it.
    MalformedToken = "malformed_token",
    /// Login-sync refusal, 401: an unsecured JWT (`alg: none`); never
    /// accepted.
    ///
    /// To do: have the IdP sign its tokens.
    AlgNone = "alg_none",
    /// Login-sync refusal, 401: `iss` names no issuer of the route's tenant
    /// (also: the tenant does not exist).
    ///
    /// To do: register the issuer in the tenant, or call the tenant's own
    /// route.
    UnknownIssuer = "unknown_issuer",
    /// Login-sync refusal, 401: `aud` does not name the issuer's registered
    /// audience.
    ///
    /// To do: fix the audience at the IdP or in the registration.
    WrongAudience = "wrong_audience",
    /// Login-sync refusal, 401: the token's `alg` is not in the issuer's
    /// accepted list.
    ///
    /// To do: add the algorithm to the issuer, or change the IdP's signing
    /// algorithm.
    AlgNotAllowed = "alg_not_allowed",
    /// Login-sync refusal, 401: an HS256 token for an issuer without a
    /// shared secret.
    ///
    /// To do: register the secret, or use an asymmetric algorithm.
    Hs256NotConfigured = "hs256_not_configured",
    /// Login-sync refusal, 401: the issuer's JWK Set could not be fetched
    /// (or was fetched too recently to try again).
    ///
    /// To do: retry after a few seconds; check the `jwks_url` is reachable.
    JwksUnavailable = "jwks_unavailable",
    /// Login-sync refusal, 401: no key of the issuer matches the token's
    /// `kid` and `alg`.
    ///
    /// To do: upload the IdP's current keys, or wait for the cached set to
    /// refresh.
    UnknownKid = "unknown_kid",
    /// As a login-sync refusal (401): the token's signature does not
    /// verify. To do: check the issuer's keys; the token may be forged.
    ///
    /// As a signature refusal (401): the signature does not verify (also an
    /// unknown `keyid`, a client without a key, a key of the other
    /// algorithm). To do: check the key, the covered components and the
    /// target URI (`public_url`).
    BadSignature = "bad_signature",
    /// Login-sync refusal, 401: `exp`, `sub` or `jti` is missing.
    ///
    /// To do: have the IdP include them.
    MissingClaim = "missing_claim",
    /// Login-sync refusal, 401: `exp` has passed (beyond the issuer's clock
    /// skew).
    ///
    /// To do: send a fresh token.
    TokenExpired = "token_expired",
    /// Login-sync refusal, 401: `nbf` or `iat` is in the future (beyond the
    /// skew).
    ///
    /// To do: check the clocks of the IdP and the gateway.
    TokenNotYetValid = "token_not_yet_valid",
    /// Login-sync refusal, 401: this token's `jti` was already used.
    ///
    /// To do: send each token once.
    JtiReplayed = "jti_replayed",
    /// Signature refusal, 401: no signature with the expected label.
    ///
    /// To do: sign the request (RFC 9421).
    MissingSignature = "missing_signature",
    /// Signature refusal, 401: the `Signature`/`Signature-Input` fields do
    /// not parse, or the nonce is not 1 to 128 characters.
    ///
    /// To do: fix the signer.
    Malformed = "malformed",
    /// Signature refusal, 401: the signature has no `keyid`.
    ///
    /// To do: set `keyid` to the client id.
    MissingKeyid = "missing_keyid",
    /// Signature refusal, 401: (Audit only.) The `alg` does not fit the
    /// client's key; the answer is `bad_signature`.
    ///
    /// To do: as for `bad_signature`.
    AlgMismatch = "alg_mismatch",
    /// Signature refusal, 401: `created` is more than 300 s in the past.
    ///
    /// To do: sign each request just before sending; check the clock.
    Expired = "expired",
    /// Signature refusal, 401: `created` is more than 300 s in the future.
    ///
    /// To do: check the client's clock.
    CreatedInFuture = "created_in_future",
    /// Signature refusal, 401: the signature has no `created` parameter.
    ///
    /// To do: include `created`.
    MissingCreated = "missing_created",
    /// Signature refusal, 401: the signature has no `nonce` parameter.
    ///
    /// To do: include a fresh `nonce`.
    MissingNonce = "missing_nonce",
    /// Signature refusal, 401: a required component (`@method`,
    /// `@target-uri`, `content-digest` with a body) is not covered.
    ///
    /// To do: cover the components the detail names.
    MissingComponent = "missing_component",
    /// Signature refusal, 401: a covered component is absent from the
    /// request.
    ///
    /// To do: send the header you signed.
    ComponentUnavailable = "component_unavailable",
    /// Signature refusal, 401: a covered component is not supported.
    ///
    /// To do: cover only supported components.
    UnsupportedComponent = "unsupported_component",
    /// Signature refusal, 401: `Content-Digest` does not match the body; an
    /// upload is discarded.
    ///
    /// To do: compute the digest over the exact bytes sent.
    DigestMismatch = "digest_mismatch",
    /// Signature refusal, 401: `Content-Digest` uses no supported algorithm
    /// (sha-256, sha-512).
    ///
    /// To do: use sha-256.
    UnsupportedDigest = "unsupported_digest",
    /// Signature refusal, 401: the nonce was already used by this client.
    ///
    /// To do: use a fresh nonce per request.
    NonceReused = "nonce_reused",
    /// Signature refusal, 401: the signing client is disabled.
    ///
    /// To do: ask an administrator to enable it.
    ClientDisabled = "client_disabled",
    /// Signature refusal, 401: the request carries both a signature and an
    /// `Authorization` header.
    ///
    /// To do: send one credential.
    MultipleCredentials = "multiple_credentials",
}

impl ErrorCode {
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
