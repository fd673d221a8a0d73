//! `/metrics`: Prometheus text from a real gateway, behind its token on the
//! main listener or on a listener of its own, with route templates (never
//! a concrete path) and no person data in any label.
use crate::helpers::*;
use crate::support::receiver::{receiver, subscribe};
use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;

/// A gateway whose `/metrics` answers to `TOKEN`, with `extra` settings.
pub(crate) async fn with_token_and(extra: Vec<(&str, &str)>) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("metrics-token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    let path = file.display().to_string();
    let mut env = vec![("MUSTER_METRICS__TOKEN_FILE", path.as_str())];
    env.extend(extra);
    let app = spawn_app_with(env).await;
    (app, dir)
}

async fn with_token() -> (TestApp, tempfile::TempDir) {
    with_token_and(vec![]).await
}

const TOKEN: &str = "metrics-token-for-the-tests";

pub(crate) async fn scrape(app: &TestApp) -> String {
    let r = app
        .http
        .get(app.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    r.text().await.unwrap()
}

/// The value of the sample that starts with `prefix` (name and labels).
fn value(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no sample {prefix} in:\n{text}"))
}

#[tokio::test]
async fn metrics_are_not_served_on_the_main_listener_unless_a_token_is_configured() {
    let app = spawn_app().await;
    let r = app.get_as(&app.admin_token, "/metrics").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    let (app, _dir) = with_token().await;
    for token in [
        None,
        Some("wrong-token-of-enough-length"),
        Some(&app.admin_token[..]),
    ] {
        let mut req = app.http.get(app.url("/metrics"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{token:?}");
    }
    assert!(scrape(&app).await.contains("muster_build_info"));
}

#[tokio::test]
async fn requests_imports_tokens_and_failures_are_counted_by_template() {
    let (app, _dir) = with_token().await;
    let (_, t) = app.hr_setup().await;
    let r = app
        .upload(&t, "mapping=hr&wait=30", "text/csv", rows(3))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.get_as(&app.admin_token, "/api/v1/people/E0002").await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.get_as("mct_not-a-token", "/api/v1/imports").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let text = scrape(&app).await;
    assert_eq!(
        value(
            &text,
            "muster_http_requests_total{method=\"POST\",route=\"/api/v1/imports\",status=\"200\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            "muster_http_request_duration_seconds_count{method=\"GET\",route=\"/api/v1/people/{external_id}\"}"
        ),
        1.0
    );
    assert_eq!(
        value(&text, "muster_imports_finished_total{state=\"succeeded\"}"),
        1.0
    );
    assert_eq!(
        value(&text, "muster_import_rows_total{outcome=\"created\"}"),
        3.0
    );
    assert_eq!(
        value(&text, "muster_import_validation_duration_seconds_count"),
        1.0
    );
    assert!(
        value(
            &text,
            "muster_token_grants_total{method=\"client_secret_basic\"}"
        ) >= 1.0
    );
    assert!(value(&text, "muster_auth_failures_total") >= 1.0);
    assert_eq!(value(&text, "muster_imports_pending"), 0.0);
    value(&text, "muster_db_connections{state=\"idle\"}");
    let backend = if on_postgres() { "postgres" } else { "sqlite" };
    assert!(text.contains(&format!("backend=\"{backend}\"")), "{text}");
    // Templates only: no employee id, name or address reaches a label.
    for person in ["E0002", "Name2", "name2@example.com", "Family2"] {
        assert!(!text.contains(person), "{person} in:\n{text}");
    }
}

#[tokio::test]
async fn a_metrics_listener_of_its_own_serves_only_metrics_without_a_token() {
    let app = spawn_app_with(vec![("MUSTER_METRICS__LISTEN", "127.0.0.1:0")]).await;
    let addr = app.running.as_ref().unwrap().metrics_addr.unwrap();
    let r = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("muster_build_info"));
    let r = reqwest::get(format!("http://{addr}/api/v1/imports"))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // And the main listener still keeps them to itself.
    let r = app.get_as(&app.admin_token, "/metrics").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_metrics_token_too_short_or_unreadable_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short");
    std::fs::write(&short, "abc\n").unwrap();
    for (path, why) in [
        (short.display().to_string(), "at least 16"),
        (
            dir.path().join("missing").display().to_string(),
            "cannot read",
        ),
    ] {
        let mut env = env_of(&tempfile::tempdir().unwrap(), None);
        env.push(("MUSTER_METRICS__TOKEN_FILE".into(), path));
        let config = muster_server::config::Config::load_from(None, env).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let clock = std::sync::Arc::new(muster_core::clock::ManualClock::new(chrono::Utc::now()));
        let Err(e) = muster_server::spawn(config, listener, clock).await else {
            panic!("started with a bad metrics token")
        };
        assert!(format!("{e:#}").contains(why), "{e:#}");
    }
}

/// The value of the sample `prefix` once it is at least `at_least`: the
/// receiver has a delivery before the gateway has counted its outcome.
async fn sample_reaching(app: &TestApp, prefix: &str, at_least: f64) -> f64 {
    for _ in 0..200 {
        let text = scrape(app).await;
        if let Some(v) = text
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| *v >= at_least)
        {
            return v;
        }
        app.clock.advance(chrono::Duration::minutes(5));
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{prefix} never reached {at_least}:\n{}", scrape(app).await);
}

#[tokio::test]
async fn deliveries_are_counted_by_subscription_and_outcome_with_their_lag() {
    let (app, _dir) = with_token_and(vec![
        ("MUSTER_WEBHOOKS__ALLOW_PRIVATE_DESTINATIONS", "true"),
        ("MUSTER_WEBHOOKS__POLL_INTERVAL_MS", "50"),
    ])
    .await;
    // The receiver fails once, then takes everything.
    let (url, rx) = receiver(vec![500], 200).await;
    let (sub, _) = subscribe(&app, json!({"url": url, "attributes": ["*"]})).await;
    let (_, t) = app.hr_setup().await;
    let r = app
        .upload(&t, "mapping=hr&wait=30", "text/csv", rows(2))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let failed =
        format!("muster_webhook_deliveries_total{{subscription=\"{sub}\",outcome=\"failed\"}}");
    let delivered =
        format!("muster_webhook_deliveries_total{{subscription=\"{sub}\",outcome=\"delivered\"}}");
    assert_eq!(sample_reaching(&app, &failed, 1.0).await, 1.0);
    assert_eq!(sample_reaching(&app, &delivered, 2.0).await, 2.0);
    assert_eq!(rx.delivered().len(), 2);
    let lag = sample_reaching(
        &app,
        &format!("muster_webhook_delivery_lag_seconds{{subscription=\"{sub}\"}}"),
        0.0,
    )
    .await;
    assert!(lag.is_finite(), "{lag}");
    let text = scrape(&app).await;
    for person in ["E0001", "Name1", "name1@example.com", url.as_str()] {
        assert!(!text.contains(person), "{person} in:\n{text}");
    }
}
