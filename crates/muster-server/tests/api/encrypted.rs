//! Encrypted intake end to end: keys made by the gateway, files encrypted
//! by the real `gpg` and `age` programs, refusals that apply nothing.
use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether `tool` can run here. Missing under CI=true is a failure: the
/// test command installs it (scripts/install-test-tools).
pub fn have(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{tool} is not installed; scripts/install-test-tools installs it");
        }
        eprintln!("SKIPPED: {tool} not installed (run scripts/install-test-tools)");
    }
    ok
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A throwaway GnuPG home.
struct Gpg {
    home: tempfile::TempDir,
}

impl Gpg {
    fn new() -> Self {
        let home = tempfile::tempdir().unwrap();
        Gpg { home }
    }
    fn cmd(&self) -> Command {
        let mut c = Command::new("gpg");
        c.arg("--homedir").arg(self.home.path()).args([
            "--batch",
            "--yes",
            "--quiet",
            "--trust-model",
            "always",
        ]);
        c
    }
    fn import(&self, armored: &str) {
        let f = self.home.path().join("import.asc");
        std::fs::write(&f, armored).unwrap();
        run(self.cmd().arg("--import").arg(&f));
    }
    /// A signing key of the "HR system"; returns its armored public key.
    fn sender_key(&self, uid: &str) -> String {
        run(self.cmd().args([
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            "--quick-gen-key",
            uid,
            "ed25519",
            "sign",
            "never",
        ]));
        let out = self
            .cmd()
            .args(["--armor", "--export", uid])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    }
}

fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

impl TestApp {
    async fn new_key(&self, spec: Value) -> Value {
        let r = self.admin_post("/api/v1/keys", spec).await;
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{v}");
        v
    }

    async fn upload_bytes(&self, token: &str, body: Vec<u8>) -> muster_proto::ImportInfo {
        let r = self
            .upload(
                token,
                "mapping=hr&wait=30&format=csv",
                "application/octet-stream",
                body,
            )
            .await;
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert!(status.is_success(), "{status} {v}");
        self.wait_import_info(token, v["id"].as_str().unwrap())
            .await
    }

    async fn people_count(&self) -> usize {
        let v: Value = self
            .get_json_as(&self.admin_token, "/api/v1/people?limit=1000")
            .await;
        v["items"].as_array().unwrap().len()
    }
}

fn age_encrypt(dir: &Path, recipient: &str, plain: &[u8], armor: bool) -> Vec<u8> {
    let input = write(dir, "plain.csv", plain);
    let out = dir.join("plain.csv.age");
    let mut c = Command::new("age");
    if armor {
        c.arg("--armor");
    }
    run(c.arg("-r").arg(recipient).arg("-o").arg(&out).arg(&input));
    std::fs::read(out).unwrap()
}

fn gpg_encrypt(gpg: &Gpg, to: &str, plain: &[u8], extra: &[&str]) -> Vec<u8> {
    let input = write(gpg.home.path(), "plain.csv", plain);
    let out = gpg.home.path().join("plain.csv.gpg");
    run(gpg
        .cmd()
        .args(extra)
        .args(["--encrypt", "--recipient", to, "--output"])
        .arg(&out)
        .arg(&input));
    std::fs::read(out).unwrap()
}

#[tokio::test]
async fn an_age_encrypted_export_imports_like_its_plaintext() {
    if !have("age") {
        return;
    }
    let app = spawn_app().await;
    let (_c, t) = app.hr_setup().await;
    let key = app.new_key(json!({"kind": "age"})).await;
    assert_eq!(key["algorithm"], "x25519");
    let recipient = key["public_key"].as_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for armor in [false, true] {
        let csv = rows(20).replace(",Name", if armor { ",Armored" } else { ",Binary" });
        let v = app
            .upload_bytes(
                &t,
                age_encrypt(dir.path(), recipient, csv.as_bytes(), armor),
            )
            .await;
        assert_eq!(v.state.as_str(), "succeeded", "{v:?}");
        assert_eq!(v.counts.rows_total, 20);
    }
    assert_eq!(app.people_count().await, 20);
    let p = app.person("E0003").await;
    assert_eq!(p.attributes["given_name"], "Armored3");
}

#[tokio::test]
async fn gpg_files_to_gateway_keys_import_signed_or_not_compressed_or_not() {
    if !have("gpg") {
        return;
    }
    let app = spawn_app().await;
    let (_c, t) = app.hr_setup().await;
    let gpg = Gpg::new();
    let sender = gpg.sender_key("HR System <hr@example.com>");
    let mut n = 0;
    for algorithm in ["curve25519", "rsa3072"] {
        let key = app
            .new_key(json!({"kind": "openpgp", "algorithm": algorithm}))
            .await;
        gpg.import(key["public_key"].as_str().unwrap());
        let to = key["key_ids"][0].as_str().unwrap().to_owned();
        for extra in [
            &["--armor"][..],
            &["--compress-algo", "zlib"][..],
            &["--compress-algo", "bzip2", "--armor"][..],
            &[
                "--compress-algo",
                "zip",
                "--sign",
                "--local-user",
                "hr@example.com",
            ][..],
            &["--compress-algo", "none"][..],
        ] {
            n += 1;
            let csv = rows(5).replace(",Name", &format!(",V{n}x"));
            let v = app
                .upload_bytes(&t, gpg_encrypt(&gpg, &to, csv.as_bytes(), extra))
                .await;
            assert_eq!(
                v.state.as_str(),
                "succeeded",
                "{algorithm} {extra:?}: {v:?}"
            );
            assert_eq!(v.counts.rows_total, 5);
        }
    }
    let p = app.person("E0002").await;
    assert_eq!(p.attributes["given_name"], format!("V{n}x2"));
    assert!(sender.contains("BEGIN PGP PUBLIC KEY BLOCK"));
}

#[tokio::test]
async fn a_client_that_must_encrypt_cannot_send_plaintext_and_nothing_is_kept() {
    let app = spawn_app().await;
    let (c, t) = app.hr_setup().await;
    let r = app
        .http
        .put(app.url(&format!("/api/v1/clients/{}/intake-policy", c.id)))
        .bearer_auth(&app.admin_token)
        .json(&json!({"require_encryption": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .upload(&t, "mapping=hr&wait=5", "text/csv", rows(3))
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], "encryption_required", "{v}");
    let list: Value = app.get_json_as(&app.admin_token, "/api/v1/imports").await;
    assert!(list["items"].as_array().unwrap().is_empty(), "{list}");
    let uploads = app.dir.path().join("uploads");
    let left = std::fs::read_dir(&uploads).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "no spooled upload remains");
    assert_eq!(app.people_count().await, 0);
}

#[tokio::test]
async fn files_the_tenant_cannot_open_are_refused_with_the_reason_and_nothing_applied() {
    if !have("age") || !have("gpg") {
        return;
    }
    let app = spawn_app().await;
    let (_c, t) = app.hr_setup().await;
    let dir = tempfile::tempdir().unwrap();
    let key = app.new_key(json!({"kind": "age"})).await;
    let ours = key["public_key"].as_str().unwrap().to_owned();
    let csv = rows(50);

    // Encrypted to someone else: the message's recipient is named.
    let other = Command::new("age-keygen").output().unwrap();
    let other = String::from_utf8(other.stdout).unwrap();
    let other_recipient = other
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .to_owned();
    let v = app
        .upload_bytes(
            &t,
            age_encrypt(dir.path(), &other_recipient, csv.as_bytes(), false),
        )
        .await;
    assert_eq!(v.state.as_str(), "rejected", "{v:?}");
    assert_eq!(v.error.as_ref().unwrap().code, "no_matching_key", "{v:?}");

    // Tampered in the middle, and truncated: integrity failures.
    let mut sealed = age_encrypt(dir.path(), &ours, csv.as_bytes(), false);
    let mid = sealed.len() / 2;
    sealed[mid] ^= 0x01;
    let v = app.upload_bytes(&t, sealed).await;
    assert_eq!(v.state.as_str(), "rejected", "{v:?}");
    assert_eq!(v.error.as_ref().unwrap().code, "integrity_failure", "{v:?}");
    let mut cut = age_encrypt(dir.path(), &ours, csv.as_bytes(), false);
    cut.truncate(cut.len() - 10);
    let v = app.upload_bytes(&t, cut).await;
    assert_eq!(v.state.as_str(), "rejected", "{v:?}");

    // Legacy OpenPGP without integrity protection.
    let gpg = Gpg::new();
    let pgp = app
        .new_key(json!({"kind": "openpgp", "algorithm": "curve25519"}))
        .await;
    gpg.import(pgp["public_key"].as_str().unwrap());
    let to = pgp["key_ids"][0].as_str().unwrap().to_owned();
    let legacy = gpg_encrypt(
        &gpg,
        &to,
        csv.as_bytes(),
        &[
            "--rfc2440",
            "--cipher-algo",
            "AES256",
            "--compress-algo",
            "none",
        ],
    );
    let v = app.upload_bytes(&t, legacy).await;
    assert_eq!(v.state.as_str(), "rejected", "{v:?}");
    assert_eq!(v.error.as_ref().unwrap().code, "legacy_encryption", "{v:?}");

    // A revoked key opens nothing, and says so.
    let good = age_encrypt(dir.path(), &ours, csv.as_bytes(), false);
    let id = key["id"].as_str().unwrap();
    let r = app
        .admin_post(&format!("/api/v1/keys/{id}/revoke"), json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let v = app.upload_bytes(&t, good).await;
    assert_eq!(v.state.as_str(), "rejected", "{v:?}");
    assert_eq!(v.error.as_ref().unwrap().code, "key_revoked", "{v:?}");
    assert!(v.error.as_ref().unwrap().message.as_str().contains(id));

    assert_eq!(app.people_count().await, 0, "nothing applied");
}

#[tokio::test]
async fn a_decompression_bomb_is_refused() {
    if !have("gpg") {
        return;
    }
    let app = spawn_app_with(vec![("MUSTER_LIMITS__MAX_DECOMPRESSION_RATIO", "20")]).await;
    let (_c, t) = app.hr_setup().await;
    let gpg = Gpg::new();
    let key = app.new_key(json!({"algorithm": "curve25519"})).await;
    gpg.import(key["public_key"].as_str().unwrap());
    let to = key["key_ids"][0].as_str().unwrap().to_owned();
    // 64 MiB of one repeated row compresses a thousandfold.
    let mut csv = rows(1);
    let line = "E0001,Same,Row,same@example.com,Dept1,A,01/15/2020\n";
    while csv.len() < 64 << 20 {
        csv.push_str(line);
    }
    let bomb = gpg_encrypt(
        &gpg,
        &to,
        csv.as_bytes(),
        &["--compress-algo", "zlib", "-z", "9"],
    );
    assert!(bomb.len() < 1 << 20);
    let v = app.upload_bytes(&t, bomb).await;
    assert_eq!(v.state.as_str(), "rejected", "{v:?}");
    assert_eq!(
        v.error.as_ref().unwrap().code,
        "decompression_bomb",
        "{v:?}"
    );
    assert_eq!(app.people_count().await, 0);
}

#[tokio::test]
async fn a_required_sender_signature_must_be_there_and_be_the_senders() {
    if !have("gpg") {
        return;
    }
    let app = spawn_app().await;
    let (c, t) = app.hr_setup().await;
    let gpg = Gpg::new();
    let sender = gpg.sender_key("HR System <hr@example.com>");
    gpg.sender_key("Impostor <evil@example.com>");
    let registered = app
        .new_key(json!({"purpose": "sender_verification", "public_key": sender}))
        .await;
    let key = app.new_key(json!({"algorithm": "curve25519"})).await;
    gpg.import(key["public_key"].as_str().unwrap());
    let to = key["key_ids"][0].as_str().unwrap().to_owned();
    let r = app
        .http
        .put(app.url(&format!("/api/v1/clients/{}/intake-policy", c.id)))
        .bearer_auth(&app.admin_token)
        .json(&json!({"require_encryption": true, "require_signed_by": registered["id"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());

    let csv = rows(4);
    let unsigned = gpg_encrypt(&gpg, &to, csv.as_bytes(), &[]);
    let v = app.upload_bytes(&t, unsigned).await;
    assert_eq!(v.error.as_ref().unwrap().code, "signature_missing", "{v:?}");
    let wrong = gpg_encrypt(
        &gpg,
        &to,
        csv.as_bytes(),
        &["--sign", "--local-user", "evil@example.com"],
    );
    let v = app.upload_bytes(&t, wrong).await;
    assert_eq!(
        v.error.as_ref().unwrap().code,
        "signature_wrong_key",
        "{v:?}"
    );
    assert_eq!(app.people_count().await, 0);
    let signed = gpg_encrypt(
        &gpg,
        &to,
        csv.as_bytes(),
        &["--sign", "--local-user", "hr@example.com"],
    );
    let v = app.upload_bytes(&t, signed).await;
    assert_eq!(v.state.as_str(), "succeeded", "{v:?}");
    assert_eq!(app.people_count().await, 4);
}

#[tokio::test]
async fn rotation_keeps_the_old_key_for_files_on_their_way_and_importers_see_only_public_parts() {
    if !have("age") {
        return;
    }
    let app = spawn_app().await;
    app.put_mapping("hr", MAPPING).await;
    let imp = app
        .create_client(json!({"role": "importer", "write_policy": {"attributes": ["*"]}}))
        .await;
    let t = app.token(&imp).await;
    let old = app.new_key(json!({"kind": "age"})).await;
    let dir = tempfile::tempdir().unwrap();
    let in_flight = age_encrypt(
        dir.path(),
        old["public_key"].as_str().unwrap(),
        rows(3).as_bytes(),
        false,
    );
    let r = app
        .admin_post(
            &format!("/api/v1/keys/{}/rotate", old["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let new: Value = r.json().await.unwrap();
    assert_ne!(new["id"], old["id"]);

    // The importer is offered the new key only, and never a secret.
    let r = app.get_as(&t, "/api/v1/keys").await;
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    assert!(!text.contains("AGE-SECRET-KEY"));
    let offered: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(offered.len(), 1);
    assert_eq!(offered[0]["id"], new["id"]);
    // ... and may not manage keys.
    let r = app
        .http
        .post(app.url("/api/v1/keys"))
        .bearer_auth(&t)
        .json(&json!({"kind": "age"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    let v = app.upload_bytes(&t, in_flight).await;
    assert_eq!(v.state.as_str(), "succeeded", "{v:?}");
    let v = app
        .upload_bytes(
            &t,
            age_encrypt(
                dir.path(),
                new["public_key"].as_str().unwrap(),
                rows(4).as_bytes(),
                true,
            ),
        )
        .await;
    assert_eq!(v.state.as_str(), "succeeded", "{v:?}");
}

#[tokio::test]
async fn an_imported_secret_key_is_sealed_at_rest() {
    if !have("age") {
        return;
    }
    let app = spawn_app().await;
    let out = Command::new("age-keygen").output().unwrap();
    let identity = String::from_utf8(out.stdout).unwrap();
    let secret_line = identity
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .unwrap()
        .to_owned();
    let key = app.new_key(json!({"secret_key": identity})).await;
    assert_eq!(key["kind"], "age");
    if skip_on_postgres(
        "an_imported_secret_key_is_sealed_at_rest (file scan)",
        "scans the SQLite files of the data directory",
    ) {
        return;
    }
    let data = app.dir.path().to_path_buf();
    for entry in std::fs::read_dir(&data).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            let bytes = std::fs::read(&p).unwrap();
            let found = bytes
                .windows(secret_line.len())
                .any(|w| w == secret_line.as_bytes());
            assert!(!found, "the secret key is in clear in {}", p.display());
        }
    }
    // A second import of the same key is refused, not duplicated.
    let r = app
        .admin_post("/api/v1/keys", json!({"secret_key": identity}))
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
}
