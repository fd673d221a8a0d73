//! The uploads directory after crashes: files no pending import needs (a
//! partial upload a kill left, the upload or validation index of an import
//! that ended or was never recorded) are removed when an instance starts,
//! once they are older than `import.orphan_grace_seconds`; what a pending
//! import needs, and what may still be written (younger files), stays.
use crate::helpers::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Makes a file or directory look untouched for two hours.
fn age(path: &Path) {
    let t = SystemTime::now() - Duration::from_secs(2 * 3600);
    let f = if path.is_dir() {
        std::fs::File::open(path)
    } else {
        std::fs::File::options().write(true).open(path)
    };
    f.unwrap().set_modified(t).unwrap();
}

fn plant(path: &Path) {
    if path.extension().is_some_and(|e| e == "index") {
        std::fs::create_dir(path).unwrap();
        std::fs::write(path.join("k0"), [0u8; 16]).unwrap();
    } else {
        std::fs::write(path, b"sealed bytes, never plaintext").unwrap();
    }
}

fn left(uploads: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(uploads)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

async fn restart(app: TestApp, env: Vec<(&str, &str)>) -> TestApp {
    let mut app = app;
    app.running.take().unwrap().stop().await.unwrap();
    app.spawn_peer(env).await
}

#[tokio::test]
async fn files_no_pending_import_needs_are_removed_at_start_once_past_the_grace_period() {
    let app = spawn_app().await;
    let (_, t) = app.hr_setup().await;
    // An import that ran to its end (its upload was removed then).
    let done = app.import_csv(&t, &rows(3)).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let done = done["id"].as_str().unwrap().to_owned();
    // An import still waiting: this instance takes uploads only.
    let app = restart(app, vec![("MUSTER_IMPORT__WORKER", "false")]).await;
    let r = app.upload(&t, "mapping=hr", "text/csv", rows(3)).await;
    assert_eq!(r.status(), 202);
    let pending = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let uploads = app.dir.path().join("uploads");
    let at = |name: &str| -> PathBuf { uploads.join(name) };
    assert!(at(&format!("{pending}.sealed")).exists());

    // What crashes leave: a partial upload (the kill came mid-body), an
    // upload renamed into place whose import never committed, the upload
    // of an import that ended (the kill came before its removal), and
    // validation indexes; all untouched for two hours. Beside them, a
    // partial upload younger than the grace period (another instance may
    // be receiving it), and old files of the pending import.
    let killed = "0190f000-0000-7000-8000-00000000a001";
    let never = "0190f000-0000-7000-8000-00000000a002";
    let receiving = "0190f000-0000-7000-8000-00000000a003";
    let old = [
        format!("{killed}.part"),
        format!("{never}.sealed"),
        format!("{done}.sealed"),
        format!("{done}.5eed.index"),
        format!("{pending}.5eed.index"),
    ];
    for name in &old {
        plant(&at(name));
        age(&at(name));
    }
    age(&at(&format!("{pending}.sealed")));
    plant(&at(&format!("{receiving}.part")));
    // Files that are not the spool's are none of its business.
    std::fs::write(at("README.txt"), b"notes").unwrap();
    age(&at("README.txt"));

    // With retain_uploads, an ended import's upload is kept on purpose;
    // everything else no pending import needs goes.
    let app = restart(
        app,
        vec![
            ("MUSTER_IMPORT__WORKER", "false"),
            ("MUSTER_IMPORT__RETAIN_UPLOADS", "true"),
        ],
    )
    .await;
    let mut want = vec![
        "README.txt".to_owned(),
        format!("{done}.sealed"),
        format!("{pending}.5eed.index"),
        format!("{pending}.sealed"),
        format!("{receiving}.part"),
    ];
    want.sort();
    assert_eq!(left(&uploads), want);

    // Without it, that goes too; the pending import's files and the young
    // partial upload stay.
    let app = restart(app, vec![("MUSTER_IMPORT__WORKER", "false")]).await;
    want.retain(|n| *n != format!("{done}.sealed"));
    assert_eq!(left(&uploads), want);

    // The pending import still runs from its upload (its old index goes
    // when it does), and nothing of it stays.
    let app = restart(app, vec![]).await;
    let v = app.wait_import_info(&t, &pending).await;
    assert_eq!(v.state.as_str(), "succeeded", "{v:?}");
    assert_eq!(
        left(&uploads),
        [format!("{receiving}.part"), "README.txt".to_owned()]
    );
}
