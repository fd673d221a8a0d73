//! The data directory is the service user's alone: after a start, an
//! import and a delivery every directory under it is 0700 and every file
//! 0600, under the usual umask 022; and an installation left more open is
//! tightened when the gateway starts.
use crate::helpers::*;
use crate::support::receiver::{receiver, subscribe};
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Fails loudly unless this process creates files 0644 (umask 022): the
/// gateway's modes must not depend on a strict umask, so the test needs a
/// lax one to show anything.
fn assert_umask_is_022() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("probe");
    std::fs::File::create(&f).unwrap();
    let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode, 0o644,
        "this test must run with umask 022 (a file was created {mode:o}); run it with `umask 022`"
    );
}

/// Every entry under `root` (itself included) with its permission bits,
/// symbolic links left out.
fn walk(root: &Path) -> Vec<(PathBuf, bool, u32)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        if meta.file_type().is_symlink() {
            continue;
        }
        out.push((p.clone(), meta.is_dir(), meta.permissions().mode() & 0o777));
        if meta.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
    out
}

fn assert_private(root: &Path) {
    let entries = walk(root);
    let wrong: Vec<String> = entries
        .iter()
        .filter(|(_, dir, mode)| *mode != if *dir { 0o700 } else { 0o600 })
        .map(|(p, dir, mode)| {
            format!(
                "{} ({}) is {mode:o}",
                p.display(),
                if *dir { "directory" } else { "file" }
            )
        })
        .collect();
    assert!(wrong.is_empty(), "not private: {wrong:#?}");
}

fn names(root: &Path) -> Vec<String> {
    walk(root)
        .into_iter()
        .map(|(p, _, _)| p.strip_prefix(root).unwrap().display().to_string())
        .collect()
}

#[tokio::test]
async fn after_a_start_an_import_and_a_delivery_every_data_file_is_private() {
    assert_umask_is_022();
    let app = spawn_app_with(vec![
        ("MUSTER_WEBHOOKS__ALLOW_PRIVATE_DESTINATIONS", "true"),
        ("MUSTER_WEBHOOKS__POLL_INTERVAL_MS", "50"),
        // The sealed upload stays, so its mode is checked too.
        ("MUSTER_IMPORT__RETAIN_UPLOADS", "true"),
    ])
    .await;
    let (url, got) = receiver(vec![], 200).await;
    subscribe(&app, json!({"url": url, "attributes": ["*"]})).await;
    let (_, t) = app.hr_setup().await;
    let done = app.import_csv(&t, &rows(5)).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    for _ in 0..400 {
        if got.delivered().len() >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(got.delivered().len() >= 5, "the events were not delivered");

    let data = app.dir.path();
    let present = names(data);
    let expect: &[&str] = if on_postgres() {
        &["master.key", "initial-admin-token", "uploads"]
    } else {
        &[
            "master.key",
            "initial-admin-token",
            "uploads",
            "muster.db",
            "muster.db-wal",
            "muster.db-shm",
        ]
    };
    for name in expect {
        assert!(present.iter().any(|p| p == name), "{name} in {present:?}");
    }
    assert!(
        present.iter().any(|p| p.ends_with(".sealed")),
        "the retained upload in {present:?}"
    );
    assert_private(data);
}

#[tokio::test]
async fn a_data_directory_left_open_is_tightened_at_start() {
    assert_umask_is_022();
    let mut app = spawn_app().await;
    let (_, t) = app.hr_setup().await;
    app.import_csv(&t, &rows(2)).await;
    app.running.take().unwrap().stop().await.unwrap();
    // What an earlier release, or a careless copy, leaves behind.
    let data = app.dir.path();
    let set = |p: PathBuf, m: u32| {
        if p.exists() {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
        }
    };
    set(data.to_path_buf(), 0o755);
    set(data.join("uploads"), 0o777);
    set(data.join("master.key"), 0o644);
    set(data.join("muster.db"), 0o644);
    set(data.join("muster.db-wal"), 0o644);
    std::fs::write(data.join("uploads").join("stray.part"), b"x").unwrap();
    set(data.join("uploads").join("stray.part"), 0o666);

    let app = app.spawn_peer(vec![]).await;
    assert_private(app.dir.path());
    // And it serves as before.
    let r = app.get_as(&app.admin_token, "/api/v1/imports").await;
    assert_eq!(r.status(), 200);
}
