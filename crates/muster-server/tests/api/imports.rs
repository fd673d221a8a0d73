use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test]
async fn an_hr_export_becomes_people_and_re_pushing_it_changes_nothing() {
    let app = spawn_app().await;
    let (c, t) = app.hr_setup().await;
    let csv = rows(25);
    let v = app.import_csv_info(&t, &csv).await;
    assert_eq!(v.state.as_str(), "succeeded", "{v:?}");
    assert_eq!(v.counts.rows_total, 25);
    assert_eq!(v.counts.created, 25);
    assert_eq!(v.client_id, c.id);
    let audit_after_first = app.audit_count().await;

    let t2 = app.token(&c).await;
    let v = app.import_csv_info(&t2, &csv).await;
    assert_eq!(v.state.as_str(), "succeeded");
    assert_eq!(v.counts.unchanged, 25);
    assert_eq!(v.counts.created, 0);
    assert_eq!(v.counts.updated, 0);
    assert_eq!(
        app.audit_count().await,
        audit_after_first,
        "no audit entry for unchanged rows"
    );

    let changed = csv.replace("Name7,", "Renamed7,").replace(
        "E0009,Name9,Family9,name9@example.com,Dept4,A",
        "E0009,Name9,Family9,name9@example.com,Dept4,T",
    );
    let v = app.import_csv_info(&t2, &changed).await;
    assert_eq!(v.counts.updated, 1);
    assert_eq!(v.counts.deactivated, 1);
    assert_eq!(v.counts.unchanged, 23);
    let p = app.person("E0007").await;
    assert_eq!(p.attributes["given_name"], "Renamed7");
    assert_eq!(p.attributes["hire_date"], "2020-01-15");
    assert_eq!(p.version, 2);
    assert!(p.source.starts_with("import:"));
}

#[tokio::test]
async fn an_importer_can_import_but_never_read_people() {
    let app = spawn_app().await;
    app.put_mapping("hr", MAPPING).await;
    let imp = app
        .create_client(json!({"role": "importer", "write_policy": {"attributes": ["*"]}}))
        .await;
    let t = app.token(&imp).await;
    let v = app.import_csv_info(&t, &rows(2)).await;
    assert_eq!(v.state.as_str(), "succeeded");
    for path in ["/api/v1/people/E0001", "/api/v1/people", "/api/v1/audit"] {
        assert_eq!(
            app.get_as(&t, path).await.status(),
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    // It sees its own imports, not another client's.
    let other = app.syncer().await;
    let ot = app.token(&other).await;
    let mine = &v.id;
    assert_eq!(
        app.get_as(&ot, &format!("/api/v1/imports/{mine}"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_write_policy_violation_in_a_file_is_a_row_error_naming_attribute_and_client() {
    let app = spawn_app().await;
    app.put_mapping("hr", MAPPING).await;
    let c = app
        .create_client(json!({
            "role": "syncer",
            "client_id": "names-only",
            "write_policy": {"attributes": ["given_name", "family_name", "email", "employment_status", "hire_date"]}
        }))
        .await;
    let t = app.token(&c).await;
    // JSON lines: a record that leaves out a field leaves that attribute alone.
    let body = concat!(
        "{\"Employee ID\": \"E1\", \"First Name\": \"Ada\"}\n",
        "{\"Employee ID\": \"E2\", \"First Name\": \"Bob\", \"Department\": \"Sales\"}\n",
        "{\"Employee ID\": \"E3\", \"First Name\": \"Cy\"}\n",
    );
    let r = app
        .upload(&t, "mapping=hr&wait=30", "application/x-ndjson", body)
        .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["state"], "succeeded_with_errors", "{v}");
    assert_eq!(
        (
            v["counts"]["created"].as_u64(),
            v["counts"]["failed"].as_u64()
        ),
        (Some(2), Some(1))
    );
    let errs = app.errors(&t, v["id"].as_str().unwrap()).await;
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0]["row"], 2);
    assert_eq!(errs[0]["code"], "attribute_not_permitted");
    assert_eq!(errs[0]["attribute"], "department");
    assert_eq!(errs[0]["column"], "Department");
    assert!(errs[0]["message"].as_str().unwrap().contains("names-only"));
    assert_eq!(
        app.get_as(&app.admin_token, "/api/v1/people/E2")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    // A CSV whose mapping writes a forbidden column fails on every row, and
    // the error rate rejects the import with nothing applied.
    let csv = format!("{HEADER}\nE4,Ada,L,a@example.com,,A,01/01/2020\n");
    let v = app.import_csv_info(&t, &csv).await;
    assert_eq!(v.state.as_str(), "rejected");
    assert_eq!(v.error.unwrap().code, "too_many_row_errors");
}

async fn rejected(app: &TestApp, t: &str, body: Vec<u8>, query: &str) -> muster_proto::ImportInfo {
    let r = app.upload(t, query, "text/csv", body).await;
    assert!(r.status().is_success(), "{}", r.status());
    let v: Value = r.json().await.unwrap();
    app.wait_import_info(t, v["id"].as_str().unwrap()).await
}

#[tokio::test]
async fn bad_rows_are_row_errors_and_the_good_rows_apply() {
    let app = spawn_app().await;
    let (_, t) = app.hr_setup().await;
    let mut body = Vec::new();
    body.extend_from_slice(b"\xEF\xBB\xBF"); // BOM
    body.extend_from_slice(HEADER.as_bytes());
    body.extend_from_slice(b"\r\n");
    body.extend_from_slice(b"E1,Ada,Lovelace,ada@example.com,R&D,A,12/10/2015\r\n");
    body.extend_from_slice(b"E2,\"Grace\nMurray\",Hopper,grace@example.com,Navy,A,01/01/2016\r\n");
    body.extend_from_slice(b"E3,Too,Few,columns\r\n"); // ragged
    body.extend_from_slice(b"E4,Bad\xff\xfe,Utf,x@example.com,Ops,A,01/01/2016\r\n"); // invalid UTF-8
    body.extend_from_slice(b"E1,Dup,Licate,dup@example.com,Ops,A,01/01/2016\r\n"); // duplicate key
    body.extend_from_slice(b"E5,Eve,SECRETVALUE,not-an-email,Ops,A,01/01/2016\r\n"); // invalid email
    body.extend_from_slice(b"E6,Frank,F,f@example.com,Ops,A,2016-99-99\r\n"); // bad date
    body.extend_from_slice(b"E7,Gus,G,g@example.com,Ops,A,01/01/2017\r\n");
    let r = app
        .upload(&t, "mapping=hr", "text/csv; charset=utf-8", body)
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert!(r.headers().contains_key("location"));
    let v: Value = r.json().await.unwrap();
    let v = app.wait_import_info(&t, v["id"].as_str().unwrap()).await;
    assert_eq!(v.state.as_str(), "succeeded_with_errors", "{v:?}");
    assert_eq!(v.counts.rows_total, 8);
    assert_eq!(v.counts.created, 3);
    assert_eq!(v.counts.failed, 5);
    let errs = app.errors(&t, &v.id).await;
    let text = serde_json::to_string(&errs).unwrap();
    assert!(
        !text.contains("SECRETVALUE") && !text.contains("not-an-email"),
        "{text}"
    );
    let by_row: Vec<(u64, &str)> = errs
        .iter()
        .map(|e| (e["row"].as_u64().unwrap(), e["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        by_row,
        vec![
            (4, "ragged_row"),
            (5, "invalid_utf8"),
            (6, "duplicate_key"),
            (7, "invalid_email"),
            (8, "invalid_date")
        ]
    );
    assert_eq!(errs[3]["column"], "Work Email");
    assert_eq!(errs[3]["attribute"], "email");
    let p = app.person("E2").await;
    assert_eq!(p.attributes["given_name"], "Grace\nMurray");
    let p = app.person("E1").await;
    assert_eq!(
        p.attributes["given_name"], "Ada",
        "the first of two duplicates applies"
    );
}

#[tokio::test]
async fn a_header_without_a_required_column_rejects_the_whole_import_naming_it() {
    let app = spawn_app().await;
    let (_, t) = app.hr_setup().await;
    let v = rejected(
        &app,
        &t,
        b"Employee ID,Last Name\nE1,Lovelace\n".to_vec(),
        "mapping=hr",
    )
    .await;
    assert_eq!(v.state.as_str(), "rejected");
    assert_eq!(v.error.as_ref().unwrap().code, "missing_columns");
    assert!(
        v.error.as_ref().unwrap().message.contains("'First Name'"),
        "{v:?}"
    );
    assert_eq!(
        app.get_as(&app.admin_token, "/api/v1/people/E1")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn an_empty_file_an_oversized_line_and_too_many_bad_rows_are_rejected_with_nothing_applied() {
    let app = spawn_app_with(vec![("MUSTER_LIMITS__MAX_LINE_BYTES", "4096")]).await;
    let (_, t) = app.hr_setup().await;
    let v = rejected(&app, &t, Vec::new(), "mapping=hr").await;
    assert_eq!(
        (
            Some(v.state.as_str()),
            v.error.as_ref().map(|e| e.code.as_str())
        ),
        (Some("rejected"), Some("empty_file"))
    );

    let mut body = rows(3).into_bytes();
    body.extend_from_slice(b"E9,");
    body.extend(std::iter::repeat_n(b'x', 10_000));
    body.extend_from_slice(b",L,e@example.com,D,A,01/01/2020\n");
    let v = rejected(&app, &t, body, "mapping=hr").await;
    assert_eq!(v.state.as_str(), "rejected");
    assert_eq!(v.error.as_ref().unwrap().code, "invalid_format");
    assert!(
        v.error.as_ref().unwrap().message.contains("line 5"),
        "{v:?}"
    );
    assert_eq!(
        app.get_as(&app.admin_token, "/api/v1/people/E0001")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    // 3 of 4 rows bad is over the mapping's 70%.
    let csv = format!("{HEADER}\nE1,Ada,L,a@example.com,D,A,01/01/2020\nE2,,L,b@example.com,D,A,01/01/2020\nE3,,L,c@example.com,D,A,01/01/2020\nE4,,L,d@example.com,D,A,01/01/2020\n");
    let v = rejected(&app, &t, csv.into_bytes(), "mapping=hr").await;
    assert_eq!(v.error.as_ref().unwrap().code, "too_many_row_errors");
    assert_eq!(
        app.get_as(&app.admin_token, "/api/v1/people/E1")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn requests_with_bad_parameters_are_refused_before_anything_is_stored() {
    let app = spawn_app_with(vec![("MUSTER_LIMITS__MAX_UPLOAD_BYTES", "1000")]).await;
    let (_, t) = app.hr_setup().await;
    let r = app.upload(&t, "mapping=nope", "text/csv", rows(1)).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "unknown_mapping");
    let r = app
        .upload(&t, "mapping=hr", "application/pdf", rows(1))
        .await;
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let r = app.upload(&t, "mapping=hr", "text/csv", rows(50)).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let r = app
        .upload(&t, "mapping=hr&dry_run=perhaps", "text/csv", rows(1))
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.json::<Value>().await.unwrap()["detail"]
        .as_str()
        .unwrap()
        .starts_with("dry_run"));
    let r = app
        .upload(&t, "mapping=hr&header_map=nonsense", "text/csv", rows(1))
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = app.upload(&t, "", "text/csv", rows(1)).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: Value = app.get_json_as(&t, "/api/v1/imports").await;
    assert!(v["items"].as_array().unwrap().is_empty());
    let uploads = std::fs::read_dir(app.dir.path().join("uploads"))
        .unwrap()
        .count();
    assert_eq!(uploads, 0, "a refused upload leaves no file");
}

#[tokio::test]
async fn an_upload_is_sealed_on_disk_and_removed_after_processing() {
    let app = spawn_app().await;
    let (_, t) = app.hr_setup().await;
    let v = app.import_csv_info(&t, &rows(3)).await;
    assert_eq!(v.state.as_str(), "succeeded");
    let uploads = std::fs::read_dir(app.dir.path().join("uploads"))
        .unwrap()
        .count();
    assert_eq!(uploads, 0);
}

#[tokio::test]
async fn a_dry_run_reports_what_would_change_and_writes_nothing() {
    let app = spawn_app().await;
    let (_, t) = app.hr_setup().await;
    let before = app.audit_count().await;
    let r = app
        .upload(&t, "mapping=hr&dry_run=true&wait=30", "text/csv", rows(4))
        .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["state"], "succeeded", "{v}");
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["counts"]["created"], 4);
    assert_eq!(app.audit_count().await, before);
    assert_eq!(
        app.get_as(&app.admin_token, "/api/v1/people/E0001")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_same_idempotency_key_returns_the_same_import() {
    let app = spawn_app().await;
    let (_, t) = app.hr_setup().await;
    let send = || {
        app.http
            .post(app.url("/api/v1/imports?mapping=hr&wait=30"))
            .bearer_auth(&t)
            .header("content-type", "text/csv")
            .header("idempotency-key", "nightly-2026-11-23")
            .body(rows(3))
            .send()
    };
    let a: Value = send().await.unwrap().json().await.unwrap();
    let b: Value = send().await.unwrap().json().await.unwrap();
    assert_eq!(a["id"], b["id"]);
    let v: Value = app.get_json_as(&t, "/api/v1/imports").await;
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_reused_idempotency_key_with_another_file_or_parameters_is_refused() {
    let app = spawn_app().await;
    let (_, t) = app.hr_setup().await;
    let send = |query: &'static str, body: String| {
        app.http
            .post(app.url(&format!("/api/v1/imports?{query}")))
            .bearer_auth(&t)
            .header("content-type", "text/csv")
            .header("idempotency-key", "nightly-2026-12-04")
            .body(body)
            .send()
    };
    let first: Value = send("mapping=hr&wait=30", rows(3))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["state"], "succeeded", "{first}");
    let id = first["id"].as_str().unwrap();
    // `wait` does not change the import: the same request, answered with it.
    let again = send("wait=0&mapping=hr", rows(3)).await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], id);
    for (query, body, what) in [
        ("mapping=hr&wait=30", rows(4), "a different file"),
        ("mapping=hr&dry_run=true", rows(3), "a different dry_run"),
        ("mapping=hr&mode=snapshot", rows(3), "a different mode"),
        (
            "mapping=hr&encryption=none",
            rows(3),
            "a different encryption",
        ),
        ("mapping=hr&source=workday", rows(3), "a different source"),
    ] {
        let r = send(query, body).await.unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["code"], "idempotency_key_reused", "{query}: {p}");
        let detail = p["detail"].as_str().unwrap();
        assert!(
            detail.contains(id) && detail.contains(what),
            "{query}: {detail}"
        );
        // The detail names what differs, never a value from the file.
        assert!(!detail.contains("E000"), "{detail}");
    }
    let v: Value = app.get_json_as(&t, "/api/v1/imports").await;
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_header_map_renames_columns_for_one_import() {
    let app = spawn_app().await;
    let (_, t) = app.hr_setup().await;
    let csv = rows(2).replace("First Name", "Given");
    let hm = urlencoding::encode(r#"{"First Name":"Given"}"#).into_owned();
    let r = app
        .upload(
            &t,
            &format!("mapping=hr&wait=30&header_map={hm}"),
            "text/csv",
            csv,
        )
        .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["state"], "succeeded", "{v}");
    assert_eq!(v["counts"]["created"], 2);
}

#[tokio::test]
async fn json_lines_import_with_the_same_mapping() {
    let app = spawn_app().await;
    let (_, t) = app.hr_setup().await;
    let body = concat!(
        "{\"Employee ID\": \"J1\", \"First Name\": \"Ada\", \"Work Email\": \"ada@example.com\"}\n",
        "not json\n",
        "{\"Employee ID\": \"J2\", \"First Name\": \"Bob\", \"Hire Date\": \"02/03/2021\"}\n"
    );
    let r = app
        .upload(&t, "mapping=hr&wait=30", "application/x-ndjson", body)
        .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["state"], "succeeded_with_errors", "{v}");
    assert_eq!(v["counts"]["created"], 2);
    let errs = app.errors(&t, v["id"].as_str().unwrap()).await;
    assert_eq!(
        (errs[0]["row"].as_u64(), errs[0]["code"].as_str()),
        (Some(2), Some("invalid_json"))
    );
}

#[tokio::test]
async fn errors_are_paged_and_progress_streams_as_server_sent_events() {
    let app = spawn_app().await;
    let (_, t) = app.hr_setup().await;
    let mut csv = rows(10);
    for i in 0..5 {
        csv.push_str(&format!("X{i},,L,x@example.com,D,A,01/01/2020\n"));
    }
    let v = app.import_csv_info(&t, &csv).await;
    let id = &v.id;
    let p1: Value = app
        .get_json_as(&t, &format!("/api/v1/imports/{id}/errors?limit=2"))
        .await;
    assert_eq!(p1["items"].as_array().unwrap().len(), 2);
    let cursor = p1["next_cursor"].as_str().unwrap();
    let p2: Value = app
        .get_json_as(
            &t,
            &format!("/api/v1/imports/{id}/errors?limit=10&after={cursor}"),
        )
        .await;
    assert_eq!(p2["items"].as_array().unwrap().len(), 3);
    assert_eq!(p2["items"][0]["row"], 14);

    let r = app
        .get_as(&t, &format!("/api/v1/imports/{id}/events"))
        .await;
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let text = r.text().await.unwrap();
    assert!(text.contains("event: done"), "{text}");
    assert!(text.contains("\"rows_total\":15"), "{text}");
}

#[tokio::test]
async fn an_import_in_progress_survives_a_restart_and_applies_nothing_twice() {
    // Stop right after upload, before the worker may have finished; the
    // next server on the same data directory completes it.
    let app = spawn_app_with(vec![("MUSTER_IMPORT__BATCH_SIZE", "7")]).await;
    let (_, t) = app.hr_setup().await;
    let r = app.upload(&t, "mapping=hr", "text/csv", rows(200)).await;
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let TestApp {
        dir, running, db, ..
    } = app;
    running.unwrap().stop().await.unwrap();
    let config =
        muster_server::config::Config::load_from(None, env_of(&dir, db.as_deref())).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = muster_server::spawn(
        config,
        listener,
        std::sync::Arc::new(muster_core::clock::SystemClock),
    )
    .await
    .unwrap();
    let base = format!("http://{}", running.addr);
    let admin = std::fs::read_to_string(dir.path().join("initial-admin-token")).unwrap();
    let http = reqwest::Client::new();
    let mut v = Value::Null;
    for _ in 0..400 {
        v = http
            .get(format!("{base}/api/v1/imports/{id}"))
            .bearer_auth(admin.trim())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["state"] == "succeeded" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(v["state"], "succeeded", "{v}");
    assert_eq!(v["counts"]["created"], 200);
    let audit: Value = http
        .get(format!("{base}/api/v1/audit/verify"))
        .bearer_auth(admin.trim())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(audit["ok"], true);
    running.stop().await.unwrap();
}
