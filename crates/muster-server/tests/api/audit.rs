use crate::helpers::*;
use serde_json::Value;

#[tokio::test]
async fn every_change_is_audited_with_principal_source_and_field_diff() {
    let app = spawn_app().await;
    let (c, t) = app.hr_setup().await;
    let r = app
        .http
        .post(app.url("/api/v1/imports?mapping=hr&wait=30"))
        .bearer_auth(&t)
        .header("content-type", "text/csv")
        .header("on-behalf-of", "nightly-job@hr.example.com")
        .body(rows(1))
        .send()
        .await
        .unwrap();
    let imp: Value = r.json().await.unwrap();
    let v: Value = app
        .get_json_as(&app.admin_token, "/api/v1/audit?limit=1000")
        .await;
    let e = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "person.created")
        .unwrap()
        .clone();
    assert_eq!(e["principal"], format!("client:{}", c.id));
    assert_eq!(e["on_behalf_of"], "nightly-job@hr.example.com");
    assert_eq!(
        e["source"],
        format!("import:{}", imp["id"].as_str().unwrap())
    );
    assert_eq!(e["person"], "E0001");
    let changes = e["detail"]["changes"].as_array().unwrap();
    assert!(changes
        .iter()
        .any(|c| c["attribute"] == "given_name" && c["after"] == "Name1" && c["before"].is_null()));
}

#[tokio::test]
async fn audit_verify_names_the_first_edited_entry() {
    if skip_on_postgres(
        "audit_verify_names_the_first_edited_entry",
        "it edits the SQLite file behind the server's back",
    ) {
        return;
    }
    let app = spawn_app().await;
    let (_, t) = app.hr_setup().await;
    app.import_csv(&t, &rows(5)).await;
    let n = app.assert_chain_verifies().await.entries_verified;
    assert!(n >= 5);

    let db = app.dir.path().join("muster.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let seq: i64 = conn
        .query_row(
            "SELECT seq FROM audit WHERE person = 'E0003' AND tenant_id = 'default'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    conn.execute(
        "UPDATE audit SET detail = replace(detail, 'Name3', 'Eve') WHERE tenant_id = 'default' AND seq = ?1",
        [seq],
    )
    .unwrap();
    drop(conn);
    let v = app.admin_client().audit_verify().await.unwrap();
    assert!(!v.ok);
    assert_eq!(v.first_bad_seq, Some(seq));

    // The operator command reads the database directly.
    let config = muster_server::config::Config::load_from(
        None,
        vec![(
            "MUSTER_DATA_DIR".to_string(),
            app.dir.path().display().to_string(),
        )],
    )
    .unwrap();
    let out = muster_server::verify_audit(&config, Some("default")).unwrap();
    assert_eq!(out[0].1.first_bad_seq, Some(seq));

    // A removed entry is named too.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute(
        "UPDATE audit SET detail = replace(detail, 'Eve', 'Name3') WHERE tenant_id = 'default' AND seq = ?1",
        [seq],
    )
    .unwrap();
    conn.execute(
        "DELETE FROM audit WHERE tenant_id = 'default' AND seq = 2",
        [],
    )
    .unwrap();
    drop(conn);
    let out = muster_server::verify_audit(&config, Some("default")).unwrap();
    assert_eq!(out[0].1.first_bad_seq, Some(3));
}
