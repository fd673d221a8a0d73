//! HMAC key rotation with an overlap, and failed-authentication limits on
//! every way in, across instances: a correct credential is never refused
//! because of other people's failures, those who guess are slowed down,
//! their failures are audited in aggregate, and the answers do not tell
//! whether a client id exists.
use crate::helpers::*;
use base64::Engine;
use chrono::Duration;
use muster_httpsig::{content_digest, sign, DigestAlgorithm, HmacKey, SigningKey, SigningParams};
use reqwest::StatusCode;
use serde_json::{json, Value};

const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A signed `PUT /api/v1/people/{id}` (RFC 9421, HMAC-SHA256).
async fn signed_put(app: &TestApp, client_id: &str, key: &[u8], id: &str) -> reqwest::Response {
    signed_put_at(app, client_id, key, id, app.clock_now().timestamp()).await
}

/// [`signed_put`] with the signature's `created` given.
async fn signed_put_at(
    app: &TestApp,
    client_id: &str,
    key: &[u8],
    id: &str,
    created: i64,
) -> reqwest::Response {
    let url = app.url(&format!("/api/v1/people/{id}"));
    let body = serde_json::to_vec(&json!({"attributes": {"given_name": "Signed"}})).unwrap();
    let digest = content_digest(&body, DigestAlgorithm::Sha256);
    let msg = muster_httpsig::Request::new("PUT", &url).header("content-digest", &digest);
    let params = SigningParams {
        label: "sig1".into(),
        components: vec![
            "@method".into(),
            "@target-uri".into(),
            "content-digest".into(),
        ],
        created: Some(created),
        nonce: Some(uuid::Uuid::new_v4().simple().to_string()),
        keyid: Some(client_id.to_owned()),
        ..Default::default()
    };
    let key = SigningKey::HmacSha256(HmacKey::new(key.to_vec()));
    let h = sign(&msg, &params, &key).unwrap();
    app.http
        .put(url)
        .header("signature-input", h.signature_input)
        .header("signature", h.signature)
        .header("content-digest", digest)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn issue_hmac(app: &TestApp, client_id: &str, body: Value) -> Value {
    let r = app
        .admin_post(&format!("/api/v1/clients/{client_id}/keys/hmac"), body)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json().await.unwrap()
}

fn key_of(v: &Value) -> Vec<u8> {
    B64URL.decode(v["hmac_key"].as_str().unwrap()).unwrap()
}

async fn code(r: reqwest::Response) -> (StatusCode, String) {
    let s = r.status();
    let v: Value = r.json().await.unwrap_or_default();
    (s, v["code"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn both_hmac_keys_verify_during_the_overlap_and_the_old_one_fails_after() {
    let app = spawn_app().await;
    let (c, _) = app.hr_setup().await;
    let first = issue_hmac(&app, &c.id, json!({})).await;
    let old = key_of(&first);
    let second = issue_hmac(&app, &c.id, json!({"overlap_seconds": 600})).await;
    let new = key_of(&second);
    assert_ne!(old, new);
    // The response shows the new key once, with its id and the deadline.
    assert!(second["key_id"].as_str().unwrap().starts_with("hk_"));
    assert_ne!(second["key_id"], first["key_id"]);
    assert!(second["previous_valid_until"].is_string(), "{second}");
    assert_eq!(
        second["keys"]["hmac_previous_until"],
        second["previous_valid_until"]
    );
    let info: Value = app
        .get_json_as(&app.admin_token, &format!("/api/v1/clients/{}/keys", c.id))
        .await;
    assert!(!info
        .to_string()
        .contains(second["hmac_key"].as_str().unwrap()));

    for (key, id) in [(&old, "E1"), (&new, "E2")] {
        let r = signed_put(&app, &c.id, key, id).await;
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }
    app.clock.advance(Duration::seconds(601));
    assert_eq!(
        code(signed_put(&app, &c.id, &old, "E3").await).await,
        (StatusCode::UNAUTHORIZED, "bad_signature".into())
    );
    let r = signed_put(&app, &c.id, &new, "E4").await;
    assert!(r.status().is_success());

    // Without an overlap the previous key stops at once.
    let third = issue_hmac(&app, &c.id, json!({"overlap_seconds": 0})).await;
    assert!(third.get("previous_valid_until").is_none(), "{third}");
    assert_eq!(
        code(signed_put(&app, &c.id, &new, "E5").await).await.0,
        StatusCode::UNAUTHORIZED
    );
    let r = signed_put(&app, &c.id, &key_of(&third), "E6").await;
    assert!(r.status().is_success());
}

fn skip_unless_postgres(test: &str) -> bool {
    if on_postgres() {
        return false;
    }
    eprintln!("{test}: runs with MUSTER_TEST_BACKEND=postgres only");
    true
}

#[tokio::test]
async fn the_token_request_rate_is_shared_out_between_live_instances() {
    if skip_unless_postgres("the_token_request_rate_is_shared_out_between_live_instances") {
        return;
    }
    let env = vec![
        ("MUSTER_LIMITS__TOKEN_REQUESTS_PER_SECOND", "4"),
        ("MUSTER_CLUSTER__HEARTBEAT_MS", "200"),
    ];
    let a = spawn_app_with(env.clone()).await;
    let b = a.spawn_peer(env).await;
    let c = a.syncer().await;
    // Let both instances see each other (a few heartbeats).
    for _ in 0..50 {
        let v: Value = a
            .get_json_as(&a.admin_token, "/api/v1/admin/master-key")
            .await;
        if v["instances"].as_object().unwrap().len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    // The injected clock stands still, so no bucket refills: each instance
    // grants its share (4 / 2) and then answers 429.
    for app in [&a, &b] {
        for _ in 0..2 {
            assert_eq!(app.token_response(&c, None).await.status(), StatusCode::OK);
        }
        let r = app.token_response(&c, None).await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(r.headers().contains_key("retry-after"));
    }
}

/// Delays long enough to tell from a loopback round trip, even on a busy
/// machine: a failure past a threshold waits 700 ms, then 1400 ms.
const DELAY: std::time::Duration = std::time::Duration::from_millis(700);
/// What an answer that was not held back takes at most.
const QUICK: std::time::Duration = std::time::Duration::from_millis(500);

/// Three failures per (address, client id), six per address, then delays.
fn slow() -> Vec<(&'static str, &'static str)> {
    vec![
        ("MUSTER_LIMITS__FAILED_AUTH_MAX", "3"),
        ("MUSTER_LIMITS__FAILED_AUTH_ADDRESS_MAX", "6"),
        ("MUSTER_LIMITS__FAILED_AUTH_DELAY_MS", "700"),
        ("MUSTER_LIMITS__FAILED_AUTH_MAX_DELAY_MS", "1400"),
    ]
}

async fn timed<T, F: std::future::Future<Output = T>>(f: F) -> (T, std::time::Duration) {
    let t = std::time::Instant::now();
    let r = f.await;
    (r, t.elapsed())
}

fn wrong(c: &Client) -> Client {
    Client {
        id: c.id.clone(),
        secret: "mcs_wrong".into(),
    }
}

/// A token request with Basic credentials, as if forwarded for `from`.
async fn token_from(app: &TestApp, c: &Client, from: Option<&str>) -> reqwest::Response {
    let mut req = app
        .http
        .post(app.url("/oauth2/token"))
        .basic_auth(&c.id, Some(&c.secret))
        .form(&[("grant_type", "client_credentials")]);
    if let Some(f) = from {
        req = req.header("x-forwarded-for", f);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn a_correct_secret_and_signature_are_accepted_at_once_after_someone_elses_failures() {
    let app = spawn_app_with(slow()).await;
    let (c, _) = app.hr_setup().await;
    let key = key_of(&issue_hmac(&app, &c.id, json!({})).await);
    // Five wrong secrets for the client: the last two are held back.
    for i in 0..5 {
        let (r, took) = timed(app.token_response(&wrong(&c), None)).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        if i >= 3 {
            assert!(took >= DELAY, "failure {i} answered after {took:?}");
        }
    }
    // The right secret and the right signature pass, without waiting.
    let (r, took) = timed(app.token_response(&c, None)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(took < QUICK, "{took:?}");
    let (r, took) = timed(signed_put(&app, &c.id, &key, "E1")).await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    assert!(took < QUICK, "{took:?}");
}

#[tokio::test]
async fn a_correct_signature_is_accepted_at_once_after_failed_signatures_with_its_key_id() {
    let app = spawn_app_with(slow()).await;
    let (c, _) = app.hr_setup().await;
    let good = key_of(&issue_hmac(&app, &c.id, json!({})).await);
    for i in 0..5 {
        let (r, took) = timed(signed_put(&app, &c.id, &[7u8; 32], &format!("X{i}"))).await;
        assert_eq!(
            code(r).await,
            (StatusCode::UNAUTHORIZED, "bad_signature".into())
        );
        if i >= 3 {
            assert!(took >= DELAY, "failure {i} answered after {took:?}");
        }
    }
    let (r, took) = timed(signed_put(&app, &c.id, &good, "X9")).await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    assert!(took < QUICK, "{took:?}");
    let (r, took) = timed(app.token_response(&c, None)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(took < QUICK, "{took:?}");
}

#[tokio::test]
async fn failures_with_made_up_client_ids_do_not_lock_out_a_valid_client_at_that_address() {
    let app = spawn_app_with(slow()).await;
    let c = app.syncer().await;
    for i in 0..8 {
        let made_up = Client {
            id: format!("guess-{i}"),
            secret: "mcs_guess".into(),
        };
        let (r, took) = timed(app.token_response(&made_up, None)).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        // The address is over its threshold after six.
        if i >= 6 {
            assert!(took >= DELAY, "failure {i} answered after {took:?}");
        }
    }
    let (r, took) = timed(app.token_response(&c, None)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(took < QUICK, "{took:?}");
}

#[tokio::test]
async fn a_valid_admin_or_bearer_token_is_never_refused_after_failures_from_its_address() {
    let app = spawn_app_with(slow()).await;
    let (c, t) = app.hr_setup().await;
    for i in 0..4 {
        let r = app
            .get_as(&format!("mct_not-a-token-{i}"), "/api/v1/imports")
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let r = app.token_response(&wrong(&c), None).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    // Eight failures from this address: the next one waits ...
    let (r, took) = timed(app.get_as("mct_not-a-token", "/api/v1/imports")).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(took >= DELAY, "{took:?}");
    // ... but valid tokens from it do not.
    let (r, took) = timed(app.get_as(&app.admin_token, "/api/v1/audit")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(took < QUICK, "{took:?}");
    let (r, took) = timed(app.get_as(&t, "/api/v1/imports")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(took < QUICK, "{took:?}");
}

#[tokio::test]
async fn failures_past_the_limit_are_answered_later_and_later_up_to_the_cap() {
    let app = spawn_app_with(vec![
        ("MUSTER_LIMITS__FAILED_AUTH_MAX", "2"),
        ("MUSTER_LIMITS__FAILED_AUTH_DELAY_MS", "600"),
        ("MUSTER_LIMITS__FAILED_AUTH_MAX_DELAY_MS", "1200"),
    ])
    .await;
    let c = app.syncer().await;
    let mut took = Vec::new();
    for _ in 0..5 {
        let (r, t) = timed(app.token_response(&wrong(&c), None)).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], "invalid_client");
        took.push(t);
    }
    let ms = std::time::Duration::from_millis;
    assert!(took[0] < QUICK && took[1] < QUICK, "{took:?}");
    assert!(took[2] >= ms(600), "{took:?}");
    assert!(took[3] >= ms(1200), "{took:?}");
    assert!(
        took[4] >= ms(1200) && took[4] < ms(1200) + QUICK,
        "capped: {took:?}"
    );
    // The window passes: failures are answered at once again.
    app.clock.advance(Duration::seconds(301));
    let (r, t) = timed(app.token_response(&wrong(&c), None)).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(t < QUICK, "{t:?}");
}

#[tokio::test]
async fn requests_without_credentials_and_reused_one_time_tokens_are_not_counted_as_guessing() {
    let app = spawn_app_with(vec![
        ("MUSTER_LIMITS__FAILED_AUTH_MAX", "1"),
        ("MUSTER_LIMITS__FAILED_AUTH_ADDRESS_MAX", "1"),
        ("MUSTER_LIMITS__FAILED_AUTH_DELAY_MS", "700"),
    ])
    .await;
    let once = app
        .create_client(json!({"role": "syncer", "token_policy": "one_time"}))
        .await;
    let t = app.token(&once).await;
    assert_eq!(
        app.get_as(&t, "/api/v1/imports").await.status(),
        StatusCode::OK
    );
    for _ in 0..4 {
        let (r, took) = timed(app.get_as(&t, "/api/v1/imports")).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(took < QUICK, "a reused one-time token: {took:?}");
        let (r, took) = timed(
            app.http
                .post(app.url("/oauth2/token"))
                .form(&[("grant_type", "client_credentials")])
                .send(),
        )
        .await;
        let r = r.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(
            took < QUICK,
            "a token request without credentials: {took:?}"
        );
        let (r, took) = timed(app.http.get(app.url("/api/v1/imports")).send()).await;
        assert_eq!(r.unwrap().status(), StatusCode::UNAUTHORIZED);
        assert!(took < QUICK, "an API request without a token: {took:?}");
    }
    // None of that counted: the first guess is within the threshold, the
    // second is over it.
    let (r, took) = timed(app.token_response(&wrong(&once), None)).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(took < QUICK, "{took:?}");
    let (_, took) = timed(app.token_response(&wrong(&once), None)).await;
    assert!(took >= DELAY, "{took:?}");
}

#[tokio::test]
async fn the_basic_scheme_is_accepted_and_counted_in_any_case() {
    let app = spawn_app_with(vec![
        ("MUSTER_LIMITS__FAILED_AUTH_MAX", "2"),
        ("MUSTER_LIMITS__FAILED_AUTH_DELAY_MS", "700"),
    ])
    .await;
    let c = app.syncer().await;
    let basic = |c: &Client, scheme: &str| {
        let raw = format!(
            "{}:{}",
            urlencoding::encode(&c.id),
            urlencoding::encode(&c.secret)
        );
        format!(
            "{scheme} {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    };
    let send = |auth: String| {
        app.http
            .post(app.url("/oauth2/token"))
            .header("authorization", auth)
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    for scheme in ["basic", "BASIC", "bAsIc"] {
        let r = send(basic(&c, scheme)).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{scheme}");
    }
    for i in 0..3 {
        let (r, took) = timed(async { send(basic(&wrong(&c), "basic")).await.unwrap() }).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        if i == 2 {
            assert!(took >= DELAY, "lowercase basic is counted: {took:?}");
        }
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_an_attackers_failures_slow_only_the_attacker() {
    let mut env = slow();
    env.push(("MUSTER_LIMITS__TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1"));
    let app = spawn_app_with(env).await;
    let victim = app.syncer().await;
    // The attacker, behind the proxy, guesses the victim's secret.
    for i in 0..5 {
        let from = "203.0.113.7, 10.0.0.3";
        let (r, took) = timed(token_from(&app, &wrong(&victim), Some(from))).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        if i >= 3 {
            assert!(took >= DELAY, "failure {i} answered after {took:?}");
        }
    }
    // The victim, behind the same proxy, is not slowed down even when it
    // fails, and its right secret passes.
    let from = Some("198.51.100.9");
    let (r, took) = timed(token_from(&app, &wrong(&victim), from)).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(took < QUICK, "{took:?}");
    let (r, took) = timed(token_from(&app, &victim, from)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(took < QUICK, "{took:?}");
}

#[tokio::test]
async fn forwarding_headers_are_ignored_unless_the_peer_is_a_trusted_proxy() {
    let app = spawn_app_with(slow()).await;
    let c = app.syncer().await;
    // A new forwarded address on every request does not escape the count.
    for i in 0..5 {
        let from = format!("198.51.100.{i}");
        let (r, took) = timed(token_from(&app, &wrong(&c), Some(&from))).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        if i >= 3 {
            assert!(took >= DELAY, "failure {i} answered after {took:?}");
        }
    }
}

/// The tenant's `auth.failed` entries, oldest first.
async fn failed_entries(app: &TestApp) -> Vec<Value> {
    let v: Value = app
        .get_json_as(&app.admin_token, "/api/v1/audit?limit=1000")
        .await;
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "auth.failed")
        .cloned()
        .collect()
}

/// Waits (on the heartbeat) until the entries satisfy `done`.
async fn wait_entries(app: &TestApp, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    for _ in 0..100 {
        let e = failed_entries(app).await;
        if done(&e) {
            return e;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!(
        "the audit entries never came: {:?}",
        failed_entries(app).await
    );
}

/// No delays (so many failures are quick) and a fast heartbeat.
fn counting_only() -> Vec<(&'static str, &'static str)> {
    vec![
        ("MUSTER_LIMITS__FAILED_AUTH_MAX", "0"),
        ("MUSTER_LIMITS__FAILED_AUTH_ADDRESS_MAX", "0"),
        ("MUSTER_CLUSTER__HEARTBEAT_MS", "100"),
    ]
}

#[tokio::test]
async fn anonymous_login_sync_failures_add_one_audit_entry_per_source_and_window_with_a_count() {
    let app = spawn_app_with(counting_only()).await;
    let before = failed_entries(&app).await.len();
    for _ in 0..200 {
        let r = app
            .http
            .post(app.url("/api/v1/login-sync"))
            .bearer_auth("not.a-jwt")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let entries = failed_entries(&app).await;
    assert_eq!(entries.len(), before + 1, "{entries:?}");
    let first = entries.last().unwrap();
    assert_eq!(first["principal"], "anonymous");
    assert_eq!(first["source"], "login-sync");
    assert_eq!(first["detail"]["reason"], "malformed_token");
    assert_eq!(first["detail"]["address"], "127.0.0.1");
    // When the window has passed, one summary counts the rest.
    app.clock.advance(Duration::seconds(301));
    let entries = wait_entries(&app, |e| e.len() == before + 2).await;
    let summary = entries.last().unwrap();
    assert_eq!(summary["detail"]["reason"], "malformed_token");
    assert_eq!(summary["detail"]["count"], 199);
    // And the chain still verifies.
    app.assert_chain_verifies().await;
}

#[tokio::test]
async fn wrong_secrets_and_signatures_for_a_known_client_are_audited_once_per_window_with_a_count()
{
    let app = spawn_app_with(counting_only()).await;
    let (c, _) = app.hr_setup().await;
    issue_hmac(&app, &c.id, json!({})).await;
    for i in 0..30 {
        let r = app.token_response(&wrong(&c), None).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let r = signed_put(&app, &c.id, &[7u8; 32], &format!("E{i}")).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let principal = format!("client:{}", c.id);
    let mine = |e: &[Value]| -> Vec<Value> {
        e.iter()
            .filter(|e| e["principal"] == principal.as_str())
            .cloned()
            .collect()
    };
    let entries = mine(&failed_entries(&app).await);
    assert_eq!(entries.len(), 2, "{entries:?}");
    app.clock.advance(Duration::seconds(301));
    let entries = mine(&wait_entries(&app, |e| mine(e).len() == 4).await);
    let counts: Vec<(String, String, u64)> = entries[2..]
        .iter()
        .map(|e| {
            (
                e["source"].as_str().unwrap().to_owned(),
                e["detail"]["reason"].as_str().unwrap().to_owned(),
                e["detail"]["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(counts.contains(&("oauth2".into(), "client authentication failed".into(), 29)));
    assert!(counts.contains(&("httpsig".into(), "bad_signature".into(), 29)));
}

#[tokio::test]
async fn an_unknown_client_id_and_a_client_without_a_key_get_the_same_assertion_answer() {
    use crate::private_key_jwt::{assertion, claims, token_with};
    use jsonwebtoken::Algorithm;
    let app = spawn_app().await;
    let keyless = app.syncer().await;
    let unknown = Client {
        id: "no-such-client".into(),
        secret: String::new(),
    };
    let answer = |r: reqwest::Response| async move {
        let s = r.status();
        (s, r.json::<Value>().await.unwrap())
    };
    let a = answer(
        token_with(
            &app,
            &assertion(Algorithm::RS256, true, &claims(&app, &unknown)),
        )
        .await,
    )
    .await;
    let b = answer(
        token_with(
            &app,
            &assertion(Algorithm::RS256, true, &claims(&app, &keyless)),
        )
        .await,
    )
    .await;
    assert_eq!(a.0, StatusCode::UNAUTHORIZED);
    assert_eq!(a, b);
    assert_eq!(a.1["error"], "invalid_client");
    // The audit entry keeps the reason.
    let entries = failed_entries(&app).await;
    let e = entries
        .iter()
        .find(|e| e["principal"] == format!("client:{}", keyless.id))
        .unwrap();
    assert_eq!(
        e["detail"]["reason"],
        "client assertion: the client has no registered key"
    );
}

#[tokio::test]
async fn an_unknown_key_id_a_keyless_client_and_a_wrong_key_get_the_same_signature_answer() {
    let app = spawn_app().await;
    let (c, _) = app.hr_setup().await;
    issue_hmac(&app, &c.id, json!({})).await;
    let keyless = app.syncer().await;
    let answer = |r: reqwest::Response| async move {
        let s = r.status();
        (s, r.json::<Value>().await.unwrap())
    };
    let wrong_key = [7u8; 32];
    let known = answer(signed_put(&app, &c.id, &wrong_key, "E1").await).await;
    let unknown = answer(signed_put(&app, "no-such-client", &wrong_key, "E1").await).await;
    let no_key = answer(signed_put(&app, &keyless.id, &wrong_key, "E1").await).await;
    assert_eq!(known.0, StatusCode::UNAUTHORIZED);
    assert_eq!(known.1["code"], "bad_signature");
    assert_eq!(known, unknown);
    assert_eq!(known, no_key);
    // The policy checks answer the same too: an expired signature is
    // expired whoever it names.
    let old = app.clock_now().timestamp() - 3600;
    let known = answer(signed_put_at(&app, &c.id, &wrong_key, "E1", old).await).await;
    let unknown = answer(signed_put_at(&app, "no-such-client", &wrong_key, "E1", old).await).await;
    assert_eq!(known.1["code"], "expired");
    assert_eq!(known, unknown);
    // The audit entries keep the difference.
    let entries = failed_entries(&app).await;
    let reason = |who: &str| -> Vec<String> {
        entries
            .iter()
            .filter(|e| e["principal"] == format!("client:{who}"))
            .map(|e| e["detail"]["reason"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(reason(&c.id).contains(&"bad_signature".to_owned()));
    assert_eq!(reason(&keyless.id), vec!["unknown_key".to_owned()]);
}

#[tokio::test]
async fn an_overlong_key_is_reported_in_one_plain_sentence() {
    let app = spawn_app().await;
    let (_, t) = app.hr_setup().await;
    let long = "E".repeat(300);
    let csv = format!("{HEADER}\n{long},Ada,Lovelace,ada@example.com,R&D,A,01/15/2020\nE2,Bob,B,bob@example.com,R&D,A,01/15/2020\n");
    let v = app.import_csv(&t, &csv).await;
    let errors = app.errors(&t, v["id"].as_str().unwrap()).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        errors[0]["message"],
        "the external id is longer than 256 bytes"
    );
    let r = app
        .http
        .post(app.url("/api/v1/people/sync"))
        .bearer_auth(&t)
        .json(&json!({"people": [{"external_id": long, "attributes": {"given_name": "Ada"}}]}))
        .send()
        .await
        .unwrap();
    let text = r.text().await.unwrap();
    assert!(
        text.contains("\"the external id is longer than 256 bytes\""),
        "{text}"
    );
}

#[tokio::test]
async fn failures_spread_over_two_instances_add_up_on_both() {
    if skip_unless_postgres("failures_spread_over_two_instances_add_up_on_both") {
        return;
    }
    let mut env = slow();
    env[0] = ("MUSTER_LIMITS__FAILED_AUTH_MAX", "4");
    let a = spawn_app_with(env.clone()).await;
    let b = a.spawn_peer(env).await;
    let c = a.syncer().await;
    // Two failures on each: neither instance alone saw four.
    for app in [&a, &b, &a, &b] {
        let (r, took) = timed(app.token_response(&wrong(&c), None)).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(took < QUICK, "{took:?}");
    }
    // The fifth, on either, is over the cluster's count and waits.
    let (r, took) = timed(a.token_response(&wrong(&c), None)).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(took >= DELAY, "{took:?}");
    // The right secret passes on both.
    for app in [&a, &b] {
        let (r, took) = timed(app.token_response(&c, None)).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(took < QUICK, "{took:?}");
    }
}

#[tokio::test]
async fn a_known_client_id_with_a_wrong_secret_is_answered_like_an_unknown_one() {
    let app = spawn_app().await;
    let c = app.syncer().await;
    let unknown = Client {
        id: "no-such-client".into(),
        secret: "mcs_wrong".into(),
    };
    // Even with a body that names another client, which only the holder
    // of the secret is told about.
    let send = |who: Client| {
        let app = &app;
        async move {
            let r = app
                .http
                .post(app.url("/oauth2/token"))
                .basic_auth(&who.id, Some(&who.secret))
                .form(&[("grant_type", "client_credentials"), ("client_id", "other")])
                .send()
                .await
                .unwrap();
            (r.status(), r.json::<Value>().await.unwrap())
        }
    };
    let a = send(wrong(&c)).await;
    let b = send(unknown).await;
    assert_eq!(a.0, StatusCode::UNAUTHORIZED);
    assert_eq!(a, b);
    let right = Client {
        id: c.id.clone(),
        secret: c.secret.clone(),
    };
    assert_eq!(send(right).await.0, StatusCode::BAD_REQUEST);
}
