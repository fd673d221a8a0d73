//! The OpenAPI 3.1 document served at `/openapi.json`. Schemas come from the
//! wire types in `muster-proto` (derived, so they cannot drift from the
//! code); the operations are listed in [`ROUTES`], one row per route of
//! [`crate::app::router`], which a test holds against the router.
use axum::Json;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
use utoipa::openapi::security::{
    ClientCredentials, Flow, Http, HttpAuthScheme, OAuth2, Scopes, SecurityRequirement,
    SecurityScheme,
};
use utoipa::openapi::server::Server;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required, ResponseBuilder, Schema};
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Muster",
        description = "Personnel-data sync gateway: HR systems push people in, applications get what changed."
    ),
    components(schemas(
        muster_proto::Problem,
        muster_proto::TokenResponse,
        muster_proto::OAuthError,
        muster_proto::ServerMetadata,
        muster_proto::TokenPolicy,
        muster_proto::WritePolicyInfo,
        muster_proto::ReadPolicyInfo,
        muster_proto::TenantSpec,
        muster_proto::TenantInfo,
        muster_proto::TenantCreated,
        muster_proto::AdminTokenSpec,
        muster_proto::AdminTokenInfo,
        muster_proto::AdminTokenCreated,
        muster_proto::ClientSpec,
        muster_proto::SecretInfo,
        muster_proto::ClientInfo,
        muster_proto::ClientCreated,
        muster_proto::RotateSecretRequest,
        muster_proto::SecretRotated,
        muster_proto::ScimTokenRequest,
        muster_proto::ScimTokenCreated,
        muster_proto::MappingInfo,
        muster_proto::ImportState,
        muster_proto::ErrorCode,
        muster_proto::ImportCounts,
        muster_proto::ImportFailure,
        muster_proto::ImportWarning,
        muster_proto::ImportLinks,
        muster_proto::ImportInfo,
        muster_proto::RowErrorInfo,
        muster_proto::ImportProgress,
        muster_proto::PersonInput,
        muster_proto::SyncItem,
        muster_proto::SyncRequest,
        muster_proto::SyncResult,
        muster_proto::SyncResponse,
        muster_proto::PersonInfo,
        muster_proto::AuditEntryInfo,
        muster_proto::AuditVerification,
        muster_proto::KeySpec,
        muster_proto::KeyInfo,
        muster_proto::IntakePolicyInfo,
        muster_proto::ClientKeysInfo,
        muster_proto::HmacKeyIssued,
        muster_proto::Ed25519KeyRequest,
        muster_proto::JwtKeysRequest,
        muster_proto::IssuerSpec,
        muster_proto::IssuerInfo,
        muster_proto::LoginSyncResult,
        muster_proto::AttributeChange,
        muster_proto::ChangeEventData,
        muster_proto::ChangeEventInfo,
        muster_proto::ChangesPage,
        muster_proto::SubscriptionSpec,
        muster_proto::SubscriptionPatch,
        muster_proto::SubscriptionInfo,
        muster_proto::SubscriptionCreated,
        muster_proto::WebhookSecretRotate,
        muster_proto::RedeliverRequest,
        muster_proto::DeliveryInfo,
        muster_proto::ScimTarget,
        muster_proto::ScimAuth,
        muster_proto::ScimMatch,
        muster_proto::ScimUpdate,
        muster_proto::ScimOnMissing,
        muster_proto::ScimDeprovision,
        muster_proto::ScimExtraUsers,
        muster_proto::ScimScope,
        muster_proto::ScimSecret,
        muster_proto::ProvisioningState,
        muster_proto::ReconcileReport,
        muster_proto::ReconcileChange,
        muster_proto::ReconcileFailure,
        muster_proto::EffectiveDatesRun,
    ))
)]
struct ApiDoc;

/// What a route takes and gives, for the document.
#[derive(Debug, Clone, Copy)]
pub enum Body {
    None,
    Json(&'static str),
    /// A page of the named item schema.
    Page(&'static str),
    /// An array of the named schema.
    List(&'static str),
    Raw(&'static [&'static str]),
}

#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    /// The permission it needs; "" for none, "token" for any valid token;
    /// several, space-separated, are alternatives.
    pub permission: &'static str,
    pub query: &'static [(&'static str, &'static str)],
    pub request: Body,
    pub status: &'static str,
    pub response: Body,
}

const fn r(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    permission: &'static str,
    request: Body,
    status: &'static str,
    response: Body,
) -> Route {
    Route {
        method,
        path,
        summary,
        permission,
        query: &[],
        request,
        status,
        response,
    }
}

const PAGING: &[(&str, &str)] = &[
    ("after", "cursor from the previous page's next_cursor"),
    ("limit", "items per page, 1 to 1000 (default 100)"),
];

pub const ROUTES: &[Route] = &[
    r("post", "/oauth2/token", "Client credentials grant (RFC 6749 4.4); form body; client_secret_basic, client_secret_post or private_key_jwt (RFC 7523)", "", Body::Raw(&["application/x-www-form-urlencoded"]), "200", Body::Json("TokenResponse")),
    r("post", "/oauth2/revoke", "Token revocation (RFC 7009)", "", Body::Raw(&["application/x-www-form-urlencoded"]), "200", Body::None),
    r("get", "/.well-known/oauth-authorization-server", "Authorization server metadata (RFC 8414)", "", Body::None, "200", Body::Json("ServerMetadata")),
    r("post", "/api/v1/tenants", "Create a tenant and its first admin token (shown once)", "tenant:admin (default tenant)", Body::Json("TenantSpec"), "201", Body::Json("TenantCreated")),
    r("get", "/api/v1/tenants", "List tenants", "tenant:admin (default tenant)", Body::None, "200", Body::List("TenantInfo")),
    r("post", "/api/v1/clients", "Register an integration client; its secret is shown once", "clients:admin", Body::Json("ClientSpec"), "201", Body::Json("ClientCreated")),
    r("get", "/api/v1/clients", "List the tenant's clients", "clients:admin", Body::None, "200", Body::List("ClientInfo")),
    r("get", "/api/v1/clients/{client_id}", "Show a client", "clients:admin", Body::None, "200", Body::Json("ClientInfo")),
    r("post", "/api/v1/clients/{client_id}/disable", "Disable a client and revoke its live tokens", "clients:admin", Body::None, "200", Body::Json("ClientInfo")),
    r("post", "/api/v1/clients/{client_id}/enable", "Enable a client", "clients:admin", Body::None, "200", Body::Json("ClientInfo")),
    r("post", "/api/v1/clients/{client_id}/rotate-secret", "New secret (shown once); the old one works for the overlap", "clients:admin", Body::Json("RotateSecretRequest"), "200", Body::Json("SecretRotated")),
    r("post", "/api/v1/clients/{client_id}/scim-token", "New SCIM token for the client's identity provider (shown once); earlier ones work for the overlap", "clients:admin", Body::Json("ScimTokenRequest"), "201", Body::Json("ScimTokenCreated")),
    r("get", "/api/v1/clients/{client_id}/read-policy", "What the client may read of people (attributes, feed events)", "clients:admin", Body::None, "200", Body::Json("ReadPolicyInfo")),
    r("put", "/api/v1/clients/{client_id}/read-policy", "Limit what the client reads of people: its person reads, change feed and own subscriptions", "clients:admin", Body::Json("ReadPolicyInfo"), "200", Body::Json("ReadPolicyInfo")),
    r("get", "/api/v1/clients/{client_id}/intake-policy", "What the client's uploads must be (encrypted, signed)", "clients:admin", Body::None, "200", Body::Json("IntakePolicyInfo")),
    r("put", "/api/v1/clients/{client_id}/intake-policy", "Require the client's uploads to be encrypted and/or signed by a sender key", "clients:admin", Body::Json("IntakePolicyInfo"), "200", Body::Json("IntakePolicyInfo")),
    r("get", "/api/v1/keys", "Keys to encrypt uploads to (active ones; key admins see all)", "imports:create or keys:admin", Body::None, "200", Body::List("KeyInfo")),
    r("post", "/api/v1/keys", "Generate or import a decryption key, or register a sender's signing key", "keys:admin", Body::Json("KeySpec"), "201", Body::Json("KeyInfo")),
    r("get", "/api/v1/keys/{id}", "Show a key (never its secret)", "keys:admin", Body::None, "200", Body::Json("KeyInfo")),
    r("post", "/api/v1/keys/{id}/rotate", "New active key of the same kind; the old one stays decrypt_only", "keys:admin", Body::None, "201", Body::Json("KeyInfo")),
    r("post", "/api/v1/keys/{id}/revoke", "Revoke a key: it opens nothing from now on", "keys:admin", Body::None, "200", Body::Json("KeyInfo")),
    r("get", "/api/v1/clients/{client_id}/keys", "Which signing and assertion keys a client has (never a secret)", "clients:admin", Body::None, "200", Body::Json("ClientKeysInfo")),
    r("post", "/api/v1/clients/{client_id}/keys/hmac", "Issue or replace the client's HMAC-SHA256 request-signing key (shown once, stored sealed)", "clients:admin", Body::None, "201", Body::Json("HmacKeyIssued")),
    r("delete", "/api/v1/clients/{client_id}/keys/hmac", "Remove the client's HMAC key", "clients:admin", Body::None, "200", Body::Json("ClientKeysInfo")),
    r("put", "/api/v1/clients/{client_id}/keys/ed25519", "Register the client's Ed25519 request-signing public key", "clients:admin", Body::Json("Ed25519KeyRequest"), "200", Body::Json("ClientKeysInfo")),
    r("delete", "/api/v1/clients/{client_id}/keys/ed25519", "Remove the client's Ed25519 key", "clients:admin", Body::None, "200", Body::Json("ClientKeysInfo")),
    r("put", "/api/v1/clients/{client_id}/keys/jwt", "Register the client's private_key_jwt public key or JWKS (RFC 7523)", "clients:admin", Body::Json("JwtKeysRequest"), "200", Body::Json("ClientKeysInfo")),
    r("delete", "/api/v1/clients/{client_id}/keys/jwt", "Remove the client's private_key_jwt keys", "clients:admin", Body::None, "200", Body::Json("ClientKeysInfo")),
    r("get", "/api/v1/mappings", "Latest version of each mapping", "token", Body::None, "200", Body::List("MappingInfo")),
    r("put", "/api/v1/mappings/{name}", "Store a new version of a mapping (TOML or JSON)", "mappings:write", Body::Raw(&["application/toml", "application/json"]), "201", Body::Json("MappingInfo")),
    Route { query: &[("version", "a specific version (default: latest)")], ..r("get", "/api/v1/mappings/{name}", "Show a mapping", "token", Body::None, "200", Body::Json("MappingInfo")) },
    r("get", "/api/v1/mappings/{name}/versions", "Every version of a mapping", "token", Body::None, "200", Body::List("MappingInfo")),
    Route {
        query: &[
            ("mapping", "name of the stored mapping (required, except for a SCIM file, which takes none)"),
            ("mode", "upsert (default) or snapshot: the source's people missing from the file are deactivated"),
            ("source", "the import source the file speaks for (snapshot scope; default: the client id)"),
            ("max_deactivate_percent", "snapshot: this request's limit on deactivations, percent of the source's active people (default from the configuration, 10)"),
            ("allow_mass_deactivation", "snapshot: true lifts the limit"),
            ("dry_run", "true: report what would change, write nothing"),
            ("wait", "seconds to wait for the import to finish before answering"),
            ("format", "csv, jsonl or scim (a SCIM BulkRequest or ListResponse of Users; default: from Content-Type, or the mapping's [file] format for application/octet-stream)"),
            ("delimiter", "CSV delimiter, one character or 'tab' (default ',')"),
            ("encoding", "the file's text encoding: utf-8, windows-1252, iso-8859-1, utf-16le or another WHATWG label (default: UTF-8, strictly: a file that is not UTF-8 is rejected whole with invalid_encoding); a charset on the Content-Type says the same"),
            ("header_map", "JSON object: mapping column name to this file's column name"),
        ],
        ..r("post", "/api/v1/imports", "Upload a file to import; 202 with the import (200 when final or an Idempotency-Key repeats)", "imports:create", Body::Raw(&["text/csv", "application/x-ndjson", "application/scim+json", "application/octet-stream"]), "202", Body::Json("ImportInfo"))
    },
    Route { query: &[("state", "only imports in this state"), ("after", "cursor"), ("limit", "1 to 1000")], ..r("get", "/api/v1/imports", "List imports (newest first; your own unless tenant:admin)", "imports:read", Body::None, "200", Body::Page("ImportInfo")) },
    r("get", "/api/v1/imports/{id}", "Status and counts of an import", "imports:read", Body::None, "200", Body::Json("ImportInfo")),
    Route { query: PAGING, ..r("get", "/api/v1/imports/{id}/errors", "Row errors of an import, in row order", "imports:read", Body::None, "200", Body::Page("RowErrorInfo")) },
    r("get", "/api/v1/imports/{id}/events", "Server-Sent Events: `progress` while it runs, then `done` (data: ImportProgress)", "imports:read", Body::None, "200", Body::Raw(&["text/event-stream"])),
    Route { query: PAGING, ..r("get", "/api/v1/people", "List people by external id", "people:read", Body::None, "200", Body::Page("PersonInfo")) },
    r("post", "/api/v1/people/sync", "Batch upsert with per-item results", "people:write", Body::Json("SyncRequest"), "200", Body::Json("SyncResponse")),
    r("put", "/api/v1/people/{external_id}", "Upsert one person", "people:write", Body::Json("PersonInput"), "200", Body::Json("SyncResult")),
    r("get", "/api/v1/people/{external_id}", "Read one person", "people:read", Body::None, "200", Body::Json("PersonInfo")),
    Route { query: &[("after", "sequence number to start after"), ("limit", "1 to 1000")], ..r("get", "/api/v1/audit", "The tenant's audit chain, in order", "audit:read", Body::None, "200", Body::Page("AuditEntryInfo")) },
    r("get", "/api/v1/audit/verify", "Verify the tenant's audit chain", "audit:read", Body::None, "200", Body::Json("AuditVerification")),
    r("post", "/api/v1/issuers", "Register an identity-provider issuer for login sync", "clients:admin", Body::Json("IssuerSpec"), "201", Body::Json("IssuerInfo")),
    r("get", "/api/v1/issuers", "List the tenant's login-sync issuers", "clients:admin", Body::None, "200", Body::List("IssuerInfo")),
    r("get", "/api/v1/issuers/{name}", "Show a login-sync issuer", "clients:admin", Body::None, "200", Body::Json("IssuerInfo")),
    r("delete", "/api/v1/issuers/{name}", "Remove a login-sync issuer", "clients:admin", Body::None, "204", Body::None),
    r("post", "/api/v1/login-sync", "Create or update, in the default tenant, the person of a JWT from one of the default tenant's issuers (Authorization: Bearer <IdP JWT>); every refusal is 401 with its own code", "token", Body::None, "200", Body::Json("LoginSyncResult")),
    r("post", "/api/v1/tenants/{tenant}/login-sync", "Create or update, in this tenant, the person of a JWT from one of this tenant's issuers (Authorization: Bearer <IdP JWT>); every refusal is 401 with its own code", "token", Body::None, "200", Body::Json("LoginSyncResult")),
    // Change events and webhook subscriptions (docs/events.md).
    Route { query: &[("after", "cursor to start after (default 0)"), ("limit", "1 to 1000"), ("wait", "long poll: seconds to wait for an event, at most 30")], ..r("get", "/api/v1/changes", "The tenant's change events in cursor order", "people:read", Body::None, "200", Body::Json("ChangesPage")) },
    r("post", "/api/v1/subscriptions", "Create a subscription (a webhook, whose secret is shown once, a NATS JetStream publisher, or a SCIM target)", "subscriptions:admin subscriptions:own", Body::Json("SubscriptionSpec"), "201", Body::Json("SubscriptionCreated")),
    r("get", "/api/v1/subscriptions", "List the tenant's webhook subscriptions", "subscriptions:admin subscriptions:own", Body::None, "200", Body::List("SubscriptionInfo")),
    r("get", "/api/v1/subscriptions/{id}", "Show a subscription and its delivery progress", "subscriptions:admin subscriptions:own", Body::None, "200", Body::Json("SubscriptionInfo")),
    r("patch", "/api/v1/subscriptions/{id}", "Change a subscription (url, events, attributes, state)", "subscriptions:admin subscriptions:own", Body::Json("SubscriptionPatch"), "200", Body::Json("SubscriptionInfo")),
    r("delete", "/api/v1/subscriptions/{id}", "Delete a subscription", "subscriptions:admin subscriptions:own", Body::None, "204", Body::None),
    r("post", "/api/v1/subscriptions/{id}/rotate-secret", "New signing secret (shown once); the old one also signs during the overlap", "subscriptions:admin subscriptions:own", Body::Json("WebhookSecretRotate"), "200", Body::Json("SubscriptionCreated")),
    Route { query: &[("after", "delivery seq to start after"), ("limit", "1 to 1000")], ..r("get", "/api/v1/subscriptions/{id}/deliveries", "The subscription's delivery log", "subscriptions:admin subscriptions:own", Body::None, "200", Body::Page("DeliveryInfo")) },
    r("post", "/api/v1/subscriptions/{id}/redeliver", "Deliver one event or a cursor range again", "subscriptions:admin subscriptions:own", Body::Json("RedeliverRequest"), "202", Body::Json("SubscriptionInfo")),
    Route { query: &[("dry_run", "true: report the drift, change nothing")], ..r("post", "/api/v1/subscriptions/{id}/reconcile", "Compare a SCIM target's Users with what Muster says they should be and repair the drift", "subscriptions:admin subscriptions:own", Body::None, "200", Body::Json("ReconcileReport")) },
    r("post", "/api/v1/admin/tokens", "Mint an admin API token for yourself, with a name and a lifetime (default and maximum from the configuration); the token is shown once", "tenant:admin (admin users)", Body::Json("AdminTokenSpec"), "201", Body::Json("AdminTokenCreated")),
    r("get", "/api/v1/admin/tokens", "The tenant's admin API tokens: id, name, admin, created, expires, last use, revoked; never a token or its digest", "tenant:admin (admin users)", Body::None, "200", Body::List("AdminTokenInfo")),
    r("post", "/api/v1/admin/tokens/{id}/revoke", "Revoke an admin API token at once (`current`: the token this request presents)", "tenant:admin (admin users)", Body::None, "200", Body::Json("AdminTokenInfo")),
    // Effective dates (docs/people.md#effective-dates).
    r("get", "/api/v1/admin/master-key", "The master key ring: key ids (never keys), and the key each live instance seals with; the installation operator only", "tenant:admin", Body::None, "200", Body::Raw(&["application/json"])),
    r("post", "/api/v1/admin/master-key/rotate", "Make a new master key current and re-seal every sealed value under it; the old key stays as a previous key; the installation operator only", "tenant:admin", Body::None, "200", Body::Raw(&["application/json"])),
    r("post", "/api/v1/admin/master-key/retire-previous", "Forget the previous master keys once no instance and no waiting upload needs them (409 saying why otherwise); the installation operator only", "tenant:admin", Body::None, "200", Body::Raw(&["application/json"])),
    r("post", "/api/v1/effective-dates/run", "Apply the tenant's due effective-date transitions now", "tenant:admin", Body::None, "200", Body::Json("EffectiveDatesRun")),
    r("get", "/healthz", "Liveness", "", Body::None, "200", Body::Raw(&["text/plain"])),
    r("get", "/readyz", "Readiness (the database answers)", "", Body::None, "200", Body::Raw(&["text/plain"])),
    r("get", "/openapi.json", "This document", "", Body::None, "200", Body::Raw(&["application/json"])),
    r("get", "/metrics", "Prometheus metrics (OpenMetrics text), with the metrics token of metrics.token_file; 404 when none is configured", "metrics token", Body::None, "200", Body::Raw(&["application/openmetrics-text"])),
];

fn schema_ref(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

fn schema_of(body: Body) -> Option<RefOr<Schema>> {
    match body {
        Body::None | Body::Raw(_) => None,
        Body::Json(n) => Some(schema_ref(n)),
        Body::List(n) => Some(ArrayBuilder::new().items(schema_ref(n)).into()),
        Body::Page(n) => Some(
            ObjectBuilder::new()
                .property("items", ArrayBuilder::new().items(schema_ref(n)))
                .required("items")
                // null on the last page.
                .property(
                    "next_cursor",
                    ObjectBuilder::new().schema_type(utoipa::openapi::schema::SchemaType::Array(
                        vec![Type::String, Type::Null],
                    )),
                )
                .into(),
        ),
    }
}

fn content(body: Body) -> Vec<(String, utoipa::openapi::Content)> {
    match body {
        Body::None => Vec::new(),
        Body::Raw(types) => types
            .iter()
            .map(|t| (t.to_string(), ContentBuilder::new().build()))
            .collect(),
        other => {
            let mut c = ContentBuilder::new();
            if let Some(s) = schema_of(other) {
                c = c.schema(Some(s));
            }
            vec![("application/json".to_string(), c.build())]
        }
    }
}

/// A query parameter's schema, as its handler reads it: the types, ranges
/// and enums the gateway accepts (booleans also as 1/0/yes/no).
fn query_schema(path: &str, name: &str) -> RefOr<Schema> {
    let int = |min: i64, max: Option<i64>| {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(min))
            .maximum(max)
    };
    let one_of = |values: &[&str]| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(values.iter().copied()))
    };
    let b = match (path, name) {
        ("/api/v1/changes", "wait") => int(0, Some(30)),
        (_, "wait") => int(0, Some(3600)),
        (_, "limit") => int(1, Some(1000)),
        (_, "version") => int(1, None),
        ("/api/v1/imports", "after") => ObjectBuilder::new().schema_type(Type::String),
        (_, "after") => int(0, None),
        (_, "dry_run" | "allow_mass_deactivation") => {
            ObjectBuilder::new().schema_type(Type::Boolean)
        }
        (_, "mode") => one_of(&["upsert", "snapshot"]),
        (_, "format") => one_of(&["csv", "jsonl", "scim"]),
        (_, "encryption") => one_of(&["none", "pgp", "openpgp", "age"]),
        (_, "state") => return schema_ref("ImportState"),
        (_, "max_deactivate_percent") => ObjectBuilder::new()
            .schema_type(Type::Number)
            .minimum(Some(0))
            .maximum(Some(100)),
        (_, "encryption_key_id") => ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(128)),
        (_, "header_map") => ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("a JSON object, URL-encoded")),
        _ => ObjectBuilder::new().schema_type(Type::String),
    };
    b.into()
}

/// A header parameter of `min..=max` printable ASCII characters.
fn header(
    name: &str,
    description: &str,
    min: usize,
    max: usize,
) -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(min))
                .max_length(Some(max))
                .pattern(Some("^[\\x20-\\x7E]+$")),
        ))
        .build()
}

/// The form body of `/oauth2/token` (RFC 6749 4.4.2, 2.3.1; RFC 7523 2.2)
/// or `/oauth2/revoke` (RFC 7009 2.1).
fn oauth_form(path: &str) -> RefOr<Schema> {
    let text = || ObjectBuilder::new().schema_type(Type::String);
    let mut o = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property(
            "client_id",
            text().description(Some("client_secret_post, or with private_key_jwt")),
        )
        .property(
            "client_secret",
            text().description(Some("client_secret_post")),
        )
        .property(
            "client_assertion_type",
            text().enum_values(Some([
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ])),
        )
        .property(
            "client_assertion",
            text().description(Some("private_key_jwt: the signed JWT")),
        );
    if path == "/oauth2/token" {
        o = o
            .property(
                "grant_type",
                text().enum_values(Some(["client_credentials"])),
            )
            .required("grant_type")
            .property(
                "scope",
                text().description(Some(
                    "space-separated permissions; default: all of the client's",
                )),
            );
    } else {
        o = o.property("token", text()).required("token").property(
            "token_type_hint",
            text().enum_values(Some(["access_token"])),
        );
    }
    o.into()
}

fn method(m: &str) -> HttpMethod {
    match m {
        "post" => HttpMethod::Post,
        "put" => HttpMethod::Put,
        "delete" => HttpMethod::Delete,
        "patch" => HttpMethod::Patch,
        _ => HttpMethod::Get,
    }
}

/// The document for a gateway whose public URL is `server`.
pub fn build(server: &str) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc.servers = Some(vec![Server::new(server)]);
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
    );
    // How a client gets that bearer token: the client-credentials grant,
    // its scopes the permissions.
    components.add_security_scheme(
        "oauth2",
        SecurityScheme::OAuth2(OAuth2::new([Flow::ClientCredentials(
            ClientCredentials::new(
                format!("{server}/oauth2/token"),
                Scopes::from_iter(
                    muster_core::policy::Permission::ALL
                        .iter()
                        .map(|p| (p.as_str(), p.as_str())),
                ),
            ),
        )])),
    );
    /// A route's permission as its description says it; several are
    /// alternatives.
    fn needs(permission: &str) -> String {
        let names: Vec<String> = permission
            .split_whitespace()
            .map(|p| format!("`{p}`"))
            .collect();
        match names.as_slice() {
            [one] => format!("Needs the permission {one}."),
            many => format!("Needs one of the permissions {}.", many.join(", ")),
        }
    }
    for route in ROUTES {
        let mut op = OperationBuilder::new()
            .summary(Some(route.summary))
            .description(
                if route.permission.is_empty() || route.permission == "token" {
                    None
                } else {
                    Some(needs(route.permission))
                },
            );
        if !route.permission.is_empty() {
            op = op.security(SecurityRequirement::new("bearer", Vec::<String>::new()));
            // Either of several permissions: one requirement each (OpenAPI
            // security requirements are alternatives).
            let scopes: Vec<&str> = route
                .permission
                .split_whitespace()
                .filter_map(muster_core::policy::Permission::parse)
                .map(|p| p.as_str())
                .collect();
            if scopes.is_empty() {
                op = op.security(SecurityRequirement::new("oauth2", Vec::<String>::new()));
            }
            for scope in scopes {
                op = op.security(SecurityRequirement::new("oauth2", [scope]));
            }
        }
        if route.path.starts_with("/api/v1/") {
            op = op.parameter(header(
                "On-Behalf-Of",
                "who the request acts for; recorded in the audit trail, never used to decide anything",
                1,
                256,
            ));
        }
        if route.path == "/api/v1/imports" && route.method == "post" {
            op = op.parameter(header(
                "Idempotency-Key",
                "the same key, parameters and file from the same client answer with the first import; another file or parameters with a used key are 422 idempotency_key_reused",
                1,
                255,
            ));
        }
        for seg in route.path.split('/') {
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                op = op.parameter(
                    ParameterBuilder::new()
                        .name(name)
                        .parameter_in(ParameterIn::Path)
                        .required(Required::True)
                        .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
                );
            }
        }
        for (name, desc) in route.query {
            op = op.parameter(
                ParameterBuilder::new()
                    .name(*name)
                    .parameter_in(ParameterIn::Query)
                    .required(Required::False)
                    .description(Some(*desc))
                    .schema(Some(query_schema(route.path, name))),
            );
        }
        let req = if route.path.starts_with("/oauth2/") {
            vec![(
                "application/x-www-form-urlencoded".to_owned(),
                ContentBuilder::new()
                    .schema(Some(oauth_form(route.path)))
                    .build(),
            )]
        } else {
            content(route.request)
        };
        if !req.is_empty() {
            let mut b = RequestBodyBuilder::new().required(Some(Required::True));
            for (t, c) in req {
                b = b.content(t, c);
            }
            op = op.request_body(Some(b.build()));
        }
        let mut ok = ResponseBuilder::new().description("success");
        for (t, c) in content(route.response) {
            ok = ok.content(t, c);
        }
        let ok = ok.build();
        if route.path == "/api/v1/imports" && route.method == "post" {
            // 202 while it runs; 200 once final (wait=) or for a repeated key.
            op = op.response("200", ok.clone());
        }
        op = op.response(route.status, ok);
        let problem = ResponseBuilder::new()
            .description("an RFC 9457 problem document (RFC 6749 5.2 error on /oauth2)")
            .content(
                "application/problem+json",
                ContentBuilder::new()
                    .schema(Some(schema_ref("Problem")))
                    .build(),
            )
            .build();
        op = op.response("default", problem);
        doc.paths
            .add_path_operation(route.path, vec![method(route.method)], op.build());
    }
    doc
}

pub async fn document(
    axum::extract::State(state): axum::extract::State<crate::base::state::AppState>,
) -> Json<utoipa::openapi::OpenApi> {
    Json(build(&state.issuer))
}

#[cfg(test)]
mod tests {
    use super::ROUTES;

    /// Every path the router serves (read from its source: `.route(` and
    /// the string that follows) is in the route table, so `/openapi.json`
    /// and the isolation matrix driven by it miss no route.
    /// `/openapi.json` lists every error code a problem can carry, and a
    /// problem's `code` points at that list.
    #[test]
    fn the_document_lists_the_error_codes() {
        let doc = serde_json::to_value(super::build("https://gw.example")).unwrap();
        let schemas = &doc["components"]["schemas"];
        let listed: Vec<&str> = schemas["ErrorCode"]["enum"]
            .as_array()
            .expect("ErrorCode is a string enum")
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        for code in muster_proto::ErrorCode::ALL {
            assert!(
                listed.contains(&code.as_str()),
                "{code} is not in /openapi.json"
            );
        }
        assert_eq!(listed.len(), muster_proto::ErrorCode::ALL.len());
        assert_eq!(
            schemas["Problem"]["properties"]["code"]["$ref"],
            "#/components/schemas/ErrorCode"
        );
    }

    /// What an integrator reads off the document is what the handlers do:
    /// typed query parameters, the headers, both answers of an upload, the
    /// token endpoint's form, how to get a token, where the gateway is.
    #[test]
    fn the_document_tells_the_truth_about_parameters_headers_answers_and_auth() {
        let doc = serde_json::to_value(super::build("https://gw.example")).unwrap();
        assert_eq!(doc["servers"][0]["url"], "https://gw.example");
        let flow = &doc["components"]["securitySchemes"]["oauth2"]["flows"]["clientCredentials"];
        assert_eq!(flow["tokenUrl"], "https://gw.example/oauth2/token");
        assert!(flow["scopes"]["imports:create"].is_string(), "{flow}");
        let upload = &doc["paths"]["/api/v1/imports"]["post"];
        let param = |name: &str| {
            upload["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == name)
                .unwrap_or_else(|| panic!("no parameter {name}"))
                .clone()
        };
        assert_eq!(param("wait")["schema"]["type"], "integer");
        assert_eq!(param("dry_run")["schema"]["type"], "boolean");
        assert_eq!(
            param("mode")["schema"]["enum"],
            serde_json::json!(["upsert", "snapshot"])
        );
        assert_eq!(
            param("format")["schema"]["enum"],
            serde_json::json!(["csv", "jsonl", "scim"])
        );
        assert_eq!(param("max_deactivate_percent")["schema"]["type"], "number");
        assert_eq!(param("Idempotency-Key")["in"], "header");
        assert_eq!(param("Idempotency-Key")["schema"]["maxLength"], 255);
        assert_eq!(param("On-Behalf-Of")["in"], "header");
        assert!(param("mapping")["description"]
            .as_str()
            .unwrap()
            .contains("required"));
        for status in ["200", "202"] {
            assert_eq!(
                upload["responses"][status]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ImportInfo",
                "{status}"
            );
        }
        let security: Vec<&str> = upload["security"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r.as_object().unwrap().keys().map(String::as_str))
            .collect();
        assert_eq!(security, ["bearer", "oauth2"]);
        let form = &doc["paths"]["/oauth2/token"]["post"]["requestBody"]["content"]
            ["application/x-www-form-urlencoded"]["schema"];
        assert_eq!(
            form["properties"]["grant_type"]["enum"],
            serde_json::json!(["client_credentials"])
        );
        assert_eq!(form["required"], serde_json::json!(["grant_type"]));
        let changes = &doc["paths"]["/api/v1/changes"]["get"]["parameters"];
        let wait = changes
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "wait")
            .unwrap();
        assert_eq!(wait["schema"]["maximum"], 30);
    }

    #[test]
    fn every_route_of_the_router_is_documented() {
        let src = include_str!("mod.rs");
        let mut found = 0;
        for (i, _) in src.match_indices(".route(") {
            let rest = &src[i..];
            let start = rest.find('"').expect("a path after .route(") + 1;
            let path = &rest[start..start + rest[start..].find('"').unwrap()];
            found += 1;
            let known = ROUTES
                .iter()
                .any(|r| r.path == path || r.path == format!("/api/v1{path}"));
            assert!(known, "{path} is served but not in openapi::ROUTES");
        }
        assert!(found > 40, "the router's routes were not found ({found})");
    }
}
