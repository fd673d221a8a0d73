//! Import semantics (docs/people.md#import-semantics): snapshot imports and their safety valve,
//! manager references, effective dates.
use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

const SEM_MAPPING: &str = r#"
key = "Employee ID"
max_error_rate = 0.9

[attributes.given_name]
column = "First Name"
transforms = ["trim"]

[attributes.department]
column = "Department"
transforms = ["trim"]

[attributes.employment_status]
column = "Status"
transforms = ["trim", "upper"]
values = { A = "active", L = "leave", T = "terminated" }
default = "active"

[attributes.manager_external_id]
column = "Manager"
transforms = ["trim"]

[attributes.hire_date]
column = "Hire"
date_format = "%Y-%m-%d"

[attributes.termination_date]
column = "Term"
date_format = "%Y-%m-%d"
"#;

const SEM_HEADER: &str = "Employee ID,First Name,Department,Status,Manager,Hire,Term";

/// One row: id, status, manager, hire date, termination date.
fn row(id: &str, status: &str, manager: &str, hire: &str, term: &str) -> String {
    format!("{id},Name {id},Ops,{status},{manager},{hire},{term}\n")
}

fn file(rows: &[String]) -> String {
    let mut s = format!("{SEM_HEADER}\n");
    for r in rows {
        s.push_str(r);
    }
    s
}

/// `E01`..`E{n}`, all active, with the given exceptions.
fn staff(n: usize, skip: &[&str], status: &[(&str, &str)]) -> String {
    let rows: Vec<String> = (1..=n)
        .map(|i| format!("E{i:02}"))
        .filter(|id| !skip.contains(&id.as_str()))
        .map(|id| {
            let s = status
                .iter()
                .find(|(k, _)| *k == id)
                .map_or("A", |(_, s)| *s);
            row(&id, s, "", "2020-01-01", "")
        })
        .collect();
    file(&rows)
}

async fn setup(app: &TestApp) -> (Client, String) {
    let r = app.put_mapping("sem", SEM_MAPPING).await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    let c = app.syncer().await;
    let t = app.token(&c).await;
    (c, t)
}

async fn import(app: &TestApp, t: &str, query: &str, body: String) -> muster_proto::ImportInfo {
    let r = app
        .upload(t, &format!("mapping=sem&{query}"), "text/csv", body)
        .await;
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert!(status.is_success(), "{status} {v}");
    app.wait_import_info(t, v["id"].as_str().unwrap()).await
}

async fn person(app: &TestApp, id: &str) -> Value {
    let r = app
        .get_as(&app.admin_token, &format!("/api/v1/people/{id}"))
        .await;
    assert_eq!(r.status(), StatusCode::OK, "{id}");
    r.json().await.unwrap()
}

async fn status_of(app: &TestApp, id: &str) -> String {
    person(app, id).await["attributes"]["employment_status"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn changes_after(app: &TestApp, cursor: i64) -> Vec<Value> {
    let v: Value = app
        .get_json_as(
            &app.admin_token,
            &format!("/api/v1/changes?after={cursor}&limit=1000"),
        )
        .await;
    v["items"].as_array().unwrap().clone()
}

async fn head(app: &TestApp) -> i64 {
    changes_after(app, 0)
        .await
        .last()
        .map_or(0, |e| e["cursor"].as_i64().unwrap())
}

#[tokio::test]
async fn a_snapshot_deactivates_the_sources_people_missing_from_the_file_and_no_one_else() {
    let app = spawn_app().await;
    let (c, t) = setup(&app).await;
    let v = import(&app, &t, "", staff(20, &[], &[("E03", "T")])).await;
    assert_eq!(v.counts.created, 20, "{v:?}");
    assert_eq!(v.source.as_deref(), Some(c.id.as_str()));
    // Another source's person, and an API write to one of ours.
    let other = app.syncer().await;
    let ot = app.token(&other).await;
    import(&app, &ot, "", file(&[row("X1", "A", "", "2020-01-01", "")])).await;
    let r = app
        .http
        .put(app.url("/api/v1/people/E05"))
        .bearer_auth(&app.admin_token)
        .json(&json!({"attributes": {"department": "Moved"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(person(&app, "E05").await["source_system"], c.id.as_str());

    // E20 left; E03 (terminated) left too; E07's row is bad; E05 is missing
    // from nothing: it stays in the file.
    let mut body = staff(20, &["E03", "E20"], &[]);
    body = body.replace("E07,Name E07,Ops,A,", "E07,Name E07,Ops,Z,");
    let before = app.audit_count().await;
    let cursor = head(&app).await;
    let v = import(&app, &t, "mode=snapshot", body).await;
    assert_eq!(v.state.as_str(), "succeeded_with_errors", "{v:?}");
    assert_eq!(v.mode, "snapshot");
    assert_eq!(v.counts.deactivated, 1, "{v:?}");
    assert_eq!(v.counts.failed, 1);
    assert_eq!(status_of(&app, "E20").await, "terminated");
    assert_eq!(
        status_of(&app, "E07").await,
        "active",
        "a bad row is not a leaver"
    );
    assert_eq!(
        status_of(&app, "X1").await,
        "active",
        "another source's person"
    );
    assert_eq!(
        person(&app, "E03").await["version"],
        1,
        "already terminated: untouched"
    );
    let events = changes_after(&app, cursor).await;
    let kinds: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap_or(""),
                e["data"]["external_id"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        events.len(),
        2,
        "{kinds:?}: E05's department and E20's departure"
    );
    let gone = events
        .iter()
        .find(|e| e.to_string().contains("person.deactivated"))
        .expect("a person.deactivated event");
    assert!(gone.to_string().contains("E20"), "{gone}");
    assert!(gone.to_string().contains(&format!("import:{}", v.id)));
    assert_eq!(app.audit_count().await, before + 2);

    // The same snapshot again changes nothing.
    let v = import(&app, &t, "mode=snapshot", staff(20, &["E03", "E20"], &[])).await;
    assert_eq!(v.counts.deactivated, 0, "{v:?}");
    assert_eq!(v.counts.created, 0);
}

#[tokio::test]
async fn a_snapshot_over_the_limit_is_rejected_with_the_numbers_and_nothing_applied() {
    let app = spawn_app().await;
    let (c, t) = setup(&app).await;
    import(&app, &t, "", staff(10, &[], &[])).await;
    let before = app.audit_count().await;
    // Three of ten leave (30%), and one row changes.
    let body = staff(10, &["E08", "E09", "E10"], &[("E01", "L")]);
    let v = import(&app, &t, "mode=snapshot", body.clone()).await;
    assert_eq!(v.state.as_str(), "rejected", "{v:?}");
    assert_eq!(v.error.as_ref().unwrap().code, "mass_deactivation");
    let msg = v.error.as_ref().unwrap().message.as_str();
    assert!(
        msg.contains(&format!(
            "snapshot would deactivate 3 of 10 people of source {} (30%), over the 10% limit",
            c.id
        )),
        "{msg}"
    );
    assert_eq!(app.audit_count().await, before, "nothing applied");
    assert_eq!(status_of(&app, "E01").await, "active");
    assert_eq!(status_of(&app, "E08").await, "active");

    // A dry run that allows it reports the deactivations and writes nothing.
    let v = import(
        &app,
        &t,
        "mode=snapshot&allow_mass_deactivation=true&dry_run=true",
        body.clone(),
    )
    .await;
    assert_eq!(v.state.as_str(), "succeeded", "{v:?}");
    assert_eq!(v.counts.deactivated, 3);
    assert_eq!(v.counts.updated, 1);
    assert_eq!(app.audit_count().await, before);
    assert_eq!(status_of(&app, "E08").await, "active");

    // A snapshot of another source name leaves these people alone.
    let v = import(
        &app,
        &t,
        "mode=snapshot&source=payroll",
        file(&[row("P1", "A", "", "", "")]),
    )
    .await;
    assert_eq!(v.source.as_deref(), Some("payroll"));
    assert_eq!(v.counts.deactivated, 0, "{v:?}");

    // A request's own limit.
    let v = import(&app, &t, "mode=snapshot&max_deactivate_percent=30", body).await;
    assert_eq!(v.state.as_str(), "succeeded", "{v:?}");
    assert_eq!(v.counts.deactivated, 3);
    for id in ["E08", "E09", "E10"] {
        assert_eq!(status_of(&app, id).await, "terminated");
    }
    assert_eq!(status_of(&app, "E01").await, "leave");
}

#[tokio::test]
async fn snapshot_parameters_are_checked_before_anything_is_stored() {
    let app = spawn_app_with(vec![(
        "MUSTER_IMPORT__SNAPSHOT_MAX_DEACTIVATE_PERCENT",
        "50",
    )])
    .await;
    let (_, t) = setup(&app).await;
    for (q, name) in [
        (
            "mode=snapshot&max_deactivate_percent=150",
            "max_deactivate_percent",
        ),
        (
            "mode=snapshot&allow_mass_deactivation=maybe",
            "allow_mass_deactivation",
        ),
        ("allow_mass_deactivation=true", "allow_mass_deactivation"),
        ("max_deactivate_percent=5", "max_deactivate_percent"),
        ("mode=snapshot&source=has%20space", "source"),
    ] {
        let r = app
            .upload(
                &t,
                &format!("mapping=sem&{q}"),
                "text/csv",
                staff(1, &[], &[]),
            )
            .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{q}");
        let v: Value = r.json().await.unwrap();
        assert!(v["detail"].as_str().unwrap().starts_with(name), "{q}: {v}");
    }
    // A client that may not write employment_status cannot deactivate.
    let narrow = app
        .create_client(json!({"role": "syncer", "write_policy": {"attributes": ["given_name"]}}))
        .await;
    let nt = app.token(&narrow).await;
    let r = app
        .upload(
            &nt,
            "mapping=sem&mode=snapshot",
            "text/csv",
            staff(1, &[], &[]),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], "snapshot_not_permitted");
    assert!(v["detail"].as_str().unwrap().contains("employment_status"));

    // The configured limit (50%) applies when the request sets none.
    import(&app, &t, "", staff(4, &[], &[])).await;
    let v = import(&app, &t, "mode=snapshot", staff(4, &["E03", "E04"], &[])).await;
    assert_eq!(v.state.as_str(), "succeeded", "{v:?}");
    assert_eq!(v.counts.deactivated, 2);
}

#[tokio::test]
async fn managers_resolve_regardless_of_row_order_and_an_unknown_one_is_a_row_error() {
    let app = spawn_app().await;
    let (_, t) = setup(&app).await;
    // M0 exists before the file.
    import(&app, &t, "", file(&[row("M0", "A", "", "", "")])).await;
    let body = file(&[
        row("E1", "A", "E3", "", ""), // a manager later in the file
        row("E2", "A", "M0", "", ""), // an already stored manager
        row("E3", "A", "", "", ""),
        row("E4", "A", "SECRETBOSS", "", ""), // in neither
        row("E5", "A", "E5", "", ""),         // themself
        row("E6", "A", "E4", "", ""),         // a manager whose row fails later
        row("E7", "A", "E6", "", ""),         // and one more level down
    ]);
    let v = import(&app, &t, "", body).await;
    assert_eq!(v.state.as_str(), "succeeded_with_errors", "{v:?}");
    assert_eq!(v.counts.created, 3, "{v:?}");
    assert_eq!(v.counts.failed, 4);
    let errs = app.errors(&t, &v.id).await;
    let text = serde_json::to_string(&errs).unwrap();
    assert!(!text.contains("SECRETBOSS"), "{text}");
    // Listed in row order: those found after the pass among the others.
    let by_row: Vec<(u64, &str, &str, &str)> = errs
        .iter()
        .map(|e| {
            (
                e["row"].as_u64().unwrap(),
                e["code"].as_str().unwrap(),
                e["column"].as_str().unwrap_or(""),
                e["attribute"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        by_row,
        vec![
            (5, "unknown_manager", "Manager", "manager_external_id"),
            (6, "self_manager", "Manager", "manager_external_id"),
            (7, "unknown_manager", "Manager", "manager_external_id"),
            (8, "unknown_manager", "Manager", "manager_external_id"),
        ]
    );
    for gone in ["E6", "E7"] {
        assert_eq!(
            app.get_as(&app.admin_token, &format!("/api/v1/people/{gone}"))
                .await
                .status(),
            StatusCode::NOT_FOUND,
            "{gone}: its manager is not stored, so neither is it"
        );
    }
    assert_eq!(
        person(&app, "E1").await["attributes"]["manager_external_id"],
        "E3"
    );
    assert_eq!(
        app.get_as(&app.admin_token, "/api/v1/people/E4")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_people_api_refuses_unknown_and_self_managers() {
    let app = spawn_app().await;
    let c = app.syncer().await;
    let t = app.token(&c).await;
    let r = app
        .http
        .put(app.url("/api/v1/people/E1"))
        .bearer_auth(&t)
        .json(&json!({"attributes": {"given_name": "Ada", "manager_external_id": "SECRETBOSS"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("unknown_manager") && !text.contains("SECRETBOSS"),
        "{text}"
    );
    let r = app
        .http
        .post(app.url("/api/v1/people/sync"))
        .bearer_auth(&t)
        .json(&json!({"people": [
            {"external_id": "A", "attributes": {"manager_external_id": "B"}},
            {"external_id": "B", "attributes": {"given_name": "Boss"}},
            {"external_id": "C", "attributes": {"manager_external_id": "C"}},
            {"external_id": "D", "attributes": {"manager_external_id": "NOPE"}},
            {"external_id": "E", "attributes": {"manager_external_id": "A"}}
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    let res: Vec<(&str, &str)> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["status"].as_str().unwrap(),
                r["errors"][0]["code"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        res,
        vec![
            ("created", ""),
            ("created", ""),
            ("error", "self_manager"),
            ("error", "unknown_manager"),
            ("created", "")
        ]
    );
    // Now stored, B is a valid manager for a later write.
    let r = app
        .http
        .put(app.url("/api/v1/people/F"))
        .bearer_auth(&t)
        .json(&json!({"attributes": {"manager_external_id": "B"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

fn date_in(app: &TestApp, days: i64) -> String {
    (app.clock_now() + chrono::Duration::days(days))
        .format("%Y-%m-%d")
        .to_string()
}

async fn run_effective_dates(app: &TestApp) -> u64 {
    let r = app
        .admin_post("/api/v1/effective-dates/run", json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    v["applied"].as_u64().unwrap()
}

#[tokio::test]
async fn future_hire_and_termination_dates_take_effect_on_their_day() {
    let app = spawn_app().await;
    let (c, t) = setup(&app).await;
    let body = file(&[
        row("E1", "A", "", "2020-01-01", &date_in(&app, 10)),
        row("E2", "A", "", &date_in(&app, 5), ""),
        row("E3", "A", "", "2020-01-01", &date_in(&app, -1)),
    ]);
    let v = import(&app, &t, "", body.clone()).await;
    assert_eq!(v.counts.created, 3, "{v:?}");
    assert_eq!(status_of(&app, "E1").await, "active", "leaves in ten days");
    assert_eq!(
        status_of(&app, "E2").await,
        "pending",
        "starts in five days"
    );
    assert_eq!(status_of(&app, "E3").await, "terminated", "left yesterday");
    assert_eq!(run_effective_dates(&app).await, 0);

    app.clock.advance(chrono::Duration::days(5));
    let cursor = head(&app).await;
    assert_eq!(run_effective_dates(&app).await, 1);
    assert_eq!(status_of(&app, "E2").await, "active");
    let ev = changes_after(&app, cursor).await;
    assert_eq!(ev.len(), 1);
    assert!(ev[0].to_string().contains("person.updated"), "{}", ev[0]);

    app.clock.advance(chrono::Duration::days(5));
    let cursor = head(&app).await;
    assert_eq!(run_effective_dates(&app).await, 1);
    assert_eq!(status_of(&app, "E1").await, "terminated");
    let p = person(&app, "E1").await;
    assert_eq!(p["source"], "schedule");
    assert_eq!(p["updated_by"], "system:scheduler");
    let ev = changes_after(&app, cursor).await;
    assert_eq!(ev.len(), 1);
    assert!(
        ev[0].to_string().contains("person.deactivated"),
        "{}",
        ev[0]
    );
    assert_eq!(run_effective_dates(&app).await, 0, "once");

    // Re-importing the original file does not bring E1 back: its
    // termination date has come.
    let t = app.token(&c).await;
    let v = import(&app, &t, "", body).await;
    assert_eq!(v.counts.updated, 0, "{v:?}");
    assert_eq!(v.counts.unchanged, 3);
    assert_eq!(status_of(&app, "E1").await, "terminated");
}

#[tokio::test]
async fn two_instances_apply_each_due_transition_once() {
    if !on_postgres() {
        // One instance per SQLite file: nothing to show there.
        eprintln!("two_instances_apply_each_due_transition_once: runs with MUSTER_TEST_BACKEND=postgres only");
        return;
    }
    let app = spawn_app().await;
    let peer = app.spawn_peer(vec![]).await;
    let (_, t) = setup(&app).await;
    let term = date_in(&app, 3);
    let rows: Vec<String> = (1..=40)
        .map(|i| row(&format!("E{i:02}"), "A", "", "2020-01-01", &term))
        .collect();
    import(&app, &t, "", file(&rows)).await;
    let before = app.audit_count().await;
    app.clock.advance(chrono::Duration::days(4));
    let (a, b) = tokio::join!(run_effective_dates(&app), run_effective_dates(&peer));
    assert_eq!(a + b, 40, "{a} + {b}");
    assert_eq!(app.audit_count().await, before + 40);
}
