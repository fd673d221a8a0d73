//! Signed requests (docs/authentication.md#signed-requests; RFC 9421): HMAC-SHA256 and Ed25519, every
//! refusal with its reason, and the streamed upload's digest check.
use crate::helpers::*;
use base64::Engine;
use chrono::Duration;
use muster_httpsig::{
    content_digest, sign, DigestAlgorithm, HmacKey, Request, SigningKey, SigningParams,
};
use reqwest::StatusCode;
use serde_json::{json, Value};

const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// How to sign, with knobs for the refusal cases.
struct Sig {
    keyid: String,
    key: SigningKey,
    created: i64,
    nonce: Option<String>,
    components: Vec<&'static str>,
}

impl Sig {
    fn new(app: &TestApp, keyid: &str, key: SigningKey) -> Self {
        Sig {
            keyid: keyid.to_owned(),
            key,
            created: app.clock.now_ts(),
            nonce: Some(uuid::Uuid::new_v4().simple().to_string()),
            components: vec!["@method", "@target-uri"],
        }
    }
}

trait NowTs {
    fn now_ts(&self) -> i64;
}
impl NowTs for muster_core::clock::ManualClock {
    fn now_ts(&self) -> i64 {
        use muster_core::clock::Clock;
        self.now().timestamp()
    }
}

/// Builds a signed request: `signed_body` is what the signature and the
/// Content-Digest vouch for, `sent_body` what actually goes on the wire.
fn signed(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    content_type: &str,
    signed_body: Option<&[u8]>,
    sent_body: Option<Vec<u8>>,
    sig: &Sig,
) -> reqwest::RequestBuilder {
    let url = app.url(path);
    let digest = signed_body.map(|b| content_digest(b, DigestAlgorithm::Sha256));
    let mut components: Vec<String> = sig.components.iter().map(|c| c.to_string()).collect();
    let mut msg = Request::new(method.as_str(), &url);
    if let Some(d) = &digest {
        msg = msg.header("content-digest", d);
        components.push("content-digest".into());
    }
    let params = SigningParams {
        label: "sig1".into(),
        components,
        created: Some(sig.created),
        nonce: sig.nonce.clone(),
        keyid: Some(sig.keyid.clone()),
        ..Default::default()
    };
    let h = sign(&msg, &params, &sig.key).unwrap();
    let mut rb = app
        .http
        .request(method, url)
        .header("signature-input", h.signature_input)
        .header("signature", h.signature);
    if let Some(d) = digest {
        rb = rb.header("content-digest", d);
    }
    if let Some(b) = sent_body.or_else(|| signed_body.map(<[u8]>::to_vec)) {
        rb = rb.header("content-type", content_type).body(b);
    }
    rb
}

/// The `hr` mapping, a syncer and its freshly issued HMAC key.
async fn hmac_client(app: &TestApp) -> (Client, SigningKey) {
    let (c, _) = app.hr_setup().await;
    let r = app
        .admin_post(&format!("/api/v1/clients/{}/keys/hmac", c.id), json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["alg"], "hmac-sha256");
    let key = B64URL.decode(v["hmac_key"].as_str().unwrap()).unwrap();
    assert_eq!(key.len(), 32, "at least 256 bits");
    (c, SigningKey::HmacSha256(HmacKey::new(key)))
}

async fn reason(r: reqwest::Response) -> String {
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let v: Value = r.json().await.unwrap();
    v["code"].as_str().unwrap().to_owned()
}

fn person_body() -> Vec<u8> {
    serde_json::to_vec(&json!({"attributes": {"given_name": "Ada", "email": "ada@example.com"}}))
        .unwrap()
}

async fn put_person(app: &TestApp, sig: &Sig, sent: Option<Vec<u8>>) -> reqwest::Response {
    signed(
        app,
        reqwest::Method::PUT,
        "/api/v1/people/E1",
        "application/json",
        Some(&person_body()),
        sent,
        sig,
    )
    .send()
    .await
    .unwrap()
}

#[tokio::test]
async fn a_request_signed_with_the_hmac_key_upserts_a_person() {
    let app = spawn_app().await;
    let (c, key) = hmac_client(&app).await;
    let r = put_person(&app, &Sig::new(&app, &c.id, key), None).await;
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "created");
    let p = app.person("E1").await;
    assert_eq!(p.attributes["given_name"], "Ada");
}

#[tokio::test]
async fn a_signed_upload_is_imported() {
    let app = spawn_app().await;
    let (c, key) = hmac_client(&app).await;
    let csv = rows(3);
    let r = signed(
        &app,
        reqwest::Method::POST,
        "/api/v1/imports?mapping=hr&wait=30",
        "text/csv",
        Some(csv.as_bytes()),
        None,
        &Sig::new(&app, &c.id, key),
    )
    .send()
    .await
    .unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert!(status.is_success(), "{status} {v}");
    let done = app
        .wait_import(&app.admin_token, v["id"].as_str().unwrap())
        .await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["counts"]["created"], 3);
}

#[tokio::test]
async fn a_request_signed_with_a_registered_ed25519_key_is_accepted() {
    let app = spawn_app().await;
    let (c, _) = app.hr_setup().await;
    let sk = ed25519_dalek::SigningKey::from_bytes(&[11u8; 32]);
    let r = app
        .http
        .put(app.url(&format!("/api/v1/clients/{}/keys/ed25519", c.id)))
        .bearer_auth(&app.admin_token)
        .json(&json!({"public_key": B64URL.encode(sk.verifying_key().to_bytes())}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let sig = Sig::new(&app, &c.id, SigningKey::Ed25519(sk));
    let r = signed(
        &app,
        reqwest::Method::GET,
        "/api/v1/mappings",
        "",
        None,
        None,
        &sig,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_signature_older_or_newer_than_300_seconds_is_refused() {
    let app = spawn_app().await;
    let (c, key) = hmac_client(&app).await;
    // Made now, presented 301 s later (the gateway's injected clock moves).
    let sig = Sig::new(&app, &c.id, key.clone());
    app.clock.advance(Duration::seconds(301));
    assert_eq!(reason(put_person(&app, &sig, None).await).await, "expired");
    // Made 301 s ahead of the gateway's clock.
    let mut sig = Sig::new(&app, &c.id, key.clone());
    sig.created += 301;
    assert_eq!(
        reason(put_person(&app, &sig, None).await).await,
        "created_in_future"
    );
    // 299 s old is still fine.
    let mut sig = Sig::new(&app, &c.id, key);
    sig.created -= 299;
    assert_eq!(put_person(&app, &sig, None).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_reused_nonce_is_refused() {
    let app = spawn_app().await;
    let (c, key) = hmac_client(&app).await;
    let sig = Sig::new(&app, &c.id, key);
    assert_eq!(put_person(&app, &sig, None).await.status(), StatusCode::OK);
    assert_eq!(
        reason(put_person(&app, &sig, None).await).await,
        "nonce_reused"
    );
}

#[tokio::test]
async fn a_body_that_does_not_match_its_signed_digest_is_refused() {
    let app = spawn_app().await;
    let (c, key) = hmac_client(&app).await;
    let mut tampered = person_body();
    let at = tampered.iter().position(|b| *b == b'A').unwrap();
    tampered[at] = b'E'; // "Ada" becomes "Eda"
    let r = put_person(&app, &Sig::new(&app, &c.id, key), Some(tampered)).await;
    assert_eq!(reason(r).await, "digest_mismatch");
    assert_eq!(
        app.get_as(&app.admin_token, "/api/v1/people/E1")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_tampered_upload_is_refused_and_nothing_is_imported() {
    let app = spawn_app().await;
    let (c, key) = hmac_client(&app).await;
    let csv = rows(3);
    let tampered = csv.replace("Name2", "Evil2");
    let r = signed(
        &app,
        reqwest::Method::POST,
        "/api/v1/imports?mapping=hr&wait=5",
        "text/csv",
        Some(csv.as_bytes()),
        Some(tampered.into_bytes()),
        &Sig::new(&app, &c.id, key),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(reason(r).await, "digest_mismatch");
    let list: Value = app.get_json_as(&app.admin_token, "/api/v1/imports").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");
    let spooled: Vec<_> = std::fs::read_dir(app.dir.path().join("uploads"))
        .unwrap()
        .collect();
    assert!(spooled.is_empty(), "the spooled upload must be removed");
}

#[tokio::test]
async fn an_upload_whose_signature_does_not_cover_its_digest_is_refused() {
    let app = spawn_app().await;
    let (c, key) = hmac_client(&app).await;
    let r = signed(
        &app,
        reqwest::Method::POST,
        "/api/v1/imports?mapping=hr",
        "text/csv",
        None,
        Some(rows(1).into_bytes()),
        &Sig::new(&app, &c.id, key),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(reason(r).await, "missing_component");
}

#[tokio::test]
async fn an_unknown_keyid_is_refused_like_a_bad_signature() {
    let app = spawn_app().await;
    let (_, key) = hmac_client(&app).await;
    let r = put_person(&app, &Sig::new(&app, "no-such-client", key), None).await;
    assert_eq!(reason(r).await, "bad_signature");
}

#[tokio::test]
async fn a_signature_without_a_nonce_is_refused() {
    let app = spawn_app().await;
    let (c, key) = hmac_client(&app).await;
    let mut sig = Sig::new(&app, &c.id, key);
    sig.nonce = None;
    assert_eq!(
        reason(put_person(&app, &sig, None).await).await,
        "missing_nonce"
    );
}

#[tokio::test]
async fn a_signature_that_does_not_cover_the_target_uri_is_refused() {
    let app = spawn_app().await;
    let (c, key) = hmac_client(&app).await;
    let mut sig = Sig::new(&app, &c.id, key);
    sig.components = vec!["@method", "@path"];
    assert_eq!(
        reason(put_person(&app, &sig, None).await).await,
        "missing_component"
    );
}

#[tokio::test]
async fn a_signature_made_with_another_key_is_refused_and_audited() {
    let app = spawn_app().await;
    let (c, _) = hmac_client(&app).await;
    let wrong = SigningKey::HmacSha256(HmacKey::new(vec![7u8; 32]));
    let sig = Sig::new(&app, &c.id, wrong);
    let r = put_person(&app, &sig, None).await;
    assert_eq!(reason(r).await, "bad_signature");
    let v: Value = app
        .get_json_as(&app.admin_token, "/api/v1/audit?limit=1000")
        .await;
    let failed: Vec<&Value> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "auth.failed")
        .collect();
    assert_eq!(failed.len(), 1, "{v}");
    assert_eq!(failed[0]["principal"], format!("client:{}", c.id));
    assert_eq!(failed[0]["detail"]["reason"], "bad_signature");
    assert!(!failed[0].to_string().contains("sig1="));
}

#[tokio::test]
async fn a_signed_request_has_its_role_but_no_other_permissions() {
    let app = spawn_app().await;
    let (c, key) = hmac_client(&app).await;
    let sig = Sig::new(&app, &c.id, key);
    let r = signed(
        &app,
        reqwest::Method::GET,
        "/api/v1/clients",
        "",
        None,
        None,
        &sig,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_hmac_key_is_shown_once_and_stored_only_sealed() {
    let app = spawn_app().await;
    let (c, key) = hmac_client(&app).await;
    let SigningKey::HmacSha256(_) = key else {
        unreachable!()
    };
    let r = app
        .admin_post(&format!("/api/v1/clients/{}/keys/hmac", c.id), json!({}))
        .await;
    let shown = B64URL
        .decode(
            r.json::<Value>().await.unwrap()["hmac_key"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    let info: Value = app
        .get_json_as(&app.admin_token, &format!("/api/v1/clients/{}/keys", c.id))
        .await;
    assert_eq!(info["hmac"], true);
    assert!(!info.to_string().contains(&B64URL.encode(&shown)));
    if !skip_on_postgres(
        "the_hmac_key_is_shown_once_and_stored_only_sealed (at-rest check)",
        "reads the SQLite file",
    ) {
        let db = rusqlite::Connection::open(app.dir.path().join("muster.db")).unwrap();
        let sealed: Vec<u8> = db
            .query_row("SELECT hmac_sealed FROM client_keys", [], |r| r.get(0))
            .unwrap();
        assert!(!sealed.windows(shown.len()).any(|w| w == shown.as_slice()));
        assert!(sealed.len() > shown.len());
    }
    // Removing it ends signing with it.
    let r = app
        .http
        .delete(app.url(&format!("/api/v1/clients/{}/keys/hmac", c.id)))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let sig = Sig::new(&app, &c.id, SigningKey::HmacSha256(HmacKey::new(shown)));
    assert_eq!(
        reason(put_person(&app, &sig, None).await).await,
        "bad_signature"
    );
}

#[tokio::test]
async fn the_sdk_signs_every_request_including_a_streamed_upload() {
    let app = spawn_app().await;
    let (c, _) = app.hr_setup().await;
    let r = app
        .admin_post(&format!("/api/v1/clients/{}/keys/hmac", c.id), json!({}))
        .await;
    let issued: Value = r.json().await.unwrap();
    let signer =
        muster_client::RequestSigner::hmac(&c.id, issued["hmac_key"].as_str().unwrap()).unwrap();
    let client = muster_client::Client::new(&app.base, muster_client::Auth::Signed(signer))
        .unwrap()
        .with_on_behalf_of("nightly@hr.example.com")
        .unwrap();
    let file = app.dir.path().join("people.csv");
    std::fs::write(&file, rows(4)).unwrap();
    let (_, accepted) = client
        .upload_import(&file, &muster_client::ImportParams::new("hr"), |_| {})
        .await
        .unwrap();
    let done = client
        .wait_import(&accepted.id, std::time::Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(done.counts.created, 4);
    assert_eq!(done.on_behalf_of.as_deref(), Some("nightly@hr.example.com"));
}

#[tokio::test]
async fn the_sdk_signs_with_an_ed25519_key() {
    let app = spawn_app().await;
    let (c, _) = app.hr_setup().await;
    let seed = B64URL.encode([21u8; 32]);
    let signer = muster_client::RequestSigner::ed25519(&c.id, &seed).unwrap();
    let r = app
        .http
        .put(app.url(&format!("/api/v1/clients/{}/keys/ed25519", c.id)))
        .bearer_auth(&app.admin_token)
        .json(&json!({"public_key": signer.ed25519_public_key().unwrap()}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let client =
        muster_client::Client::new(&app.base, muster_client::Auth::Signed(signer)).unwrap();
    let maps = client.mapping_list().await.unwrap();
    assert_eq!(maps.len(), 1);
}

#[tokio::test]
async fn the_openapi_document_lists_the_client_key_routes() {
    let app = spawn_app().await;
    let v: Value = app.get_json("/openapi.json").await;
    let paths = v["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/api/v1/clients/{client_id}/keys", &["get"][..]),
        (
            "/api/v1/clients/{client_id}/keys/hmac",
            &["post", "delete"][..],
        ),
        (
            "/api/v1/clients/{client_id}/keys/ed25519",
            &["put", "delete"][..],
        ),
        (
            "/api/v1/clients/{client_id}/keys/jwt",
            &["put", "delete"][..],
        ),
    ] {
        for m in methods {
            assert!(
                paths.get(path).and_then(|p| p.get(*m)).is_some(),
                "{m} {path} is missing from /openapi.json"
            );
        }
    }
}

#[tokio::test]
async fn key_routes_refuse_private_jwks_and_bad_ed25519_keys() {
    let app = spawn_app().await;
    let c = app.syncer().await;
    let put = |path: &'static str, body: Value| {
        app.http
            .put(app.url(&format!("/api/v1/clients/{}/keys/{path}", c.id)))
            .bearer_auth(&app.admin_token)
            .json(&body)
            .send()
    };
    let r = put(
        "jwt",
        json!({"jwks": {"kty": "OKP", "crv": "Ed25519", "x": B64URL.encode([1u8; 32]), "d": "secret"}}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = put("jwt", json!({"jwks": {"kty": "oct", "k": "c2VjcmV0"}}))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = put("ed25519", json!({"public_key": "AAAA"})).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = app
        .get_as(&app.admin_token, "/api/v1/clients/nobody/keys")
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}
