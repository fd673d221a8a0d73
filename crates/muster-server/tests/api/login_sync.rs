//! Login sync from identity-provider JWTs: issuers registered per tenant,
//! `POST /api/v1/login-sync` (the default tenant) and
//! `POST /api/v1/tenants/{tenant}/login-sync` creating and updating people
//! just in time, and each refusal with its own reason.
use crate::helpers::*;
use crate::support::keys::{encoding_key, fixture_path, jwks, kid, KEYS};
use crate::support::receiver::serve;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use muster_core::clock::Clock;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const ISS: &str = "https://idp.example.com/tenant-1";
const AUD: &str = "muster-login-sync";
const HS_SECRET: &str = "a-shared-secret-of-at-least-32-bytes!!";

const IDP_MAPPING: &str = r#"
key = "employee_number"

[attributes.given_name]
column = "given_name"
transforms = ["trim"]

[attributes.family_name]
column = "family_name"

[attributes.email]
column = "email"
transforms = ["trim", "lower"]

[attributes.department]
column = "department"
"#;

/// The fixture's key for `alg`, or the shared secret for HS256.
fn signing_key(alg: Algorithm) -> EncodingKey {
    match alg {
        Algorithm::HS256 => EncodingKey::from_secret(HS_SECRET.as_bytes()),
        _ => encoding_key(alg),
    }
}

pub(crate) fn sign(alg: Algorithm, claims: &Value) -> String {
    let mut h = Header::new(alg);
    h.kid = kid(alg).map(str::to_owned);
    encode(&h, claims, &signing_key(alg)).unwrap()
}

/// The claims of a login by `sub` for employee `emp`.
pub(crate) fn claims(app: &TestApp, emp: &str) -> Value {
    let now = app.clock.now().timestamp();
    json!({
        "iss": ISS,
        "aud": AUD,
        "sub": format!("{emp}@idp"),
        "iat": now,
        "exp": now + 300,
        "jti": uuid::Uuid::new_v4().to_string(),
        "employee_number": emp,
        "given_name": " Ada ",
        "family_name": "Lovelace",
        "email": "Ada@Example.com",
        "groups": ["staff"],
    })
}

/// The standard issuer's registration: Okta-like, with the `idp` mapping.
fn standard_issuer() -> Value {
    json!({
        "name": "okta",
        "issuer": ISS,
        "audience": AUD,
        "jwks": jwks(),
        "mapping": "idp",
        "roles_claim": "groups",
        "write_policy": {
            "attributes": ["given_name", "family_name", "email"],
            "roles": ["staff", "engineering"]
        }
    })
}

/// The `idp` mapping and an issuer with `extra` settings merged in.
async fn issuer_with(app: &TestApp, extra: Value) -> reqwest::Response {
    let r = app.put_mapping("idp", IDP_MAPPING).await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let mut spec = standard_issuer();
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            spec.as_object_mut().unwrap().remove(k);
        } else {
            spec[k] = v.clone();
        }
    }
    app.admin_post("/api/v1/issuers", spec).await
}

pub(crate) async fn issuer(app: &TestApp, extra: Value) {
    let r = issuer_with(app, extra).await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
}

pub(crate) async fn login(app: &TestApp, token: &str) -> reqwest::Response {
    app.http
        .post(app.url("/api/v1/login-sync"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn assert_synced(r: reqwest::Response, change: &str, version: i64) {
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["change"], change, "{v}");
    assert_eq!(v["version"], version, "{v}");
    assert_eq!(v["issuer"], "okta");
    assert!(v.get("attributes").is_none(), "no attribute values: {v}");
}

async fn assert_refused(r: reqwest::Response, code: &str) {
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/problem+json"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], code, "{v}");
    assert_eq!(v["status"], 401);
}

async fn person(app: &TestApp, id: &str) -> Value {
    app.get_as(&app.admin_token, &format!("/api/v1/people/{id}"))
        .await
        .json()
        .await
        .unwrap()
}

async fn audit(app: &TestApp) -> Vec<Value> {
    let v: Value = app
        .get_json_as(&app.admin_token, "/api/v1/audit?limit=1000")
        .await;
    v["items"].as_array().unwrap().clone()
}

async fn creates_then_updates(alg: Algorithm) {
    let app = spawn_app().await;
    issuer(&app, json!({})).await;
    assert_synced(
        login(&app, &sign(alg, &claims(&app, "E1"))).await,
        "created",
        1,
    )
    .await;
    let p = person(&app, "E1").await;
    assert_eq!(p["attributes"]["given_name"], "Ada");
    assert_eq!(p["attributes"]["email"], "ada@example.com");
    assert_eq!(p["roles"], json!(["staff"]));
    assert_eq!(p["updated_by"], "issuer:okta");
    assert_eq!(p["on_behalf_of"], "E1@idp");
    assert_eq!(p["source"], "login-sync");

    let mut c = claims(&app, "E1");
    c["family_name"] = json!("King");
    c["groups"] = json!(["staff", "engineering"]);
    assert_synced(login(&app, &sign(alg, &c)).await, "updated", 2).await;
    let p = person(&app, "E1").await;
    assert_eq!(p["attributes"]["family_name"], "King");
    assert_eq!(p["roles"], json!(["engineering", "staff"]));
    // The same claims again change nothing.
    let mut c2 = c.clone();
    c2["jti"] = json!(uuid::Uuid::new_v4().to_string());
    assert_synced(login(&app, &sign(alg, &c2)).await, "unchanged", 2).await;

    let entries = audit(&app).await;
    let created = entries
        .iter()
        .find(|e| e["action"] == "person.created")
        .unwrap();
    assert_eq!(created["principal"], "issuer:okta");
    assert_eq!(created["on_behalf_of"], "E1@idp");
    assert_eq!(created["source"], "login-sync");
}

#[tokio::test]
async fn a_valid_rs256_token_creates_then_updates_a_person_with_roles_from_a_claim() {
    creates_then_updates(Algorithm::RS256).await;
}

#[tokio::test]
async fn a_valid_es256_token_creates_then_updates_a_person_with_roles_from_a_claim() {
    creates_then_updates(Algorithm::ES256).await;
}

#[tokio::test]
async fn a_valid_eddsa_token_creates_then_updates_a_person_with_roles_from_a_claim() {
    creates_then_updates(Algorithm::EdDSA).await;
}

#[tokio::test]
async fn a_write_outside_the_issuers_policy_is_refused_naming_the_attribute() {
    let app = spawn_app().await;
    issuer(&app, json!({})).await;
    let mut c = claims(&app, "E2");
    c["department"] = json!("Finance");
    let r = login(&app, &sign(Algorithm::RS256, &c)).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], "not_permitted", "{v}");
    let e = &v["errors"][0];
    assert_eq!(e["attribute"], "department");
    assert_eq!(e["code"], "attribute_not_permitted");
    assert!(e["message"].as_str().unwrap().contains("issuer:okta"));
    assert!(!v.to_string().contains("Finance"), "no values: {v}");

    let mut c = claims(&app, "E2");
    c["groups"] = json!(["staff", "admin"]);
    let v: Value = login(&app, &sign(Algorithm::RS256, &c))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["errors"][0]["code"], "role_not_permitted", "{v}");
    assert!(v["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("'admin'"));
    // Nothing was written.
    assert_eq!(
        app.get_as(&app.admin_token, "/api/v1/people/E2")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_token_for_another_audience_is_refused() {
    let app = spawn_app().await;
    issuer(&app, json!({})).await;
    let mut c = claims(&app, "E3");
    c["aud"] = json!("someone-else");
    assert_refused(
        login(&app, &sign(Algorithm::RS256, &c)).await,
        "wrong_audience",
    )
    .await;
    // An array naming the audience is fine (RFC 7519 4.1.3).
    c["aud"] = json!(["someone-else", AUD]);
    assert_synced(login(&app, &sign(Algorithm::RS256, &c)).await, "created", 1).await;
}

#[tokio::test]
async fn an_expired_token_is_refused_beyond_the_issuers_clock_skew() {
    let app = spawn_app().await;
    issuer(&app, json!({ "clock_skew_seconds": 60 })).await;
    let now = app.clock.now().timestamp();
    let mut c = claims(&app, "E4");
    c["exp"] = json!(now - 61);
    assert_refused(
        login(&app, &sign(Algorithm::RS256, &c)).await,
        "token_expired",
    )
    .await;
    // Within the skew it still passes.
    c["exp"] = json!(now - 30);
    c["jti"] = json!("another");
    assert_synced(login(&app, &sign(Algorithm::RS256, &c)).await, "created", 1).await;
}

#[tokio::test]
async fn a_token_whose_nbf_is_in_the_future_is_refused() {
    let app = spawn_app().await;
    issuer(&app, json!({})).await;
    let mut c = claims(&app, "E5");
    c["nbf"] = json!(app.clock.now().timestamp() + 300);
    assert_refused(
        login(&app, &sign(Algorithm::RS256, &c)).await,
        "token_not_yet_valid",
    )
    .await;
}

#[tokio::test]
async fn a_reused_jti_is_refused() {
    let app = spawn_app().await;
    issuer(&app, json!({})).await;
    let t = sign(Algorithm::ES256, &claims(&app, "E6"));
    assert_synced(login(&app, &t).await, "created", 1).await;
    assert_refused(login(&app, &t).await, "jti_replayed").await;
}

#[tokio::test]
async fn an_unsecured_alg_none_token_is_refused() {
    use base64::Engine;
    let app = spawn_app().await;
    issuer(&app, json!({})).await;
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let t = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT"})),
        b64(claims(&app, "E7"))
    );
    assert_refused(login(&app, &t).await, "alg_none").await;
    // An issuer configured with alg none cannot exist.
    let r = app
        .admin_post(
            "/api/v1/issuers",
            json!({"name": "bad", "issuer": "https://bad.example", "audience": "x",
                   "algorithms": ["none"], "jwks": jwks(), "mapping": "idp"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn an_hs256_token_is_refused_when_the_issuer_has_no_secret() {
    let app = spawn_app().await;
    issuer(&app, json!({})).await;
    assert_refused(
        login(&app, &sign(Algorithm::HS256, &claims(&app, "E8"))).await,
        "hs256_not_configured",
    )
    .await;
    // And HS256 cannot be configured without a secret.
    let r = issuer_with(
        &app,
        json!({"name": "hs", "audience": "other", "algorithms": ["HS256"], "jwks": null}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn an_hs256_token_is_accepted_when_the_issuer_has_a_sealed_secret() {
    let app = spawn_app().await;
    issuer(
        &app,
        json!({"algorithms": ["HS256"], "hs256_secret": HS_SECRET, "jwks": null}),
    )
    .await;
    let shown: Value = app
        .get_json_as(&app.admin_token, "/api/v1/issuers/okta")
        .await;
    assert_eq!(shown["hs256"], true);
    assert!(!shown.to_string().contains(HS_SECRET));
    assert_synced(
        login(&app, &sign(Algorithm::HS256, &claims(&app, "E9"))).await,
        "created",
        1,
    )
    .await;
    // The secret is not in the database in plaintext.
    for f in ["muster.db", "muster.db-wal"] {
        let db = std::fs::read(app.dir.path().join(f)).unwrap_or_default();
        assert!(!db
            .windows(HS_SECRET.len())
            .any(|w| w == HS_SECRET.as_bytes()));
    }
    // RS256 is not accepted by this issuer.
    assert_refused(
        login(&app, &sign(Algorithm::RS256, &claims(&app, "E9"))).await,
        "alg_not_allowed",
    )
    .await;
}

#[tokio::test]
async fn a_token_from_an_unregistered_issuer_is_refused() {
    let app = spawn_app().await;
    issuer(&app, json!({})).await;
    let mut c = claims(&app, "E10");
    c["iss"] = json!("https://evil.example");
    assert_refused(
        login(&app, &sign(Algorithm::RS256, &c)).await,
        "unknown_issuer",
    )
    .await;
    assert_refused(
        app.http
            .post(app.url("/api/v1/login-sync"))
            .send()
            .await
            .unwrap(),
        "missing_token",
    )
    .await;
}

#[tokio::test]
async fn a_bad_signature_is_refused_and_every_refusal_is_audited_without_the_token() {
    let app = spawn_app().await;
    issuer(&app, json!({})).await;
    let good = sign(Algorithm::RS256, &claims(&app, "E11"));
    // The RSA key's signature of another message.
    let forged = {
        let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
        let other = sign(Algorithm::RS256, &json!({"x": 1}));
        parts[2] = other.rsplit('.').next().unwrap().to_owned();
        parts.join(".")
    };
    assert_refused(login(&app, &forged).await, "bad_signature").await;
    let entries = audit(&app).await;
    let failed: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"] == "auth.failed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["principal"], "issuer:okta");
    assert_eq!(failed[0]["source"], "login-sync");
    assert_eq!(failed[0]["detail"]["reason"], "bad_signature");
    let text = Value::Array(entries).to_string();
    let sig = forged.rsplit('.').next().unwrap();
    assert!(!text.contains(sig) && !text.contains(&forged));
}

/// A JWK Set server on port 0: the first fetch serves only the RSA key,
/// every later one the whole set (the IdP rotated in new keys).
async fn rotating_jwks_server() -> (String, Arc<AtomicUsize>) {
    let fetches = Arc::new(AtomicUsize::new(0));
    let f = fetches.clone();
    let full = jwks();
    let first = json!({ "keys": [full["keys"][0].clone()] });
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let n = f.fetch_add(1, Ordering::SeqCst);
            let body = if n == 0 { first.clone() } else { full.clone() };
            async move { axum::Json(body) }
        }),
    );
    (serve(app, "/jwks.json").await, fetches)
}

#[tokio::test]
async fn an_unknown_kid_refetches_the_jwks_url_once_and_then_is_refused() {
    // The JWK Set is served on loopback.
    let app = spawn_app_with(vec![(
        "MUSTER_OUTBOUND__ALLOW_PRIVATE_DESTINATIONS",
        "true",
    )])
    .await;
    let (url, fetches) = rotating_jwks_server().await;
    issuer(&app, json!({"jwks": null, "jwks_url": url})).await;
    // The first fetch has rsa-1.
    assert_synced(
        login(&app, &sign(Algorithm::RS256, &claims(&app, "E12"))).await,
        "created",
        1,
    )
    .await;
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    // Cached: no fetch.
    let mut c = claims(&app, "E12");
    c["family_name"] = json!("Byron");
    assert_synced(login(&app, &sign(Algorithm::RS256, &c)).await, "updated", 2).await;
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    // ec-1 is not in the cached set: one refetch finds it.
    app.clock.advance(chrono::Duration::seconds(15));
    let mut c = claims(&app, "E12");
    c["family_name"] = json!("King");
    assert_synced(login(&app, &sign(Algorithm::ES256, &c)).await, "updated", 3).await;
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
    // A kid no set has: refused after one refetch...
    app.clock.advance(chrono::Duration::seconds(15));
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some("rsa-9".into());
    let t = encode(&h, &claims(&app, "E12"), &encoding_key(Algorithm::RS256)).unwrap();
    assert_refused(login(&app, &t).await, "unknown_kid").await;
    assert_eq!(fetches.load(Ordering::SeqCst), 3);
    // ...and right after, refused without another fetch.
    let t = encode(&h, &claims(&app, "E12"), &encoding_key(Algorithm::RS256)).unwrap();
    assert_refused(login(&app, &t).await, "unknown_kid").await;
    assert_eq!(fetches.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn an_issuer_is_created_listed_shown_and_deleted_by_a_clients_admin() {
    let app = spawn_app().await;
    issuer(&app, json!({})).await;
    let list: Value = app.get_json_as(&app.admin_token, "/api/v1/issuers").await;
    assert_eq!(list[0]["name"], "okta");
    assert_eq!(list[0]["algorithms"], json!(["RS256", "ES256", "EdDSA"]));
    assert_eq!(list[0]["clock_skew_seconds"], 60);
    assert_eq!(list[0]["principal"], "issuer:okta");
    // The same name again is a conflict.
    assert_eq!(
        issuer_with(&app, json!({})).await.status(),
        StatusCode::CONFLICT
    );
    // A syncer lacks clients:admin.
    let (_, token) = app.hr_setup().await;
    assert_eq!(
        app.get_as(&token, "/api/v1/issuers").await.status(),
        StatusCode::FORBIDDEN
    );
    let r = app
        .http
        .delete(app.url("/api/v1/issuers/okta"))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get_as(&app.admin_token, "/api/v1/issuers/okta")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_refused(
        login(&app, &sign(Algorithm::RS256, &claims(&app, "E13"))).await,
        "unknown_issuer",
    )
    .await;
}

#[tokio::test]
async fn a_token_signed_by_pyjwt_creates_a_person() {
    let Some(python) =
        crate::private_key_jwt::python_with_pyjwt("a_token_signed_by_pyjwt_creates_a_person")
    else {
        return;
    };
    let app = spawn_app().await;
    issuer(&app, json!({})).await;
    let script = r#"
import sys, time, uuid, jwt
key = open(sys.argv[1]).read()
now = int(time.time())
claims = {"iss": sys.argv[2], "aud": sys.argv[3], "sub": "py@idp", "iat": now,
          "exp": now + 60, "jti": str(uuid.uuid4()), "employee_number": sys.argv[6],
          "given_name": "Grace", "groups": ["staff"]}
print(jwt.encode(claims, key, algorithm=sys.argv[4], headers={"kid": sys.argv[5]}))
"#;
    for ((alg, file, kid), emp) in KEYS.into_iter().zip(["P1", "P2", "P3"]) {
        let key = fixture_path(file);
        let out = std::process::Command::new(&python)
            .arg("-c")
            .arg(script)
            .arg(&key)
            .arg(ISS)
            .arg(AUD)
            .arg(alg)
            .arg(kid)
            .arg(emp)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let t = String::from_utf8(out.stdout).unwrap();
        assert_synced(login(&app, t.trim()).await, "created", 1).await;
        let p = person(&app, emp).await;
        assert_eq!(p["attributes"]["given_name"], "Grace");
        assert_eq!(p["roles"], json!(["staff"]));
        assert_eq!(p["on_behalf_of"], "py@idp");
    }
}

#[tokio::test]
async fn a_login_naming_an_unknown_manager_is_refused_and_a_known_one_accepted() {
    let app = spawn_app().await;
    let mapping =
        format!("{IDP_MAPPING}\n[attributes.manager_external_id]\ncolumn = \"manager\"\n");
    let r = app.put_mapping("idp_mgr", &mapping).await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    issuer(
        &app,
        json!({
            "mapping": "idp_mgr",
            "write_policy": {
                "attributes": ["given_name", "family_name", "email", "manager_external_id"],
                "roles": ["staff"]
            }
        }),
    )
    .await;

    // A manager who is neither stored nor the person: refused, naming the
    // attribute and never the value; nothing written.
    let mut c = claims(&app, "E1");
    c["manager"] = json!("GHOST9");
    let r = login(&app, &sign(Algorithm::RS256, &c)).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["errors"][0]["code"], "unknown_manager", "{v}");
    assert_eq!(v["errors"][0]["attribute"], "manager_external_id", "{v}");
    assert!(!v.to_string().contains("GHOST9"), "no values: {v}");
    assert_eq!(
        app.get_as(&app.admin_token, "/api/v1/people/E1")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    // Oneself as manager: refused too.
    let mut c = claims(&app, "E1");
    c["manager"] = json!("E1");
    let v: Value = login(&app, &sign(Algorithm::RS256, &c))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["errors"][0]["code"], "self_manager", "{v}");

    // Once the manager has synced, the report's login goes through.
    let r = login(&app, &sign(Algorithm::RS256, &claims(&app, "M1"))).await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let mut c = claims(&app, "E1");
    c["manager"] = json!("M1");
    let r = login(&app, &sign(Algorithm::RS256, &c)).await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    assert_eq!(
        person(&app, "E1").await["attributes"]["manager_external_id"],
        "M1"
    );
}

/// Registers the `idp` mapping and the standard issuer in a tenant, as
/// that tenant's administrator.
async fn issuer_as(app: &TestApp, admin_token: &str) -> reqwest::Response {
    let r = app
        .http
        .put(app.url("/api/v1/mappings/idp"))
        .bearer_auth(admin_token)
        .header("content-type", "application/toml")
        .body(IDP_MAPPING)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    app.http
        .post(app.url("/api/v1/issuers"))
        .bearer_auth(admin_token)
        .json(&standard_issuer())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn two_tenants_registering_the_same_issuer_each_get_only_the_logins_of_their_own_route() {
    let app = spawn_app().await;
    let r = app
        .admin_post("/api/v1/tenants", json!({"id": "acme", "name": "Acme"}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let acme: Value = r.json().await.unwrap();
    let acme = acme["admin_token"].as_str().unwrap().to_owned();

    // Acme registers the default tenant's identity provider first; the
    // default tenant can still register it as its own.
    assert_eq!(issuer_as(&app, &acme).await.status(), StatusCode::CREATED);
    assert_eq!(
        issuer_as(&app, &app.admin_token).await.status(),
        StatusCode::CREATED
    );

    // A login through the default tenant's route lands there, never in acme.
    assert_synced(
        login(&app, &sign(Algorithm::RS256, &claims(&app, "E1"))).await,
        "created",
        1,
    )
    .await;
    assert_eq!(person(&app, "E1").await["attributes"]["given_name"], "Ada");
    assert_eq!(
        app.get_as(&acme, "/api/v1/people/E1").await.status(),
        StatusCode::NOT_FOUND
    );

    // A login through acme's route lands in acme, never in the default.
    let r = app
        .http
        .post(app.url("/api/v1/tenants/acme/login-sync"))
        .bearer_auth(sign(Algorithm::RS256, &claims(&app, "E2")))
        .send()
        .await
        .unwrap();
    assert_synced(r, "created", 1).await;
    let p: Value = app.get_json_as(&acme, "/api/v1/people/E2").await;
    assert_eq!(p["updated_by"], "issuer:okta", "{p}");
    assert_eq!(
        app.get_as(&app.admin_token, "/api/v1/people/E2")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    // A tenant without the issuer, or with no such tenant, refuses it.
    for tenant in ["nosuch", "NOT A TENANT"] {
        let r = app
            .http
            .post(app.url(&format!(
                "/api/v1/tenants/{}/login-sync",
                urlencoding::encode(tenant)
            )))
            .bearer_auth(sign(Algorithm::RS256, &claims(&app, "E3")))
            .send()
            .await
            .unwrap();
        assert_refused(r, "unknown_issuer").await;
    }
}
