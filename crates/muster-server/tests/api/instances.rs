//! Several gateway instances on one PostgreSQL database (docs/operations.md#several-instances): they
//! divide the work without doing any of it twice. PostgreSQL only; on
//! SQLite there is one instance per database file.
use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn skip_unless_postgres(test: &str) -> bool {
    if on_postgres() {
        return false;
    }
    // A skip on the default run is expected, not news: keep it quiet.
    eprintln!("{test}: runs with MUSTER_TEST_BACKEND=postgres only");
    true
}

/// `n` rows for employees `from..from+n`, the first of them bad (no first
/// name), so each import also has exactly one row error.
fn batch(from: usize, n: usize) -> String {
    let mut s = String::from(HEADER);
    s.push('\n');
    for i in from..from + n {
        let first = if i == from {
            String::new()
        } else {
            format!("Name{i}")
        };
        s.push_str(&format!(
            "E{i:05},{first},Family{i},name{i}@example.com,Dept{},A,01/15/2020\n",
            i % 5
        ));
    }
    s
}

#[tokio::test]
async fn imports_uploaded_to_either_instance_are_each_processed_exactly_once() {
    if skip_unless_postgres("imports_uploaded_to_either_instance_are_each_processed_exactly_once") {
        return;
    }
    // Small batches make each import many transactions, so the two
    // workers overlap while claiming.
    let a = spawn_app_with(vec![("MUSTER_IMPORT__BATCH_SIZE", "25")]).await;
    let b = a
        .spawn_peer(vec![("MUSTER_IMPORT__BATCH_SIZE", "25")])
        .await;
    let (_, t) = a.hr_setup().await;
    const IMPORTS: usize = 8;
    const ROWS: usize = 150;
    let mut ids = Vec::new();
    for k in 0..IMPORTS {
        // The first four go to A, the rest to B; either may process any.
        let app = if k < IMPORTS / 2 { &a } else { &b };
        let r = app
            .upload(&t, "mapping=hr", "text/csv", batch(k * 1000, ROWS))
            .await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        ids.push(
            r.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    for id in &ids {
        let v = b.wait_import_info(&t, id).await;
        assert_eq!(v.state.as_str(), "succeeded_with_errors", "{v:?}");
        // Applied twice, the second pass would count its rows unchanged
        // (or updated) on top; validated twice, the error would repeat.
        let c = &v.counts;
        assert_eq!(c.rows_total, ROWS as u64, "{v:?}");
        assert_eq!(c.created, (ROWS - 1) as u64, "{v:?}");
        assert_eq!(c.failed, 1, "{v:?}");
        assert_eq!((c.updated, c.unchanged), (0, 0), "{v:?}");
        assert_eq!(a.errors(&t, id).await.len(), 1);
    }
    // One audit entry per person, and the shared chain still verifies.
    let mut created = 0;
    let mut after = 0;
    loop {
        let page: Value = a
            .get_json_as(
                &a.admin_token,
                &format!("/api/v1/audit?limit=1000&after={after}"),
            )
            .await;
        let items = page["items"].as_array().unwrap();
        if items.is_empty() {
            break;
        }
        for e in items {
            if e["action"] == "person.created" {
                created += 1;
            }
            after = e["seq"].as_i64().unwrap();
        }
    }
    assert_eq!(created, IMPORTS * (ROWS - 1));
    b.assert_chain_verifies().await;
}

#[tokio::test]
async fn a_one_time_token_from_one_instance_is_refused_after_its_use_on_another() {
    if skip_unless_postgres(
        "a_one_time_token_from_one_instance_is_refused_after_its_use_on_another",
    ) {
        return;
    }
    let a = spawn_app().await;
    let b = a.spawn_peer(Vec::new()).await;
    let c = a
        .create_client(json!({"role": "syncer", "token_policy": "one_time"}))
        .await;
    let t = a.token(&c).await;
    assert_eq!(
        b.get_as(&t, "/api/v1/imports").await.status(),
        StatusCode::OK
    );
    for app in [&a, &b] {
        let r = app.get_as(&t, "/api/v1/imports").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let v: Value = r.json().await.unwrap();
        assert!(
            v["detail"].as_str().unwrap().contains("already used"),
            "{v}"
        );
    }
}

#[tokio::test]
async fn readiness_fails_while_the_database_cannot_be_reached() {
    if skip_unless_postgres("readiness_fails_while_the_database_cannot_be_reached") {
        return;
    }
    let app = spawn_app().await;
    let ready = || app.http.get(app.url("/readyz")).send();
    assert_eq!(ready().await.unwrap().status(), StatusCode::OK);
    app.db.as_ref().unwrap().destroy();
    let r = ready().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], "unavailable");
    // Liveness is not readiness: the process itself is fine.
    let r = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}
