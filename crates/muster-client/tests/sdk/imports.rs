//! Uploads, polling and the progress stream.
use crate::fake::spawn;
use futures::StreamExt;
use muster_client::{ClientAuthMethod, ImportEvent, ImportFormat, ImportParams, StatusCode};
use muster_proto::ImportState;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn file(len: usize, suffix: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(suffix).tempfile().unwrap();
    f.write_all(&vec![b'x'; len]).unwrap();
    f.flush().unwrap();
    f
}

#[tokio::test]
async fn an_upload_streams_the_file_with_its_parameters_and_reports_progress() {
    let app = spawn(false, 900).await;
    let c = app
        .client(ClientAuthMethod::Basic)
        .with_on_behalf_of("default-person")
        .unwrap();
    let f = file(1_000_000, ".ndjson");
    let seen = Arc::new(AtomicU64::new(0));
    let s = seen.clone();
    let params = ImportParams {
        dry_run: true,
        wait_seconds: Some(3),
        header_map: [("Given".to_string(), "First Name".to_string())].into(),
        idempotency_key: Some("key-1".into()),
        on_behalf_of: Some("jane@example.com".into()),
        ..ImportParams::new("workday")
    };
    let (status, info) = c
        .upload_import(f.path(), &params, move |n| s.store(n, Ordering::SeqCst))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(info.bytes, 1_000_000);
    assert_eq!(seen.load(Ordering::SeqCst), 1_000_000);
    let up = app.fake.uploads.lock().unwrap()[0].clone();
    assert_eq!(up.content_type.as_deref(), Some("application/x-ndjson"));
    assert_eq!(up.idempotency_key.as_deref(), Some("key-1"));
    // The upload's own On-Behalf-Of wins over the client's default.
    assert_eq!(up.on_behalf_of.as_deref(), Some("jane@example.com"));
    assert!(
        up.query
            .starts_with("mapping=workday&dry_run=true&wait=3&format=jsonl&header_map="),
        "{}",
        up.query
    );
    let hm = up.query.split("header_map=").nth(1).unwrap();
    assert_eq!(
        urlencoding::decode(&hm.replace('+', " ")).unwrap(),
        r#"{"Given":"First Name"}"#
    );
}

#[tokio::test]
async fn an_upload_refused_for_a_consumed_token_is_sent_again_in_full() {
    let app = spawn(true, 900).await;
    let c = app.client(ClientAuthMethod::Basic);
    // This consumes the one-time token that stays cached.
    c.tenant_list().await.unwrap();
    let f = file(3 * 1024 * 1024, ".csv");
    let seen = Arc::new(AtomicU64::new(0));
    let s = seen.clone();
    let params = ImportParams {
        format: Some(ImportFormat::Csv),
        ..ImportParams::new("workday")
    };
    let (_, info) = c
        .upload_import(f.path(), &params, move |n| s.store(n, Ordering::SeqCst))
        .await
        .unwrap();
    assert_eq!(info.bytes, 3 * 1024 * 1024);
    assert_eq!(seen.load(Ordering::SeqCst), 3 * 1024 * 1024);
    assert_eq!(app.fake.refusals.load(Ordering::SeqCst), 1);
    let ups = app.fake.uploads.lock().unwrap();
    assert_eq!(ups.len(), 1);
    assert_eq!(ups[0].body_len, 3 * 1024 * 1024);
    assert_eq!(ups[0].content_type.as_deref(), Some("text/csv"));
}

#[tokio::test]
async fn a_missing_file_is_an_io_error_naming_it() {
    let app = spawn(false, 900).await;
    let c = app.client(ClientAuthMethod::Basic);
    let e = c
        .upload_import(
            "/nonexistent/people.csv".as_ref(),
            &ImportParams::new("m"),
            |_| {},
        )
        .await
        .unwrap_err();
    assert!(matches!(e, muster_client::ClientError::Io(_)), "{e:?}");
    assert!(e.to_string().contains("/nonexistent/people.csv"), "{e}");
    assert_eq!(app.fake.api_requests.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn waiting_polls_until_the_import_is_final() {
    let app = spawn(false, 900).await;
    let c = app.client(ClientAuthMethod::Basic);
    let info = c
        .wait_import("imp_1", Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(info.state, ImportState::Succeeded);
    assert_eq!(app.fake.polls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn waiting_gives_up_at_the_timeout_with_the_latest_state() {
    let app = spawn(false, 900).await;
    let c = app.client(ClientAuthMethod::Basic);
    let info = c.wait_import("imp_1", Duration::ZERO).await.unwrap();
    assert_eq!(info.state, ImportState::Applying);
}

#[tokio::test]
async fn the_event_stream_ends_with_done() {
    let app = spawn(false, 900).await;
    let c = app.client(ClientAuthMethod::Basic);
    let events: Vec<ImportEvent> = c
        .import_events("imp_1")
        .await
        .unwrap()
        .map(|e| e.unwrap())
        .collect()
        .await;
    let states: Vec<(bool, ImportState)> = events
        .iter()
        .map(|e| (matches!(e, ImportEvent::Done(_)), e.state()))
        .collect();
    assert_eq!(
        states,
        [
            (false, ImportState::Parsing),
            (false, ImportState::Applying),
            (true, ImportState::Succeeded)
        ]
    );
}
