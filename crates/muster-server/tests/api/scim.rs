//! The SCIM door (docs/scim.md) over real HTTP: discovery, Users and
//! Groups with the request bodies Microsoft Entra ID and Okta document
//! for their SCIM connectors, ETags, filters and paging, bulk, errors as
//! RFC 7644 §3.12 says, and SCIM tokens.
use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// A SCIM client of the default tenant with the `scim` role and a write
/// policy of every attribute and the roles `staff`, `eng` and `ops`
/// (never `admin`), and its SCIM token.
async fn scim_client(app: &TestApp, key: Option<&str>) -> (Client, String) {
    let c = app
        .create_client(json!({
            "role": "scim",
            "write_policy": {"attributes": ["*"], "roles": ["staff", "eng", "ops", "sales"]}
        }))
        .await;
    let mut body = json!({});
    if let Some(k) = key {
        body["key"] = json!(k);
    }
    let r = app
        .admin_post(&format!("/api/v1/clients/{}/scim-token", c.id), body)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["key"], key.unwrap_or("userName"));
    let token = v["token"].as_str().unwrap().to_owned();
    (c, token)
}

struct Scim<'a> {
    app: &'a TestApp,
    token: String,
}

impl Scim<'_> {
    fn url(&self, path: &str) -> String {
        self.app.url(&format!("/scim/v2{path}"))
    }
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut rb = self
            .app
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.token);
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(b) = body {
            rb = rb
                .header("content-type", "application/scim+json")
                .body(b.to_string());
        }
        let r = rb.send().await.unwrap();
        let (status, h) = (r.status(), r.headers().clone());
        let text = r.text().await.unwrap();
        if status != StatusCode::NO_CONTENT && status != StatusCode::NOT_MODIFIED {
            assert_eq!(
                h.get("content-type").and_then(|v| v.to_str().ok()),
                Some("application/scim+json"),
                "{path}: {status} {text}"
            );
        }
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        (status, h, v)
    }
    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let (s, _, v) = self.send(reqwest::Method::GET, path, None, &[]).await;
        (s, v)
    }
    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let (s, _, v) = self
            .send(reqwest::Method::POST, path, Some(body), &[])
            .await;
        (s, v)
    }
    async fn patch(&self, path: &str, ops: Value) -> (StatusCode, Value) {
        let body = json!({"schemas": [PATCH_OP], "Operations": ops});
        let (s, _, v) = self
            .send(reqwest::Method::PATCH, path, Some(body), &[])
            .await;
        (s, v)
    }
    async fn delete(&self, path: &str) -> StatusCode {
        self.send(reqwest::Method::DELETE, path, None, &[]).await.0
    }
    /// Creates a user, which must succeed; its id.
    async fn create_user(&self, body: Value) -> String {
        let (s, v) = self.post("/Users", body).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["id"].as_str().unwrap().to_owned()
    }
}

/// An error body as RFC 7644 §3.12 gives it: the schema, `status` as a
/// string equal to the HTTP status, and the `scimType` when given.
fn assert_error(status: StatusCode, v: &Value, expected: StatusCode, scim_type: Option<&str>) {
    assert_eq!(status, expected, "{v}");
    assert_eq!(v["schemas"], json!([ERROR]), "{v}");
    assert_eq!(v["status"], json!(expected.as_u16().to_string()), "{v}");
    if let Some(t) = scim_type {
        assert_eq!(v["scimType"], t, "{v}");
    }
}

/// Entra ID's create request (Microsoft's SCIM endpoint tutorial).
fn entra_user(user_name: &str) -> Value {
    json!({
        "schemas": [USER, ENTERPRISE],
        "externalId": format!("ext-{user_name}"),
        "userName": user_name,
        "active": true,
        "emails": [{"primary": true, "type": "work", "value": user_name}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "Ada Lovelace", "familyName": "Lovelace", "givenName": "Ada"},
        "roles": []
    })
}

/// Okta's create request (Okta's SCIM 2.0 guide), with its password
/// (ignored: Muster keeps no credentials) and empty groups.
fn okta_user(user_name: &str) -> Value {
    json!({
        "schemas": [USER],
        "userName": user_name,
        "name": {"givenName": "Test", "familyName": "User"},
        "emails": [{"primary": true, "value": user_name, "type": "work"}],
        "displayName": "Test User",
        "locale": "en-US",
        "externalId": "00ujl29u0le5T6Aj10h7",
        "groups": [],
        "password": "1mz050nq",
        "active": true
    })
}

#[tokio::test]
async fn discovery_describes_what_is_supported_with_the_tenants_own_attributes() {
    let app = spawn_app().await;
    let r = app
        .put_mapping(
            "hr",
            "key = \"id\"\n[attributes.badge_no]\ncolumn = \"badge\"\ntype = \"integer\"\n",
        )
        .await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let (_, token) = scim_client(&app, None).await;
    let s = Scim { app: &app, token };
    let (st, spc) = s.get("/ServiceProviderConfig").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(spc["patch"]["supported"], true);
    assert_eq!(spc["bulk"]["supported"], true);
    assert_eq!(spc["bulk"]["maxOperations"], 1000);
    assert_eq!(spc["filter"]["maxResults"], 1000);
    assert_eq!(spc["changePassword"]["supported"], false);
    assert_eq!(spc["etag"]["supported"], true);
    assert_eq!(spc["sort"]["supported"], true);
    assert_eq!(spc["meta"]["resourceType"], "ServiceProviderConfig");
    let (_, schemas) = s.get("/Schemas").await;
    let ids: Vec<&str> = schemas["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&USER) && ids.contains(&ENTERPRISE), "{ids:?}");
    let muster = "urn:muster:params:scim:schemas:extension:2.0:User";
    let (st, ext) = s.get(&format!("/Schemas/{muster}")).await;
    assert_eq!(st, StatusCode::OK, "{ext}");
    let badge = ext["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "badge_no")
        .expect("the mapping's custom attribute is described");
    assert_eq!(badge["type"], "integer");
    assert_eq!(ext["meta"]["resourceType"], "Schema");
    let (_, rt) = s.get("/ResourceTypes/User").await;
    assert_eq!(rt["endpoint"], "/Users");
    assert_eq!(rt["schemaExtensions"][0]["schema"], ENTERPRISE);
    let (st, v) = s.get("/ResourceTypes/Nope").await;
    assert_error(st, &v, StatusCode::NOT_FOUND, None);
}

#[tokio::test]
async fn the_door_wants_a_scim_token_or_a_bearer_token_with_scim_provision() {
    let app = spawn_app().await;
    let (c, token) = scim_client(&app, None).await;
    // No credentials: 401 as a SCIM error.
    let r = app
        .http
        .get(app.url("/scim/v2/Users"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "401");
    // A reader's access token: 403.
    let reader = app.create_client(json!({"role": "reader"})).await;
    let rt = app.token(&reader).await;
    let s = Scim {
        app: &app,
        token: rt,
    };
    let (st, v) = s.get("/Users").await;
    assert_error(st, &v, StatusCode::FORBIDDEN, None);
    // The SCIM client's own OAuth access token works too.
    let at = app.token(&c).await;
    let s = Scim {
        app: &app,
        token: at,
    };
    assert_eq!(s.get("/Users").await.0, StatusCode::OK);
    // The SCIM token is not an API token: its scope is the SCIM door.
    let r = app.get_as(&token, "/api/v1/people").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Rotating with no overlap ends the old token at once.
    let r = app
        .admin_post(
            &format!("/api/v1/clients/{}/scim-token", c.id),
            json!({"overlap_seconds": 0}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let new: Value = r.json().await.unwrap();
    let s = Scim { app: &app, token };
    let (st, _) = s.get("/Users").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let s = Scim {
        app: &app,
        token: new["token"].as_str().unwrap().to_owned(),
    };
    assert_eq!(s.get("/Users").await.0, StatusCode::OK);
    // A bad key is refused, naming the parameter.
    let r = app
        .admin_post(
            &format!("/api/v1/clients/{}/scim-token", c.id),
            json!({"key": "mail"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("key"));
}

#[tokio::test]
async fn entra_creates_reads_patches_and_deactivates_a_user() {
    let app = spawn_app().await;
    let (_, token) = scim_client(&app, None).await;
    let s = Scim { app: &app, token };
    let (st, h, u) = s
        .send(
            reqwest::Method::POST,
            "/Users",
            Some(entra_user("ada@example.com")),
            &[],
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{u}");
    let id = u["id"].as_str().unwrap().to_owned();
    assert_eq!(
        h.get("location").unwrap().to_str().unwrap(),
        u["meta"]["location"].as_str().unwrap()
    );
    assert_eq!(
        h.get("etag").unwrap().to_str().unwrap(),
        u["meta"]["version"].as_str().unwrap()
    );
    assert_eq!(u["userName"], "ada@example.com");
    assert_eq!(u["name"]["givenName"], "Ada");
    assert_eq!(u["active"], true);
    assert_eq!(u["emails"][0]["value"], "ada@example.com");
    // The person behind it, keyed by userName (the default key).
    let p = app.person("ada@example.com").await;
    assert_eq!(p.attributes["given_name"], "Ada");
    assert_eq!(p.attributes["family_name"], "Lovelace");
    assert_eq!(p.attributes["email"], "ada@example.com");
    // A duplicate userName, in another case: 409 uniqueness.
    let (st, v) = s.post("/Users", entra_user("ADA@example.com")).await;
    assert_error(st, &v, StatusCode::CONFLICT, Some("uniqueness"));
    // Entra's attribute update.
    let (st, v) = s
        .patch(
            &format!("/Users/{id}"),
            json!([
                {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "ada.l@example.com"},
                {"op": "Replace", "path": "name.familyName", "value": "King"}
            ]),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["name"]["familyName"], "King");
    assert_eq!(
        app.person("ada@example.com").await.attributes["family_name"],
        "King"
    );
    // A PATCH without path whose value has dotted and URN-qualified keys.
    let (st, v) = s
        .patch(
            &format!("/Users/{id}"),
            json!([{"op": "Add", "value": {
                "name.givenName": "Augusta",
                "title": "Analyst",
                format!("{ENTERPRISE}:department"): "Engines"
            }}]),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v[ENTERPRISE]["department"], "Engines");
    let p = app.person("ada@example.com").await;
    assert_eq!(p.attributes["given_name"], "Augusta");
    assert_eq!(p.attributes["department"], "Engines");
    assert_eq!(p.attributes["job_title"], "Analyst");
    // Entra disables with a boolean as a string.
    let (st, v) = s
        .patch(
            &format!("/Users/{id}"),
            json!([{"op": "Replace", "path": "active", "value": "False"}]),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["active"], false);
    assert_eq!(
        app.person("ada@example.com").await.attributes["employment_status"],
        "terminated"
    );
    // Inactive users are still returned by GET and by a filter.
    let (st, v) = s.get(&format!("/Users/{id}")).await;
    assert_eq!((st, &v["active"]), (StatusCode::OK, &json!(false)));
    let (_, v) = s
        .get("/Users?filter=userName%20eq%20%22ada%40example.com%22")
        .await;
    assert_eq!(v["totalResults"], 1, "{v}");
    // Entra's connection test: a filter on a random value is 200, empty.
    let (st, v) = s
        .get("/Users?filter=userName%20eq%20%2287f3a0c2-9d1b-4bde-9a55-0c0c9f2d3e11%22")
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["totalResults"], 0);
    assert_eq!(v["Resources"], json!([]));
    // And active again.
    let (st, v) = s
        .patch(
            &format!("/Users/{id}"),
            json!([{"op": "replace", "path": "active", "value": "True"}]),
        )
        .await;
    assert_eq!((st, &v["active"]), (StatusCode::OK, &json!(true)));
    // Every change is in the audit trail from source scim, and the chain holds.
    let audit: Value = app
        .get_json_as(&app.admin_token, "/api/v1/audit?limit=1000")
        .await;
    let from_scim = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["source"] == "scim" && e["person"] == "ada@example.com")
        .count();
    assert!(from_scim >= 5, "{audit}");
    app.assert_chain_verifies().await;
}

#[tokio::test]
async fn okta_creates_deactivates_and_finds_a_user_and_the_manager_is_a_reference() {
    let app = spawn_app().await;
    let (_, token) = scim_client(&app, None).await;
    let s = Scim { app: &app, token };
    let boss = s.create_user(okta_user("boss@okta.local")).await;
    let mut body = okta_user("test.user@okta.local");
    body["externalId"] = json!("00ujl29u0le5T6Aj10h8");
    // Explicit nulls in a create body are no value.
    body["nickName"] = Value::Null;
    body["title"] = Value::Null;
    // The manager as a bare string (Entra's and Okta's shape).
    body[ENTERPRISE] = json!({"manager": boss, "employeeNumber": null});
    body["schemas"] = json!([USER, ENTERPRISE]);
    let (st, u) = s.post("/Users", body).await;
    assert_eq!(st, StatusCode::CREATED, "{u}");
    let id = u["id"].as_str().unwrap().to_owned();
    assert!(
        u.get("password").is_none() && u.get("nickName").is_none(),
        "{u}"
    );
    assert_eq!(u[ENTERPRISE]["manager"]["value"], boss.as_str(), "{u}");
    assert_eq!(
        app.person("test.user@okta.local").await.attributes["manager_external_id"],
        "boss@okta.local"
    );
    // Okta's lookup before create.
    let (_, v) = s
        .get("/Users?filter=userName%20eq%20%22test.user%40okta.local%22&startIndex=1&count=100")
        .await;
    assert_eq!(v["totalResults"], 1);
    assert_eq!(v["Resources"][0]["id"], id.as_str());
    // Okta's deactivation: replace without a path.
    let (st, v) = s
        .patch(
            &format!("/Users/{id}"),
            json!([{"op": "replace", "value": {"active": false}}]),
        )
        .await;
    assert_eq!((st, &v["active"]), (StatusCode::OK, &json!(false)), "{v}");
    // Entra's manager update: a bare id as the value, with the URN path.
    let other = s.create_user(okta_user("boss2@okta.local")).await;
    let (st, v) = s
        .patch(
            &format!("/Users/{id}"),
            json!([{"op": "Add", "path": format!("{ENTERPRISE}:manager"), "value": other}]),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v[ENTERPRISE]["manager"]["value"], other.as_str(), "{v}");
    assert_eq!(
        app.person("test.user@okta.local").await.attributes["manager_external_id"],
        "boss2@okta.local"
    );
    // A manager that is no User is refused, naming the attribute.
    let (st, v) = s
        .patch(
            &format!("/Users/{id}"),
            json!([{"op": "Add", "path": format!("{ENTERPRISE}:manager"), "value": "no-such-id"}]),
        )
        .await;
    assert_error(st, &v, StatusCode::BAD_REQUEST, Some("invalidValue"));
    assert!(v["detail"].as_str().unwrap().contains("manager"));
    // PUT replaces: what the body leaves out is cleared.
    let (st, v) = s
        .send(
            reqwest::Method::PUT,
            &format!("/Users/{id}"),
            Some(json!({"schemas": [USER], "userName": "test.user@okta.local", "active": true})),
            &[],
        )
        .await
        .pipe(|(a, _, c)| (a, c));
    assert_eq!(st, StatusCode::OK, "{v}");
    assert!(
        v.get("name").is_none() && v.get(ENTERPRISE).is_none(),
        "{v}"
    );
    let p = app.person("test.user@okta.local").await;
    assert!(
        !p.attributes.contains_key("given_name"),
        "{:?}",
        p.attributes
    );
    assert!(!p.attributes.contains_key("manager_external_id"));
}

/// `x.pipe(f)` is `f(x)`: keeps a chain readable.
trait Pipe: Sized {
    fn pipe<R>(self, f: impl FnOnce(Self) -> R) -> R {
        f(self)
    }
}
impl<T> Pipe for T {}

#[tokio::test]
async fn etags_guard_changes_and_reads() {
    let app = spawn_app().await;
    let (_, token) = scim_client(&app, None).await;
    let s = Scim { app: &app, token };
    let (_, h, u) = s
        .send(
            reqwest::Method::POST,
            "/Users",
            Some(okta_user("e@x.org")),
            &[],
        )
        .await;
    let id = u["id"].as_str().unwrap();
    let tag = h.get("etag").unwrap().to_str().unwrap().to_owned();
    let (st, _, _) = s
        .send(
            reqwest::Method::GET,
            &format!("/Users/{id}"),
            None,
            &[("if-none-match", &tag)],
        )
        .await;
    assert_eq!(st, StatusCode::NOT_MODIFIED);
    let ops = json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "displayName", "value": "E"}]});
    let (st, _, v) = s
        .send(
            reqwest::Method::PATCH,
            &format!("/Users/{id}"),
            Some(ops.clone()),
            &[("if-match", &tag)],
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_ne!(v["meta"]["version"].as_str().unwrap(), tag);
    // The same version again is stale now.
    let (st, _, v) = s
        .send(
            reqwest::Method::PATCH,
            &format!("/Users/{id}"),
            Some(ops),
            &[("if-match", &tag)],
        )
        .await;
    assert_error(st, &v, StatusCode::PRECONDITION_FAILED, None);
}

#[tokio::test]
async fn filters_paging_sorting_and_projection() {
    let app = spawn_app().await;
    let (_, token) = scim_client(&app, None).await;
    let s = Scim { app: &app, token };
    for (i, dept) in [(1, "Eng"), (2, "Ops"), (3, "Eng"), (4, "Sales"), (5, "Eng")] {
        let mut u = entra_user(&format!("u{i}@example.com"));
        u[ENTERPRISE] = json!({"department": dept, "employeeNumber": format!("EMP-{i}")});
        u["title"] = json!(format!("T{}", 6 - i));
        s.create_user(u).await;
    }
    // Indexed: employeeNumber, emails.value, externalId (exact).
    let (_, v) = s
        .get(&format!(
            "/Users?filter={}",
            urlencode(&format!("{ENTERPRISE}:employeeNumber eq \"emp-3\""))
        ))
        .await;
    assert_eq!(v["totalResults"], 1, "{v}");
    assert_eq!(v["Resources"][0]["userName"], "u3@example.com");
    let (_, v) = s
        .get(&format!(
            "/Users?filter={}",
            urlencode("emails[type eq \"work\" and value eq \"U2@example.com\"]")
        ))
        .await;
    assert_eq!(v["totalResults"], 1, "{v}");
    let (_, v) = s
        .get(&format!(
            "/Users?filter={}",
            urlencode(
                "externalId eq \"ext-u4@example.com\" or externalId eq \"EXT-u5@example.com\""
            )
        ))
        .await;
    assert_eq!(v["totalResults"], 1, "{v}");
    // A scan: department and sw, sorted by title descending, paged.
    let f = urlencode(&format!(
        "{ENTERPRISE}:department eq \"eng\" and not (userName sw \"u9\")"
    ));
    let (_, v) = s
        .get(&format!(
            "/Users?filter={f}&sortBy=title&sortOrder=descending&startIndex=2&count=1&attributes=userName"
        ))
        .await;
    assert_eq!(v["totalResults"], 3, "{v}");
    assert_eq!(v["startIndex"], 2);
    assert_eq!(v["itemsPerPage"], 1);
    let r = &v["Resources"][0];
    assert_eq!(r["userName"], "u3@example.com");
    assert!(r.get("name").is_none() && r.get("id").is_some(), "{r}");
    // No filter: stable order, pages that add up.
    let mut seen = Vec::new();
    for start in [1, 3, 5] {
        let (_, v) = s.get(&format!("/Users?startIndex={start}&count=2")).await;
        assert_eq!(v["totalResults"], 5);
        for r in v["Resources"].as_array().unwrap() {
            seen.push(r["id"].as_str().unwrap().to_owned());
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 5);
    // POST /.search.
    let (st, v) = s
        .post(
            "/Users/.search",
            json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                "filter": "title pr and userName ew \"5@example.com\"",
                "excludedAttributes": ["emails"]
            }),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["totalResults"], 1);
    assert!(v["Resources"][0].get("emails").is_none());
    // Bad filters and parameters are named.
    let (st, v) = s
        .get(&format!("/Users?filter={}", urlencode("userName eq")))
        .await;
    assert_error(st, &v, StatusCode::BAD_REQUEST, Some("invalidFilter"));
    let (st, v) = s.get("/Users?count=ten").await;
    assert_error(st, &v, StatusCode::BAD_REQUEST, Some("invalidValue"));
    assert!(v["detail"].as_str().unwrap().contains("count"));
    let (st, v) = s.get("/Users?sortBy=nope").await;
    assert_error(st, &v, StatusCode::BAD_REQUEST, Some("invalidValue"));
}

#[tokio::test]
async fn a_filter_no_index_answers_is_refused_beyond_max_scan() {
    let app = spawn_app_with(vec![("MUSTER_SCIM__MAX_SCAN", "3")]).await;
    let (_, token) = scim_client(&app, None).await;
    let s = Scim { app: &app, token };
    for i in 0..4 {
        s.create_user(okta_user(&format!("m{i}@okta.local"))).await;
    }
    let (st, v) = s
        .get(&format!("/Users?filter={}", urlencode("title co \"x\"")))
        .await;
    assert_error(st, &v, StatusCode::BAD_REQUEST, Some("tooMany"));
    // The indexed ones still answer, at any size.
    let (st, v) = s
        .get(&format!(
            "/Users?filter={}",
            urlencode("userName eq \"m2@okta.local\"")
        ))
        .await;
    assert_eq!((st, &v["totalResults"]), (StatusCode::OK, &json!(1)));
}

#[tokio::test]
async fn delete_deactivates_and_hides_a_user_and_a_new_create_brings_it_back() {
    let app = spawn_app().await;
    let (_, token) = scim_client(&app, None).await;
    let s = Scim { app: &app, token };
    let id = s.create_user(okta_user("gone@okta.local")).await;
    assert_eq!(
        s.delete(&format!("/Users/{id}")).await,
        StatusCode::NO_CONTENT
    );
    let (st, v) = s.get(&format!("/Users/{id}")).await;
    assert_error(st, &v, StatusCode::NOT_FOUND, None);
    let (_, v) = s
        .get(&format!(
            "/Users?filter={}",
            urlencode("userName eq \"gone@okta.local\"")
        ))
        .await;
    assert_eq!(v["totalResults"], 0);
    let p = app.person("gone@okta.local").await;
    assert_eq!(p.attributes["employment_status"], "terminated");
    let id2 = s.create_user(okta_user("gone@okta.local")).await;
    assert_ne!(id, id2, "a deleted id is never given again");
    let (_, v) = s.get(&format!("/Users/{id2}")).await;
    assert_eq!(v["active"], true);
    let audit: Value = app
        .get_json_as(&app.admin_token, "/api/v1/audit?limit=1000")
        .await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(actions.contains(&"person.scim_deleted"), "{actions:?}");
    assert!(actions.contains(&"person.scim_linked"), "{actions:?}");
    app.assert_chain_verifies().await;
}

#[tokio::test]
async fn a_person_from_an_hr_file_is_the_same_person_under_the_employee_number_key() {
    let app = spawn_app().await;
    let (_, t) = app.hr_setup().await;
    app.import_csv(&t, &rows(2)).await;
    let (_, token) = scim_client(&app, Some("employeeNumber")).await;
    let s = Scim { app: &app, token };
    let mut u = entra_user("name1@example.com");
    u[ENTERPRISE] = json!({"employeeNumber": "E0001", "department": "Research"});
    let (st, v) = s.post("/Users", u).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let p = app.person("E0001").await;
    assert_eq!(p.attributes["department"], "Research");
    assert_eq!(p.attributes["user_name"], "name1@example.com");
    // Without the key's attribute the User cannot be keyed.
    let (st, v) = s.post("/Users", entra_user("nokey@example.com")).await;
    assert_error(st, &v, StatusCode::BAD_REQUEST, Some("invalidValue"));
    assert!(v["detail"].as_str().unwrap().contains("employeeNumber"));
    // Every person has a SCIM id: the HR person SCIM never wrote is
    // listed too.
    let (_, v) = s.get("/Users").await;
    assert_eq!(v["totalResults"], 2, "{v}");
}

#[tokio::test]
async fn groups_are_roles_and_members_are_patched_as_entra_and_okta_send_them() {
    let app = spawn_app().await;
    let (_, token) = scim_client(&app, None).await;
    let s = Scim { app: &app, token };
    let a = s.create_user(okta_user("a@okta.local")).await;
    let b = s.create_user(okta_user("b@okta.local")).await;
    let c = s.create_user(okta_user("c@okta.local")).await;
    let (st, g) = s
        .post(
            "/Groups",
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                   "displayName": "eng", "externalId": "okta-g1",
                   "members": [{"value": a}]}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{g}");
    let gid = g["id"].as_str().unwrap().to_owned();
    assert_eq!(g["members"][0]["value"], a.as_str());
    assert!(app
        .person("a@okta.local")
        .await
        .roles
        .contains(&"eng".to_owned()));
    // Entra's member add.
    let (st, v) = s
        .patch(
            &format!("/Groups/{gid}"),
            json!([{"op": "Add", "path": "members", "value": [{"$ref": null, "value": b}, {"value": c}]}]),
        )
        .await;
    // Group PATCHes answer 204, as Entra ID and Okta expect.
    assert_eq!(st, StatusCode::NO_CONTENT, "{v}");
    assert!(app
        .person("c@okta.local")
        .await
        .roles
        .contains(&"eng".to_owned()));
    // The user shows its group.
    let (_, u) = s.get(&format!("/Users/{b}")).await;
    assert_eq!(u["groups"][0]["value"], gid.as_str(), "{u}");
    // Entra's removal by filter; Okta's by a value list.
    let (st, _) = s
        .patch(
            &format!("/Groups/{gid}"),
            json!([{"op": "Remove", "path": format!("members[value eq \"{a}\"]")}]),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = s
        .patch(
            &format!("/Groups/{gid}"),
            json!([{"op": "remove", "path": "members", "value": [{"value": b}]}]),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert!(!app
        .person("a@okta.local")
        .await
        .roles
        .contains(&"eng".to_owned()));
    assert!(!app
        .person("b@okta.local")
        .await
        .roles
        .contains(&"eng".to_owned()));
    let (_, v) = s.get(&format!("/Groups/{gid}")).await;
    assert_eq!(v["members"].as_array().unwrap().len(), 1, "{v}");
    // Entra's membership check.
    let f = urlencode(&format!("id eq \"{gid}\" and members[value eq \"{c}\"]"));
    let (_, v) = s
        .get(&format!("/Groups?excludedAttributes=members&filter={f}"))
        .await;
    assert_eq!(v["totalResults"], 1, "{v}");
    assert!(v["Resources"][0].get("members").is_none());
    // Okta's rename repeats the id; the role moves with its members.
    let (st, v) = s
        .patch(
            &format!("/Groups/{gid}"),
            json!([{"op": "replace", "value": {"id": gid, "displayName": "ops"}}]),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{v}");
    // Asked for, the answer is the Group.
    let (st, _, v) = s
        .send(
            reqwest::Method::PATCH,
            &format!("/Groups/{gid}?attributes=displayName,members"),
            Some(json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "replace", "path": "externalId", "value": "okta-g2"}]})),
            &[],
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        (v["displayName"].as_str(), v["members"][0]["value"].as_str()),
        (Some("ops"), Some(c.as_str())),
        "{v}"
    );
    let roles = app.person("c@okta.local").await.roles;
    assert!(roles.contains(&"ops".to_owned()) && !roles.contains(&"eng".to_owned()));
    // A role outside the client's write policy is refused.
    let (st, v) = s.post("/Groups", json!({"displayName": "admin"})).await;
    assert_error(st, &v, StatusCode::FORBIDDEN, None);
    let (st, v) = s
        .patch(
            &format!("/Groups/{gid}"),
            json!([{"op": "replace", "path": "displayName", "value": "admin"}]),
        )
        .await;
    assert_error(st, &v, StatusCode::FORBIDDEN, None);
    // A second group of the same name.
    let (st, v) = s.post("/Groups", json!({"displayName": "ops"})).await;
    assert_error(st, &v, StatusCode::CONFLICT, Some("uniqueness"));
    // Deleting the group takes the role away.
    assert_eq!(
        s.delete(&format!("/Groups/{gid}")).await,
        StatusCode::NO_CONTENT
    );
    assert!(!app
        .person("c@okta.local")
        .await
        .roles
        .contains(&"ops".to_owned()));
    let (st, v) = s.get(&format!("/Groups/{gid}")).await;
    assert_error(st, &v, StatusCode::NOT_FOUND, None);
    app.assert_chain_verifies().await;
}

#[tokio::test]
async fn bulk_creates_with_bulk_id_references_and_stops_after_fail_on_errors() {
    let app = spawn_app().await;
    let (_, token) = scim_client(&app, None).await;
    let s = Scim { app: &app, token };
    let req = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [
            // The group refers to a user created later in the request.
            {"method": "POST", "path": "/Groups", "bulkId": "g1",
             "data": {"displayName": "sales", "members": [{"value": "bulkId:u1"}]}},
            {"method": "POST", "path": "/Users", "bulkId": "u1", "data": okta_user("bulk1@okta.local")},
            {"method": "PATCH", "path": "/Users/bulkId:u1",
             "data": {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "title", "value": "Rep"}]}}
        ]
    });
    let (st, v) = s.post("/Bulk", req).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let ops = v["Operations"].as_array().unwrap();
    let statuses: Vec<&str> = ops.iter().map(|o| o["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["201", "201", "200"], "{v}");
    let p = app.person("bulk1@okta.local").await;
    assert!(p.roles.contains(&"sales".to_owned()));
    assert_eq!(p.attributes["job_title"], "Rep");
    // failOnErrors: 1 stops at the first failure.
    let req = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "failOnErrors": 1,
        "Operations": [
            {"method": "POST", "path": "/Users", "data": okta_user("bulk1@okta.local")},
            {"method": "POST", "path": "/Users", "data": okta_user("bulk2@okta.local")}
        ]
    });
    let (_, v) = s.post("/Bulk", req).await;
    let ops = v["Operations"].as_array().unwrap();
    assert_eq!(ops.len(), 1, "{v}");
    assert_eq!(ops[0]["status"], "409");
    assert_eq!(ops[0]["response"]["scimType"], "uniqueness");
    // Beyond maxOperations: 413.
    let many: Vec<Value> = (0..1001)
        .map(|i| json!({"method": "DELETE", "path": format!("/Users/x{i}")}))
        .collect();
    let (st, v) = s
        .post(
            "/Bulk",
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": many}),
        )
        .await;
    assert_error(st, &v, StatusCode::PAYLOAD_TOO_LARGE, None);
}

#[tokio::test]
async fn errors_never_repeat_a_value_and_one_tenant_never_sees_another() {
    let app = spawn_app().await;
    let (_, token) = scim_client(&app, None).await;
    let s = Scim { app: &app, token };
    let secret_name = "Zebediah-Quux-7431";
    let mut u = okta_user("v@okta.local");
    u["emails"] = json!([{"value": 7431, "type": "work"}]);
    u["name"]["givenName"] = json!(secret_name);
    let (st, v) = s.post("/Users", u).await;
    assert_error(st, &v, StatusCode::BAD_REQUEST, Some("invalidValue"));
    assert!(!v.to_string().contains(secret_name), "{v}");
    assert!(!v.to_string().contains("7431"), "{v}");
    // Not JSON.
    let r = app
        .http
        .post(app.url("/scim/v2/Users"))
        .bearer_auth(&s.token)
        .header("content-type", "application/scim+json")
        .body("{\"userName\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["scimType"], "invalidSyntax");
    // An unknown endpoint is a SCIM 404.
    let (st, v) = s.get("/Nope").await;
    assert_error(st, &v, StatusCode::NOT_FOUND, None);
    // Another tenant's SCIM client sees none of this tenant's Users.
    let id = s.create_user(okta_user("mine@okta.local")).await;
    let r = app
        .admin_post("/api/v1/tenants", json!({"id": "acme"}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.unwrap();
    let acme_admin = v["admin_token"].as_str().unwrap().to_owned();
    let r = app
        .http
        .post(app.url("/api/v1/clients"))
        .bearer_auth(&acme_admin)
        .json(&json!({"role": "scim", "write_policy": {"attributes": ["*"], "roles": []}}))
        .send()
        .await
        .unwrap();
    let cid = r.json::<Value>().await.unwrap()["client"]["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .http
        .post(app.url(&format!("/api/v1/clients/{cid}/scim-token")))
        .bearer_auth(&acme_admin)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let acme = Scim {
        app: &app,
        token: r.json::<Value>().await.unwrap()["token"]
            .as_str()
            .unwrap()
            .to_owned(),
    };
    let (st, _) = acme.get(&format!("/Users/{id}")).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (_, v) = acme.get("/Users").await;
    assert_eq!(v["totalResults"], 0);
    // Nor may the default tenant's admin mint a token for acme's client.
    let r = app
        .admin_post(&format!("/api/v1/clients/{cid}/scim-token"), json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_group_of_thousands_is_patched_in_one_request() {
    let app = spawn_app().await;
    let (_, t) = app.hr_setup().await;
    app.import_csv(&t, &rows(1200)).await;
    let (_, token) = scim_client(&app, None).await;
    let s = Scim { app: &app, token };
    let mut ids = Vec::new();
    for start in [1, 1001] {
        let (_, v) = s
            .get(&format!(
                "/Users?startIndex={start}&count=1000&attributes=id"
            ))
            .await;
        for r in v["Resources"].as_array().unwrap() {
            ids.push(r["id"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(ids.len(), 1200);
    let (st, g) = s.post("/Groups", json!({"displayName": "staff"})).await;
    assert_eq!(st, StatusCode::CREATED, "{g}");
    let gid = g["id"].as_str().unwrap().to_owned();
    let members: Vec<Value> = ids.iter().map(|id| json!({"value": id})).collect();
    let (st, v) = s
        .patch(
            &format!("/Groups/{gid}"),
            json!([{"op": "add", "path": "members", "value": members}]),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{v}");
    let (st, _) = s
        .patch(
            &format!("/Groups/{gid}"),
            json!([{"op": "remove", "path": format!("members[value eq \"{}\"]", ids[7])}]),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (_, v) = s.get(&format!("/Groups/{gid}")).await;
    assert_eq!(v["members"].as_array().unwrap().len(), 1199);
    assert!(app
        .person("E1200")
        .await
        .roles
        .contains(&"staff".to_owned()));
    assert!(!app
        .person("E0008")
        .await
        .roles
        .contains(&"staff".to_owned()));
    // The membership check Entra makes, on the group of thousands.
    let f = urlencode(&format!(
        "id eq \"{gid}\" and members[value eq \"{}\"]",
        ids[7]
    ));
    let (_, v) = s
        .get(&format!("/Groups?excludedAttributes=members&filter={f}"))
        .await;
    assert_eq!(v["totalResults"], 0, "{v}");
}

fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A SCIM file posted to the import API: the rows that create Users are
/// read by the SCIM door's User mapping, everything else is a row error
/// named by operation, and the file goes through the import's own
/// passes (dry run, snapshot, row errors) like an HR file.
#[tokio::test]
async fn a_scim_file_imports_like_an_hr_file_through_the_scim_user_mapping() {
    let app = spawn_app().await;
    let (_, token) = scim_client(&app, None).await;
    let s = Scim { app: &app, token };
    let boss = s.create_user(entra_user("boss@example.com")).await;
    let importer = app.syncer().await;
    let t = app.token(&importer).await;

    let mut ann = entra_user("ann@example.com");
    ann[ENTERPRISE] = json!({"employeeNumber": "1001", "department": "Eng",
                             "manager": {"value": boss}});
    let mut bob = okta_user("bob@example.com");
    bob["active"] = json!("False");
    bob["phoneNumbers"] = json!([{"type": "work", "value": "+1 555 0100"}]);
    let mut lost = okta_user("lost@example.com");
    lost[ENTERPRISE] = json!({"manager": "no-such-user"});
    let mut nameless = okta_user("x@example.com");
    nameless.as_object_mut().unwrap().remove("userName");
    // Fifty more good rows keep the five bad ones under the import's
    // error rate (10%).
    let mut ops = vec![
        json!({"method": "POST", "path": "/Users", "bulkId": "a", "data": ann}),
        json!({"method": "post", "path": "/Users", "bulkId": "b", "data": bob}),
        json!({"method": "PATCH", "path": "/Users/whoever", "data": {}}),
        json!({"method": "POST", "path": "/Groups", "data": {"displayName": "g"}}),
        json!({"method": "POST", "path": "/Users", "data": lost}),
        json!({"method": "POST", "path": "/Users", "data": nameless}),
        json!(42),
    ];
    for i in 0..50 {
        ops.push(json!({"method": "POST", "path": "/Users",
                        "data": okta_user(&format!("u{i}@example.com"))}));
    }
    let file = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "failOnErrors": 10,
        "Operations": ops
    });
    // A SCIM file takes no stored mapping.
    let r = app
        .upload(&t, "mapping=hr", "application/scim+json", file.to_string())
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("mapping"));
    // A dry run says what would change, and changes nothing.
    let r = app
        .upload(
            &t,
            "dry_run=true&wait=30",
            "application/scim+json",
            file.to_string(),
        )
        .await;
    assert!(r.status().is_success());
    let v: Value = r.json().await.unwrap();
    let v = app.wait_import(&t, v["id"].as_str().unwrap()).await;
    assert_eq!(v["counts"]["created"], 52, "{v}");
    let r = app
        .get_as(&app.admin_token, "/api/v1/people/ann@example.com")
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    let r = app
        .upload(&t, "wait=30", "application/scim+json", file.to_string())
        .await;
    let v: Value = r.json().await.unwrap();
    let v = app.wait_import(&t, v["id"].as_str().unwrap()).await;
    assert_eq!(v["state"], "succeeded_with_errors", "{v}");
    assert_eq!(v["mapping"], "scim", "{v}");
    assert_eq!(v["counts"]["rows_total"], 57, "{v}");
    assert_eq!(v["counts"]["created"], 52, "{v}");
    assert_eq!(v["counts"]["failed"], 5, "{v}");
    let errors = app.errors(&t, v["id"].as_str().unwrap()).await;
    let got: Vec<(u64, &str, &str)> = errors
        .iter()
        .map(|e| {
            (
                e["row"].as_u64().unwrap(),
                e["column"].as_str().unwrap_or(""),
                e["code"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (3, "method", "unsupported_operation"),
            (4, "path", "unsupported_operation"),
            (5, "manager", "unknown_manager"),
            (6, "", "invalid_user"),
            (7, "", "not_an_object"),
        ],
        "{errors:?}"
    );
    let text = serde_json::to_string(&errors).unwrap();
    for secret in ["no-such-user", "x@example.com", "whoever"] {
        assert!(!text.contains(secret), "{text}");
    }

    // The people are the SCIM door's: keyed by userName, the manager
    // resolved from its SCIM id, `active` as the status, and what the
    // person schema has no place for kept for SCIM to read back.
    let p = app.person("ann@example.com").await;
    assert_eq!(p.attributes["department"], "Eng");
    assert_eq!(p.attributes["employee_number"], "1001");
    assert_eq!(p.attributes["given_name"], "Ada");
    assert_eq!(p.attributes["manager_external_id"], "boss@example.com");
    assert_eq!(p.attributes["employment_status"], "active");
    let p = app.person("bob@example.com").await;
    assert_eq!(p.attributes["employment_status"], "terminated");
    let (_, v) = s
        .get("/Users?filter=userName%20eq%20%22ann@example.com%22")
        .await;
    assert_eq!(v["Resources"][0]["userName"], "ann@example.com", "{v}");
    assert_eq!(
        v["Resources"][0][ENTERPRISE]["manager"]["value"], boss,
        "{v}"
    );
    let (_, v) = s
        .get("/Users?filter=userName%20eq%20%22bob@example.com%22")
        .await;
    assert_eq!(v["Resources"][0]["active"], false, "{v}");
    assert_eq!(
        v["Resources"][0]["phoneNumbers"][0]["value"], "+1 555 0100",
        "{v}"
    );

    // A ListResponse (an identity provider's export of GET /Users) in
    // snapshot mode: the import's source loses the people it leaves out.
    let mut ann2 = entra_user("ann@example.com");
    ann2[ENTERPRISE] = json!({"employeeNumber": "1001", "department": "Ops",
                              "manager": {"value": boss}});
    let export = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": 1,
        "Resources": [ann2]
    });
    let r = app
        .upload(
            &t,
            "mode=snapshot&allow_mass_deactivation=true&wait=30",
            "application/scim+json",
            export.to_string(),
        )
        .await;
    let v: Value = r.json().await.unwrap();
    let v = app.wait_import(&t, v["id"].as_str().unwrap()).await;
    assert_eq!(v["state"], "succeeded", "{v}");
    assert_eq!(v["counts"]["updated"], 1, "{v}");
    // bob was terminated already; the fifty others were not.
    assert_eq!(v["counts"]["deactivated"], 50, "{v}");
    let p = app.person("ann@example.com").await;
    assert_eq!(p.attributes["department"], "Ops");
    let p = app.person("u7@example.com").await;
    assert_eq!(p.attributes["employment_status"], "terminated");

    // A file that is no SCIM document is refused whole, with where.
    let r = app
        .upload(
            &t,
            "format=scim&wait=30",
            "application/octet-stream",
            "id,name\n1,a\n",
        )
        .await;
    let v: Value = r.json().await.unwrap();
    let v = app.wait_import(&t, v["id"].as_str().unwrap()).await;
    assert_eq!(v["state"], "rejected", "{v}");
    assert_eq!(v["error"]["code"], "invalid_format", "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("line 1"),
        "{v}"
    );
    app.assert_chain_verifies().await;
}
