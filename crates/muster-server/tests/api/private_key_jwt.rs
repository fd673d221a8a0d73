//! `private_key_jwt` client authentication (RFC 7523) at `/oauth2/token`,
//! including an assertion made by a standard Python library (PyJWT).
use crate::helpers::*;
use crate::support::keys::{encoding_key, fixture, fixture_path, jwks, kid, KEYS};
use jsonwebtoken::{encode, Algorithm, Header};
use muster_core::clock::Clock;
use reqwest::StatusCode;
use serde_json::{json, Value};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A syncer whose private_key_jwt keys are the fixtures' JWKS.
async fn jwt_client(app: &TestApp) -> Client {
    let c = app.syncer().await;
    let jwks = jwks();
    let r = app
        .http
        .put(app.url(&format!("/api/v1/clients/{}/keys/jwt", c.id)))
        .bearer_auth(&app.admin_token)
        .json(&json!({ "jwks": jwks }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    c
}

pub(crate) fn claims(app: &TestApp, c: &Client) -> Value {
    let now = app.clock.now().timestamp();
    json!({
        "iss": c.id,
        "sub": c.id,
        "aud": app.url("/oauth2/token"),
        "iat": now,
        "exp": now + 120,
        "jti": uuid::Uuid::new_v4().to_string(),
    })
}

pub(crate) fn assertion(alg: Algorithm, with_kid: bool, claims: &Value) -> String {
    let mut h = Header::new(alg);
    if with_kid {
        h.kid = kid(alg).map(str::to_owned);
    }
    encode(&h, claims, &encoding_key(alg)).unwrap()
}

pub(crate) async fn token_with(app: &TestApp, assertion: &str) -> reqwest::Response {
    app.http
        .post(app.url("/oauth2/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
        ])
        .send()
        .await
        .unwrap()
}

async fn assert_invalid_client(r: reqwest::Response, why: &str) {
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "invalid_client", "{v}");
    let d = v["error_description"].as_str().unwrap();
    assert!(d.contains(why), "{d:?} should mention {why:?}");
}

async fn assert_token(app: &TestApp, r: reqwest::Response) {
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{v}");
    let t = v["access_token"].as_str().unwrap();
    assert_eq!(
        app.get_as(t, "/api/v1/mappings").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_rs256_assertion_gets_a_token() {
    let app = spawn_app().await;
    let c = jwt_client(&app).await;
    let a = assertion(Algorithm::RS256, true, &claims(&app, &c));
    assert_token(&app, token_with(&app, &a).await).await;
}

#[tokio::test]
async fn an_es256_assertion_gets_a_token() {
    let app = spawn_app().await;
    let c = jwt_client(&app).await;
    let a = assertion(Algorithm::ES256, true, &claims(&app, &c));
    assert_token(&app, token_with(&app, &a).await).await;
}

#[tokio::test]
async fn an_eddsa_assertion_without_kid_gets_a_token_and_the_issuer_is_a_valid_audience() {
    let app = spawn_app().await;
    let c = jwt_client(&app).await;
    let mut cl = claims(&app, &c);
    cl["aud"] = json!(app.base);
    let a = assertion(Algorithm::EdDSA, false, &cl);
    assert_token(&app, token_with(&app, &a).await).await;
}

#[tokio::test]
async fn a_single_pem_key_can_be_registered_instead_of_a_jwks() {
    let app = spawn_app().await;
    let c = app.syncer().await;
    let r = app
        .http
        .put(app.url(&format!("/api/v1/clients/{}/keys/jwt", c.id)))
        .bearer_auth(&app.admin_token)
        .json(&json!({ "public_key_pem": fixture("ec.pub.pem") }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let a = assertion(Algorithm::ES256, false, &claims(&app, &c));
    assert_token(&app, token_with(&app, &a).await).await;
}

#[tokio::test]
async fn a_reused_jti_is_refused() {
    let app = spawn_app().await;
    let c = jwt_client(&app).await;
    let a = assertion(Algorithm::RS256, true, &claims(&app, &c));
    assert_eq!(token_with(&app, &a).await.status(), StatusCode::OK);
    assert_invalid_client(token_with(&app, &a).await, "jti was already used").await;
}

#[tokio::test]
async fn an_assertion_for_another_audience_is_refused() {
    let app = spawn_app().await;
    let c = jwt_client(&app).await;
    let mut cl = claims(&app, &c);
    cl["aud"] = json!("https://elsewhere.example/oauth2/token");
    let a = assertion(Algorithm::ES256, true, &cl);
    assert_invalid_client(token_with(&app, &a).await, "aud").await;
}

#[tokio::test]
async fn an_assertion_expiring_too_far_ahead_is_refused() {
    let app = spawn_app().await;
    let c = jwt_client(&app).await;
    let mut cl = claims(&app, &c);
    // An hour, as OAuth libraries sign by default, is accepted ...
    cl["exp"] = json!(app.clock.now().timestamp() + 3600);
    let a = assertion(Algorithm::EdDSA, true, &cl);
    assert_token(&app, token_with(&app, &a).await).await;
    // ... and no more.
    cl["exp"] = json!(app.clock.now().timestamp() + 3600 + 31);
    cl["jti"] = json!("another");
    let a = assertion(Algorithm::EdDSA, true, &cl);
    assert_invalid_client(token_with(&app, &a).await, "exp lies further ahead").await;
}

#[tokio::test]
async fn an_hour_long_assertion_is_refused_once_older_than_its_age() {
    let app = spawn_app().await;
    let c = jwt_client(&app).await;
    let mut cl = claims(&app, &c);
    cl["exp"] = json!(app.clock.now().timestamp() + 3600);
    let a = assertion(Algorithm::ES256, true, &cl);
    assert_token(&app, token_with(&app, &a).await).await;
    // Its jti is forgotten after five minutes; the age rule refuses it then.
    app.clock.advance(chrono::Duration::seconds(300 + 31));
    assert_invalid_client(token_with(&app, &a).await, "iat lies further back").await;
    // Without iat, an assertion may live only as long as the age.
    let mut cl = claims(&app, &c);
    cl.as_object_mut().unwrap().remove("iat");
    cl["exp"] = json!(app.clock.now().timestamp() + 3600);
    let a = assertion(Algorithm::ES256, true, &cl);
    assert_invalid_client(token_with(&app, &a).await, "iat is required").await;
}

#[tokio::test]
async fn an_expired_assertion_is_refused_by_the_injected_clock() {
    let app = spawn_app().await;
    let c = jwt_client(&app).await;
    let a = assertion(Algorithm::RS256, true, &claims(&app, &c));
    app.clock.advance(chrono::Duration::seconds(600));
    assert_invalid_client(token_with(&app, &a).await, "expired").await;
}

#[tokio::test]
async fn an_assertion_signed_by_an_unregistered_key_is_refused() {
    let app = spawn_app().await;
    let c = app.syncer().await;
    // Registers only the RSA key; signs with the EC key under the RSA kid.
    let jwks = jwks();
    let only_rsa = json!({ "keys": [jwks["keys"][0].clone()] });
    app.http
        .put(app.url(&format!("/api/v1/clients/{}/keys/jwt", c.id)))
        .bearer_auth(&app.admin_token)
        .json(&json!({ "jwks": only_rsa }))
        .send()
        .await
        .unwrap();
    // Until the signature verifies, the answer does not say why (it would
    // tell whether the client exists); the audit entry does.
    let a = assertion(Algorithm::ES256, false, &claims(&app, &c));
    assert_invalid_client(token_with(&app, &a).await, "client authentication failed").await;
    // Same alg, wrong key: another RSA key's signature under kid rsa-1.
    let other = fake_rsa_signature(&assertion(Algorithm::RS256, true, &claims(&app, &c)));
    assert_invalid_client(
        token_with(&app, &other).await,
        "client authentication failed",
    )
    .await;
}

/// The assertion with its signature replaced by another message's.
fn fake_rsa_signature(jwt: &str) -> String {
    let mut parts: Vec<&str> = jwt.split('.').collect();
    let forged = encode(
        &Header::new(Algorithm::RS256),
        &json!({"x": 1}),
        &encoding_key(Algorithm::RS256),
    )
    .unwrap();
    let sig = forged.rsplit('.').next().unwrap().to_owned();
    parts[2] = &sig;
    parts.join(".")
}

#[tokio::test]
async fn the_metadata_advertises_private_key_jwt() {
    let app = spawn_app().await;
    let v: Value = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert!(v["token_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("private_key_jwt")));
    assert_eq!(
        v["token_endpoint_auth_signing_alg_values_supported"],
        json!(["RS256", "ES256", "EdDSA"])
    );
}

#[tokio::test]
async fn an_assertion_made_by_pyjwt_gets_a_token() {
    let Some(python) = python_with_pyjwt("an_assertion_made_by_pyjwt_gets_a_token") else {
        return;
    };
    let app = spawn_app().await;
    let c = jwt_client(&app).await;
    let script = r#"
import sys, time, uuid, jwt
key = open(sys.argv[1]).read()
now = int(time.time())
claims = {"iss": sys.argv[2], "sub": sys.argv[2], "aud": sys.argv[3],
          "iat": now, "exp": now + 60, "jti": str(uuid.uuid4())}
print(jwt.encode(claims, key, algorithm=sys.argv[4], headers={"kid": sys.argv[5]}))
"#;
    for (alg, file, kid) in KEYS {
        let key = fixture_path(file);
        let out = std::process::Command::new(&python)
            .arg("-c")
            .arg(script)
            .arg(&key)
            .arg(&c.id)
            .arg(app.url("/oauth2/token"))
            .arg(alg)
            .arg(kid)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let a = String::from_utf8(out.stdout).unwrap();
        assert_token(&app, token_with(&app, a.trim()).await).await;
    }
}

#[tokio::test]
async fn authlib_gets_a_token_with_its_default_assertion() {
    let Some(python) = venv_python(
        "authlib_gets_a_token_with_its_default_assertion",
        "authlib, requests",
    ) else {
        return;
    };
    let app = spawn_app().await;
    let c = jwt_client(&app).await;
    // Authlib's OAuth2Session with PrivateKeyJWT as its documentation
    // shows it: RS256, an assertion valid for an hour.
    let script = r#"
import sys
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
key, client_id, token_url = open(sys.argv[1]).read(), sys.argv[2], sys.argv[3]
s = OAuth2Session(client_id, key, token_endpoint_auth_method="private_key_jwt")
s.register_client_auth_method(PrivateKeyJWT(token_url, headers={"kid": "rsa-1"}))
t = s.fetch_token(token_url, grant_type="client_credentials")
print(t["access_token"])
"#;
    let out = tokio::process::Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(fixture_path("rsa.key.pem"))
        .arg(&c.id)
        .arg(app.url("/oauth2/token"))
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    let r = app.get_as(token.trim(), "/api/v1/mappings").await;
    assert_eq!(r.status(), StatusCode::OK);
}

/// The virtualenv's Python with PyJWT (and `cryptography`, for RS256,
/// ES256 and EdDSA), which `scripts/install-test-tools` installs.
pub(crate) fn python_with_pyjwt(test: &str) -> Option<std::path::PathBuf> {
    venv_python(test, "jwt, cryptography")
}

#[tokio::test]
async fn the_sdk_fetches_tokens_with_private_key_jwt() {
    let app = spawn_app().await;
    let c = jwt_client(&app).await;
    for (_, file, kid) in KEYS {
        let key =
            muster_client::JwtAssertionKey::from_pem(&fixture(file), Some(kid.to_owned())).unwrap();
        let client = muster_client::Client::new(
            &app.base,
            muster_client::Auth::PrivateKeyJwt {
                client_id: c.id.clone(),
                key,
                scope: None,
            },
        )
        .unwrap();
        let t = client.request_token().await.unwrap();
        assert_eq!(t.token_type, "Bearer");
        client.mapping_list().await.unwrap();
    }
}

#[tokio::test]
async fn the_claims_are_checked_after_the_signature() {
    let app = spawn_app().await;
    let c = jwt_client(&app).await;
    // iss another client, with sub and client_id still this one.
    let mut cl = claims(&app, &c);
    cl["iss"] = json!("someone-else");
    let a = assertion(Algorithm::ES256, true, &cl);
    assert_invalid_client(token_with(&app, &a).await, "iss is not the client id").await;
    // No aud at all.
    let mut cl = claims(&app, &c);
    cl.as_object_mut().unwrap().remove("aud");
    let a = assertion(Algorithm::ES256, true, &cl);
    assert_invalid_client(token_with(&app, &a).await, "aud are required").await;
    // exp of the wrong type.
    let mut cl = claims(&app, &c);
    cl["exp"] = json!("tomorrow");
    let a = assertion(Algorithm::EdDSA, true, &cl);
    assert_invalid_client(token_with(&app, &a).await, "malformed").await;
    // aud as an array naming the issuer among others (RFC 7519 4.1.3).
    let mut cl = claims(&app, &c);
    cl["aud"] = json!(["https://elsewhere.example", app.url("")]);
    let a = assertion(Algorithm::RS256, true, &cl);
    assert_token(&app, token_with(&app, &a).await).await;
}

#[tokio::test]
async fn a_replaced_key_stops_working_at_once() {
    let app = spawn_app().await;
    let c = jwt_client(&app).await;
    let a = assertion(Algorithm::ES256, true, &claims(&app, &c));
    assert_token(&app, token_with(&app, &a).await).await;
    // The registration is replaced by the Ed25519 key alone: the P-256
    // key, parsed and kept from the grant above, is not used again.
    let r = app
        .http
        .put(app.url(&format!("/api/v1/clients/{}/keys/jwt", c.id)))
        .bearer_auth(&app.admin_token)
        .json(&json!({ "public_key_pem": fixture("ed25519.pub.pem") }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let a = assertion(Algorithm::ES256, false, &claims(&app, &c));
    assert_invalid_client(token_with(&app, &a).await, "client authentication failed").await;
    let a = assertion(Algorithm::EdDSA, false, &claims(&app, &c));
    assert_token(&app, token_with(&app, &a).await).await;
}
