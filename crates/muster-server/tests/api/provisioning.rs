//! Subscriptions of kind `scim` (docs/provisioning.md), against a real
//! SCIM 2.0 service provider, scim2-server, started on a loopback port:
//! people already there provisioned first, Users matched before they are
//! created, changes sent as PATCH, leavers deactivated, roles as Groups;
//! a target that restarts, answers 429 with `Retry-After` or 500s, or
//! fails everything until it is quarantined; a reconcile that repairs
//! drift made behind Muster's back. Each ends with the target equal to
//! what Muster says it should be.
use crate::helpers::*;
use crate::support::scim_peer::{Fault, FaultProxy, ScimPeer, TOKEN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

async fn app(schedule: &str) -> TestApp {
    spawn_app_with(vec![
        ("MUSTER_WEBHOOKS__ALLOW_PRIVATE_DESTINATIONS", "true"),
        ("MUSTER_WEBHOOKS__POLL_INTERVAL_MS", "50"),
        ("MUSTER_WEBHOOKS__REQUEST_TIMEOUT_SECONDS", "5"),
        ("MUSTER_WEBHOOKS__RETRY_SCHEDULE", schedule),
    ])
    .await
}

/// A `scim` subscription to `url` with the peer's token, every attribute,
/// no rate limit and the settings in `scim` on top.
async fn subscribe(app: &TestApp, url: &str, scim: Value) -> String {
    let mut settings = json!({"rate_per_second": 0, "concurrency": 4});
    for (k, v) in scim.as_object().unwrap() {
        settings[k] = v.clone();
    }
    let r = app
        .admin_post(
            "/api/v1/subscriptions",
            json!({"kind": "scim", "url": url, "attributes": ["*"],
                   "scim": settings, "scim_secret": {"token": TOKEN}}),
        )
        .await;
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert!(v.get("secret").is_none(), "{v}");
    assert!(!v.to_string().contains(TOKEN), "the token is never shown");
    v["subscription"]["id"].as_str().unwrap().to_owned()
}

/// One User as compared: active, department, given name, groups.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    active: bool,
    department: Option<String>,
    given_name: Option<String>,
    groups: BTreeSet<String>,
}

/// What Muster says the target should hold, by userName (the email):
/// everyone ever active (a leaver stays, inactive).
async fn expected(app: &TestApp) -> BTreeMap<String, Seen> {
    let v: Value = app
        .get_json_as(&app.admin_token, "/api/v1/people?limit=1000")
        .await;
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let a = &p["attributes"];
            let text = |k: &str| a[k].as_str().map(str::to_owned);
            (
                text("email").unwrap(),
                Seen {
                    active: a["employment_status"] != "terminated",
                    department: text("department"),
                    given_name: text("given_name"),
                    groups: p["roles"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|r| r.as_str().unwrap().to_owned())
                        .collect(),
                },
            )
        })
        .collect()
}

const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// What the target holds, by userName; and how many Users it has.
async fn actual(peer: &ScimPeer) -> (BTreeMap<String, Seen>, usize) {
    let users = peer.all("Users").await;
    let groups = peer.all("Groups").await;
    let mut by_id: BTreeMap<String, (String, Seen)> = BTreeMap::new();
    for u in &users {
        by_id.insert(
            u["id"].as_str().unwrap().to_owned(),
            (
                u["userName"].as_str().unwrap().to_owned(),
                Seen {
                    active: u["active"] != false,
                    department: u[ENT]["department"].as_str().map(str::to_owned),
                    given_name: u["name"]["givenName"].as_str().map(str::to_owned),
                    groups: BTreeSet::new(),
                },
            ),
        );
    }
    for g in &groups {
        for m in g["members"].as_array().cloned().unwrap_or_default() {
            if let Some((_, s)) = by_id.get_mut(m["value"].as_str().unwrap()) {
                s.groups
                    .insert(g["displayName"].as_str().unwrap().to_owned());
            }
        }
    }
    let n = users.len();
    (by_id.into_values().collect(), n)
}

/// Waits (advancing the clock, so retries fall due) until the target
/// holds exactly what Muster says, each person once.
async fn converge(app: &TestApp, peer: &ScimPeer, step: chrono::Duration) {
    let want = expected(app).await;
    let mut last = None;
    for _ in 0..600 {
        let (got, n) = actual(peer).await;
        if got == want && n == want.len() {
            return;
        }
        last = Some((got, n));
        app.clock.advance(step);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (got, n) = last.unwrap();
    let wrong: Vec<_> = want
        .iter()
        .filter(|(k, v)| got.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone(), got.get(k).cloned()))
        .take(5)
        .collect();
    panic!(
        "the target did not converge: {n} Users for {} people; first differences (name, want, got): {wrong:?}",
        want.len()
    );
}

async fn subscription(app: &TestApp, id: &str) -> Value {
    app.get_json_as(&app.admin_token, &format!("/api/v1/subscriptions/{id}"))
        .await
}

/// The people rows of the test mapping: `E0001`.. with `name{i}@example.com`.
fn staff(n: usize, leaving: &[usize]) -> String {
    let mut s = String::from(HEADER);
    s.push('\n');
    for i in (1..=n).filter(|i| !leaving.contains(i)) {
        s.push_str(&format!(
            "E{i:04},Name{i},Family{i},name{i}@example.com,Dept{},A,01/15/2020\n",
            i % 5
        ));
    }
    s
}

#[tokio::test]
async fn two_hundred_people_reach_the_target_with_their_groups_updates_and_a_snapshots_leavers() {
    let test = "provisioning::two_hundred_people";
    let Some(peer) = ScimPeer::start(test).await else {
        return;
    };
    // Three of them are on the target already: matched, not duplicated.
    for i in 1..=3 {
        peer.create_user(
            json!({"userName": format!("name{i}@example.com"), "title": "Pre-existing",
                                "active": true}),
        )
        .await;
    }
    let app = app("1s,1s,1s").await;
    let (_, t) = app.hr_setup().await;
    let v = app.import_csv(&t, &staff(200, &[])).await;
    assert_eq!(v["counts"]["created"], 200, "{v}");
    for i in (1..=200).step_by(10) {
        app.put_person(
            &t,
            &format!("E{i:04}"),
            json!({"roles": ["staff", format!("team{}", i % 3)]}),
        )
        .await;
    }
    let sub = subscribe(&app, &peer.base(), json!({})).await;
    converge(&app, &peer, chrono::Duration::seconds(1)).await;
    let s = subscription(&app, &sub).await;
    assert_eq!(s["provisioning"]["backfilling"], false, "{s}");
    assert_eq!(s["kind"], "scim");
    assert_eq!(s["scim"]["match"], "userName");
    // The pre-existing Users were linked and brought to what Muster says.
    let (got, n) = actual(&peer).await;
    assert_eq!(n, 200);
    assert_eq!(
        got["name1@example.com"].given_name.as_deref(),
        Some("Name1")
    );
    let groups = peer.all("Groups").await;
    let names: BTreeSet<&str> = groups
        .iter()
        .map(|g| g["displayName"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["staff", "team0", "team1", "team2"]),
        "one Group per role"
    );

    // Updates: departments, names and roles; then a snapshot without five.
    for i in [2, 50, 77, 150] {
        app.put_person(
            &t,
            &format!("E{i:04}"),
            json!({"attributes": {"department": "Moved", "given_name": format!("New{i}")}}),
        )
        .await;
    }
    app.put_person(&t, "E0011", json!({"roles": []})).await;
    app.put_person(&t, "E0012", json!({"roles": ["staff"]}))
        .await;
    converge(&app, &peer, chrono::Duration::seconds(1)).await;
    let v = import_snapshot(&app, &t, &staff(200, &[3, 40, 41, 120, 199])).await;
    assert_eq!(v["counts"]["deactivated"], 5, "{v}");
    converge(&app, &peer, chrono::Duration::seconds(1)).await;
    let (got, _) = actual(&peer).await;
    assert!(!got["name40@example.com"].active);
    assert!(got["name39@example.com"].active);

    // Changes already on the target cost no request: an update that
    // changes nothing the target gets is delivered without one.
    let log: Value = app
        .get_json_as(
            &app.admin_token,
            &format!("/api/v1/subscriptions/{sub}/deliveries?limit=1000"),
        )
        .await;
    let items = log["items"].as_array().unwrap();
    assert!(!items.is_empty());
    assert!(items.iter().all(|r| r["outcome"] == "delivered"), "{log}");
    let audit = app
        .get_json_as::<Value>(&app.admin_token, "/api/v1/audit?limit=1000")
        .await
        .to_string();
    assert!(!audit.contains(TOKEN));
}

async fn import_snapshot(app: &TestApp, token: &str, csv: &str) -> Value {
    let r = app
        .upload(
            token,
            "mapping=hr&mode=snapshot&wait=30",
            "text/csv",
            csv.to_owned(),
        )
        .await;
    let v: Value = r.json().await.unwrap();
    app.wait_import(token, v["id"].as_str().unwrap()).await
}

#[tokio::test]
async fn a_target_that_restarts_or_answers_429_and_500_ends_equal_to_what_muster_says() {
    let test = "provisioning::a_target_that_restarts";
    let Some(mut peer) = ScimPeer::start(test).await else {
        return;
    };
    let proxy = FaultProxy::start(&format!("http://127.0.0.1:{}", peer.port)).await;
    let app = app("1s,1s,1s,1s,1s,1s").await;
    let (_, t) = app.hr_setup().await;
    app.import_csv(&t, &staff(60, &[])).await;
    let sub = subscribe(&app, &format!("{}/v2", proxy.url), json!({})).await;
    converge(&app, &peer, chrono::Duration::seconds(1)).await;

    // 429 with Retry-After: the next attempt waits for it.
    proxy.script(vec![Some(Fault::TooMany(30)); 2], None);
    app.put_person(&t, "E0005", json!({"attributes": {"department": "Busy"}}))
        .await;
    let log = wait_log(&app, &sub, |r| r["status"] == 429).await;
    let at = chrono::DateTime::parse_from_rfc3339(log["at"].as_str().unwrap()).unwrap();
    let s = subscription(&app, &sub).await;
    let next =
        chrono::DateTime::parse_from_rfc3339(s["next_attempt_at"].as_str().unwrap()).unwrap();
    assert!(
        next - at >= chrono::Duration::seconds(27),
        "Retry-After is honoured: {s}"
    );
    converge(&app, &peer, chrono::Duration::seconds(5)).await;
    assert!(proxy.faulted() >= 1);

    // Every other request fails with 500: retried until it is through.
    proxy.script(vec![], None);
    let steps: Vec<Option<Fault>> = (0..40)
        .map(|i| (i % 2 == 0).then_some(Fault::Status(500)))
        .collect();
    proxy.script(steps, None);
    for i in 10..20 {
        app.put_person(
            &t,
            &format!("E{i:04}"),
            json!({"attributes": {"given_name": format!("Flaky{i}")}, "roles": ["ops"]}),
        )
        .await;
    }
    converge(&app, &peer, chrono::Duration::seconds(1)).await;
    wait_log(&app, &sub, |r| r["status"] == 500).await;

    // The target restarts (scim2-server comes back empty): what changes
    // next is found missing (404) and created again, and a reconcile
    // brings back the rest.
    peer.restart().await;
    app.put_person(
        &t,
        "E0030",
        json!({"attributes": {"department": "AfterRestart"}}),
    )
    .await;
    app.put_person(
        &t,
        "E0031",
        json!({"attributes": {"given_name": "Back"}, "roles": ["ops"]}),
    )
    .await;
    for _ in 0..100 {
        let users = peer.all("Users").await;
        if users.len() >= 2 {
            break;
        }
        app.clock.advance(chrono::Duration::seconds(1));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (got, n) = actual(&peer).await;
    assert_eq!(n, 2, "{got:?}");
    assert_eq!(
        got["name30@example.com"].department.as_deref(),
        Some("AfterRestart")
    );
    let report = reconcile(&app, &sub, false).await;
    assert_eq!(report["created"].as_array().unwrap().len(), 58, "{report}");
    converge(&app, &peer, chrono::Duration::seconds(1)).await;
}

/// The first delivery log record `pick` chooses, once there is one (the
/// clock moving a second a look).
async fn wait_log(app: &TestApp, sub: &str, pick: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..400 {
        let log: Value = app
            .get_json_as(
                &app.admin_token,
                &format!("/api/v1/subscriptions/{sub}/deliveries?limit=1000"),
            )
            .await;
        if let Some(r) = log["items"].as_array().unwrap().iter().find(|r| pick(r)) {
            return r.clone();
        }
        // Retries fall due as the injected clock moves.
        app.clock.advance(chrono::Duration::seconds(1));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no such delivery record");
}

async fn reconcile(app: &TestApp, sub: &str, dry_run: bool) -> Value {
    let r = app
        .admin_post(
            &format!("/api/v1/subscriptions/{sub}/reconcile?dry_run={dry_run}"),
            json!(null),
        )
        .await;
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{v}");
    v
}

#[tokio::test]
async fn a_target_failing_everything_is_quarantined_then_recovers_with_nothing_lost() {
    let test = "provisioning::a_target_failing_everything";
    let Some(peer) = ScimPeer::start(test).await else {
        return;
    };
    let proxy = FaultProxy::start(&format!("http://127.0.0.1:{}", peer.port)).await;
    let (app, _dir) = crate::metrics::with_token_and(vec![
        ("MUSTER_WEBHOOKS__ALLOW_PRIVATE_DESTINATIONS", "true"),
        ("MUSTER_WEBHOOKS__POLL_INTERVAL_MS", "50"),
        ("MUSTER_WEBHOOKS__REQUEST_TIMEOUT_SECONDS", "5"),
        ("MUSTER_WEBHOOKS__RETRY_SCHEDULE", "1s,1s"),
    ])
    .await;
    let (_, t) = app.hr_setup().await;
    app.import_csv(&t, &staff(5, &[])).await;
    let sub = subscribe(&app, &format!("{}/v2", proxy.url), json!({})).await;
    converge(&app, &peer, chrono::Duration::seconds(1)).await;

    proxy.script(vec![], Some(Fault::Status(503)));
    for i in 1..=5 {
        app.put_person(
            &t,
            &format!("E{i:04}"),
            json!({"attributes": {"department": "Later"}}),
        )
        .await;
    }
    let mut s = Value::Null;
    for _ in 0..200 {
        s = subscription(&app, &sub).await;
        if s["provisioning"]["quarantined_since"].is_string() {
            break;
        }
        app.clock.advance(chrono::Duration::seconds(2));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(s["provisioning"]["quarantined_since"].is_string(), "{s}");
    assert_eq!(
        s["provisioning"]["quarantine_reason"], "the target answered 503",
        "{s}"
    );
    assert_eq!(s["state"], "active");
    wait_log(&app, &sub, |r| r["outcome"] == "quarantined").await;
    let gauge = format!("muster_subscription_quarantined{{subscription=\"{sub}\"}}");
    let m = crate::metrics::scrape(&app).await;
    assert!(m.contains(&format!("{gauge} 1")), "{m}");
    let audit = app
        .get_json_as::<Value>(&app.admin_token, "/api/v1/audit?limit=1000")
        .await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"subscription.quarantined"), "{actions:?}");
    // Tried again only after an hour, still failing: still quarantined.
    let faulted = proxy.faulted();
    app.clock.advance(chrono::Duration::minutes(30));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(proxy.faulted(), faulted, "nothing is tried within the hour");
    app.clock.advance(chrono::Duration::minutes(31));
    for _ in 0..100 {
        if proxy.faulted() > faulted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(proxy.faulted() > faulted, "tried again after the hour");
    // The target heals: at the next try it recovers, and nothing was lost.
    proxy.script(vec![], None);
    converge(&app, &peer, chrono::Duration::minutes(20)).await;
    let s = subscription(&app, &sub).await;
    assert!(s["provisioning"].get("quarantined_since").is_none(), "{s}");
    let audit = app
        .get_json_as::<Value>(&app.admin_token, "/api/v1/audit?limit=1000")
        .await;
    assert!(audit.to_string().contains("subscription.recovered"));
    let m = crate::metrics::scrape(&app).await;
    assert!(m.contains(&format!("{gauge} 0")), "{m}");
}

#[tokio::test]
async fn a_reconcile_reports_then_repairs_drift_made_behind_musters_back() {
    let test = "provisioning::a_reconcile_repairs_drift";
    let Some(peer) = ScimPeer::start(test).await else {
        return;
    };
    let app = app("1s").await;
    let (_, t) = app.hr_setup().await;
    app.import_csv(&t, &staff(30, &[7])).await;
    for i in [1, 2, 3] {
        app.put_person(&t, &format!("E{i:04}"), json!({"roles": ["staff"]}))
            .await;
    }
    let sub = subscribe(&app, &peer.base(), json!({"extra_users": "deactivate"})).await;
    converge(&app, &peer, chrono::Duration::seconds(1)).await;
    let users = peer.all("Users").await;
    let id_of = |name: &str| {
        users
            .iter()
            .find(|u| u["userName"] == name)
            .map(|u| u["id"].as_str().unwrap().to_owned())
            .unwrap()
    };
    // Behind Muster's back: a changed department, a deleted User, an
    // extra User, a leaver made active again, a member taken out of a Group.
    import_snapshot(&app, &t, &staff(30, &[7, 9])).await;
    converge(&app, &peer, chrono::Duration::seconds(1)).await;
    peer.patch(
        &format!("/Users/{}", id_of("name4@example.com")),
        json!([{"op": "replace", "path": format!("{ENT}:department"), "value": "Drifted"}]),
    )
    .await;
    let (s, _) = peer
        .call(
            Method::DELETE,
            &format!("/Users/{}", id_of("name5@example.com")),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let extra = peer
        .create_user(json!({"userName": "stranger@example.com", "active": true}))
        .await;
    peer.patch(
        &format!("/Users/{}", id_of("name9@example.com")),
        json!([{"op": "replace", "path": "active", "value": true}]),
    )
    .await;
    let staff_group = peer
        .all("Groups")
        .await
        .into_iter()
        .find(|g| g["displayName"] == "staff")
        .unwrap();
    peer.patch(
        &format!("/Groups/{}", staff_group["id"].as_str().unwrap()),
        json!([{"op": "remove", "path": format!("members[value eq \"{}\"]", id_of("name2@example.com"))}]),
    )
    .await;
    let before = actual(&peer).await;

    let dry = reconcile(&app, &sub, true).await;
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["created"], json!(["E0005"]), "{dry}");
    assert_eq!(dry["deactivated"], json!(["E0009"]), "{dry}");
    assert_eq!(dry["updated"][0]["external_id"], "E0004", "{dry}");
    assert!(
        dry["updated"][0]["paths"]
            .to_string()
            .contains("department"),
        "{dry}"
    );
    assert!(
        !dry.to_string().contains("Drifted"),
        "paths, never values: {dry}"
    );
    assert_eq!(dry["extra"], json!([extra]), "{dry}");
    assert_eq!(dry["memberships"], 1, "{dry}");
    assert_eq!(actual(&peer).await, before, "a dry run changes nothing");

    let done = reconcile(&app, &sub, false).await;
    assert_eq!(done["created"], json!(["E0005"]), "{done}");
    assert_eq!(done["extra_deactivated"], true);
    let (got, _) = actual(&peer).await;
    assert!(!got["stranger@example.com"].active);
    let want = expected(&app).await;
    for (name, seen) in &want {
        assert_eq!(got.get(name), Some(seen), "{name}");
    }
    // Once repaired, a reconcile finds nothing to do.
    let again = reconcile(&app, &sub, true).await;
    for k in ["created", "linked", "updated", "deactivated", "failed"] {
        assert_eq!(again[k], json!([]), "{k}: {again}");
    }
    assert_eq!(again["memberships"], 0, "{again}");
    let audit = app
        .get_json_as::<Value>(&app.admin_token, "/api/v1/audit?limit=1000")
        .await
        .to_string();
    assert!(audit.contains("subscription.reconciled"));
}

#[tokio::test]
async fn bad_scim_settings_are_refused_naming_the_field() {
    let app = app("1s").await;
    for (body, needle) in [
        (
            json!({"scim": {"mapping": {"title": "nope(x)"}}, "scim_secret": {"token": "t"}}),
            "mapping 'title'",
        ),
        (
            json!({"scim": {"mapping": {"userName": null}}, "scim_secret": {"token": "t"}}),
            "userName must be mapped",
        ),
        (
            json!({"scim": {"auth": "basic"}, "scim_secret": {"token": "t"}}),
            "scim.username",
        ),
        (json!({"scim": {}}), "scim_secret.token"),
        (
            json!({"scim": {"concurrency": 0}, "scim_secret": {"token": "t"}}),
            "scim.concurrency",
        ),
        (
            json!({"scim": {"scope": {"filter": "title eq"}}, "scim_secret": {"token": "t"}}),
            "scope.filter",
        ),
        (
            json!({"scim": {"bogus": 1}, "scim_secret": {"token": "t"}}),
            "bogus",
        ),
        (
            json!({"subject_prefix": "x", "scim_secret": {"token": "t"}}),
            "subject_prefix",
        ),
    ] {
        let mut b = json!({"kind": "scim", "url": "http://127.0.0.1:9/v2", "attributes": ["*"]});
        for (k, v) in body.as_object().unwrap() {
            b[k] = v.clone();
        }
        let r = app.admin_post("/api/v1/subscriptions", b).await;
        let status = r.status();
        let text = r.text().await.unwrap();
        assert!(
            status == StatusCode::UNPROCESSABLE_ENTITY || status == StatusCode::BAD_REQUEST,
            "{status} {text}"
        );
        assert!(text.contains(needle), "{needle}: {text}");
    }
    // A webhook takes no SCIM settings, and only a scim subscription is reconciled.
    let r = app
        .admin_post(
            "/api/v1/subscriptions",
            json!({"url": "http://127.0.0.1:9/h", "attributes": ["*"], "scim": {}}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = app
        .admin_post(
            "/api/v1/subscriptions",
            json!({"url": "http://127.0.0.1:9/h", "attributes": ["*"]}),
        )
        .await;
    let v: Value = r.json().await.unwrap();
    let id = v["subscription"]["id"].as_str().unwrap();
    let r = app
        .admin_post(
            &format!("/api/v1/subscriptions/{id}/reconcile"),
            json!(null),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn another_muster_is_a_target_through_oauth_client_credentials() {
    // The target: a second gateway's SCIM door, its client logging in
    // with the client credentials grant at its token endpoint.
    let target = spawn_app().await;
    let c = target
        .create_client(json!({"role": "scim",
            "write_policy": {"attributes": ["*"], "roles": ["staff"]}}))
        .await;
    let app = app("1s").await;
    let (_, t) = app.hr_setup().await;
    app.import_csv(&t, &staff(12, &[])).await;
    app.put_person(&t, "E0002", json!({"roles": ["staff"]}))
        .await;
    let r = app
        .admin_post(
            "/api/v1/subscriptions",
            json!({"kind": "scim", "url": target.url("/scim/v2"), "attributes": ["*"],
                   "scim": {"auth": "oauth", "token_url": target.url("/oauth2/token"),
                            "client_id": c.id, "rate_per_second": 0},
                   "scim_secret": {"client_secret": c.secret}}),
        )
        .await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    let mut people = Value::Null;
    for _ in 0..300 {
        people = target
            .get_json_as(&target.admin_token, "/api/v1/people?limit=1000")
            .await;
        if people["items"].as_array().unwrap().len() == 12 {
            break;
        }
        app.clock.advance(chrono::Duration::seconds(1));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let items = people["items"].as_array().unwrap();
    assert_eq!(items.len(), 12, "{people}");
    let p2 = items
        .iter()
        .find(|p| p["attributes"]["email"] == "name2@example.com")
        .unwrap_or_else(|| panic!("{people}"));
    assert_eq!(p2["attributes"]["given_name"], "Name2");
    assert_eq!(p2["attributes"]["department"], "Dept2");
    for _ in 0..100 {
        let p: Value = target
            .get_json_as(
                &target.admin_token,
                &format!("/api/v1/people/{}", p2["external_id"].as_str().unwrap()),
            )
            .await;
        if p["roles"] == json!(["staff"]) {
            return;
        }
        app.clock.advance(chrono::Duration::seconds(1));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the role did not arrive as a Group membership");
}

#[tokio::test]
async fn http_basic_is_sent_as_rfc_7617_says_and_a_wrong_password_holds_everything_back() {
    let Some(peer) = ScimPeer::start("provisioning::http_basic").await else {
        return;
    };
    let proxy = FaultProxy::start(&format!("http://127.0.0.1:{}", peer.port)).await;
    proxy.require_basic("muster", "s3cret:with colon");
    let app = app("1s").await;
    let (_, t) = app.hr_setup().await;
    app.import_csv(&t, &staff(4, &[])).await;
    let make = |password: &str| {
        json!({"kind": "scim", "url": format!("{}/v2", proxy.url), "attributes": ["*"],
               "scim": {"auth": "basic", "username": "muster", "rate_per_second": 0},
               "scim_secret": {"password": password}})
    };
    let r = app.admin_post("/api/v1/subscriptions", make("wrong")).await;
    let v: Value = r.json().await.unwrap();
    let bad = v["subscription"]["id"].as_str().unwrap().to_owned();
    let rec = wait_log_or_state(&app, &bad).await;
    assert!(rec.contains("401"), "{rec}");
    assert!(peer.all("Users").await.is_empty());
    // Failing through its retries, the target is quarantined ...
    let mut s = Value::Null;
    for _ in 0..100 {
        s = subscription(&app, &bad).await;
        if s["provisioning"]["quarantined_since"].is_string() {
            break;
        }
        app.clock.advance(chrono::Duration::seconds(2));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(s["provisioning"]["quarantined_since"].is_string(), "{s}");
    // ... and the right password, through PATCH, is tried at once (not
    // in an hour): everyone arrives.
    let r = app
        .http
        .patch(app.url(&format!("/api/v1/subscriptions/{bad}")))
        .bearer_auth(&app.admin_token)
        .json(&json!({"scim_secret": {"password": "s3cret:with colon"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    converge(&app, &peer, chrono::Duration::seconds(2)).await;
    let audit = app
        .get_json_as::<Value>(&app.admin_token, "/api/v1/audit?limit=1000")
        .await
        .to_string();
    assert!(audit.contains("\"credentials\":\"replaced\""), "{audit}");
    assert!(!audit.contains("s3cret"));
}

/// Why a subscription's backfill is not getting through, once it failed.
async fn wait_log_or_state(app: &TestApp, sub: &str) -> String {
    for _ in 0..200 {
        let s = subscription(app, sub).await;
        if let Some(e) = s["provisioning"]["backfill_error"].as_str() {
            assert_eq!(s["provisioning"]["backfilling"], true, "{s}");
            return e.to_owned();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the subscription never failed");
}

#[tokio::test]
async fn a_put_target_matched_by_external_id_has_its_leavers_deleted_within_its_rate_limit() {
    let Some(peer) = ScimPeer::start("provisioning::a_put_target").await else {
        return;
    };
    // On the target already under another userName: found by externalId.
    let known = peer
        .create_user(json!({"userName": "legacy-login", "externalId": "E0002", "active": true}))
        .await;
    let proxy = FaultProxy::start(&format!("http://127.0.0.1:{}", peer.port)).await;
    let app = app("1s").await;
    let (_, t) = app.hr_setup().await;
    app.import_csv(&t, &staff(8, &[])).await;
    subscribe(
        &app,
        &format!("{}/v2", proxy.url),
        json!({"match": "externalId", "update": "put", "deprovision": "delete",
               "rate_per_second": 10, "groups": false}),
    )
    .await;
    converge(&app, &peer, chrono::Duration::seconds(1)).await;
    let (s, u) = peer
        .call(Method::GET, &format!("/Users/{known}"), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        u["userName"], "name2@example.com",
        "linked, then replaced whole: {u}"
    );

    app.put_person(&t, "E0003", json!({"attributes": {"department": "Put"}}))
        .await;
    app.put_person(
        &t,
        "E0005",
        json!({"attributes": {"employment_status": "terminated"}}),
    )
    .await;
    let mut users = Vec::new();
    for _ in 0..200 {
        users = peer.all("Users").await;
        let moved = users.iter().any(|u| u[ENT]["department"] == "Put");
        if users.len() == 7 && moved {
            break;
        }
        app.clock.advance(chrono::Duration::seconds(1));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(users.len(), 7, "the leaver is deleted");
    assert!(users.iter().all(|u| u["userName"] != "name5@example.com"));
    assert!(users.iter().any(|u| u[ENT]["department"] == "Put"));
    let busiest = proxy.busiest_second();
    assert!(
        busiest <= 11,
        "at most 10 requests a second (and one in flight): {busiest}"
    );
}

#[tokio::test]
async fn a_rehire_takes_over_the_leavers_user_but_an_active_persons_user_is_never_shared() {
    let Some(peer) = ScimPeer::start("provisioning::a_rehire").await else {
        return;
    };
    let app = app("1s").await;
    let (_, t) = app.hr_setup().await;
    app.import_csv(&t, &staff(6, &[])).await;
    let sub = subscribe(&app, &peer.base(), json!({"groups": false})).await;
    converge(&app, &peer, chrono::Duration::seconds(1)).await;
    // E0003 leaves; rehired as E0100 with the same email: the same User,
    // active again, not a second one.
    app.put_person(
        &t,
        "E0003",
        json!({"attributes": {"employment_status": "terminated"}}),
    )
    .await;
    converge(&app, &peer, chrono::Duration::seconds(1)).await;
    let before = peer.all("Users").await;
    let old_id = before
        .iter()
        .find(|u| u["userName"] == "name3@example.com")
        .unwrap()["id"]
        .clone();
    app.put_person(
        &t,
        "E0100",
        json!({"attributes": {"given_name": "Again", "email": "name3@example.com"}}),
    )
    .await;
    let mut users = Vec::new();
    for _ in 0..100 {
        users = peer.all("Users").await;
        if users.iter().any(|u| u["name"]["givenName"] == "Again") {
            break;
        }
        app.clock.advance(chrono::Duration::seconds(1));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(users.len(), 6, "no second User for the rehire");
    let u = users
        .iter()
        .find(|u| u["userName"] == "name3@example.com")
        .unwrap();
    assert_eq!(
        (&u["id"], &u["active"], &u["externalId"]),
        (&old_id, &json!(true), &json!("E0100"))
    );

    // E0101 with active E0004's email: refused, E0004's User untouched.
    app.put_person(
        &t,
        "E0101",
        json!({"attributes": {"given_name": "Clash", "email": "name4@example.com"}}),
    )
    .await;
    let r = wait_log(&app, &sub, |r| r["outcome"] == "dead").await;
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("another active person"),
        "{r}"
    );
    let users = peer.all("Users").await;
    let u = users
        .iter()
        .find(|u| u["userName"] == "name4@example.com")
        .unwrap();
    assert_eq!(u["name"]["givenName"], "Name4");
    assert_eq!(users.len(), 6);
}

#[tokio::test]
async fn a_manager_is_provisioned_ahead_of_their_reports_so_each_user_names_them() {
    let Some(peer) = ScimPeer::start("provisioning::a_manager_ahead").await else {
        return;
    };
    let app = app("1s").await;
    let (_, t) = app.hr_setup().await;
    app.import_csv(&t, &staff(9, &[])).await;
    // E0002 reports to E0009, who reports to E0008: both come later in
    // the backfill's order.
    app.put_person(&t, "E0008", json!({"attributes": {}})).await;
    app.put_person(
        &t,
        "E0009",
        json!({"attributes": {"manager_external_id": "E0008"}}),
    )
    .await;
    app.put_person(
        &t,
        "E0002",
        json!({"attributes": {"manager_external_id": "E0009"}}),
    )
    .await;
    subscribe(
        &app,
        &peer.base(),
        json!({"groups": false, "concurrency": 1}),
    )
    .await;
    converge(&app, &peer, chrono::Duration::seconds(1)).await;
    let users = peer.all("Users").await;
    let id = |name: &str| {
        users
            .iter()
            .find(|u| u["userName"] == name)
            .unwrap_or_else(|| panic!("{name}"))
            .clone()
    };
    let (e2, e8, e9) = (
        id("name2@example.com"),
        id("name8@example.com"),
        id("name9@example.com"),
    );
    assert_eq!(e2[ENT]["manager"]["value"], e9["id"], "{e2}");
    assert_eq!(e9[ENT]["manager"]["value"], e8["id"], "{e9}");
    assert!(e8[ENT].get("manager").is_none(), "{e8}");
}
