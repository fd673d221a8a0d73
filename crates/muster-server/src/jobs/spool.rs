//! Housekeeping of the upload spool (`<data>/uploads`), which all instances
//! of a gateway share. It holds, per import id:
//!
//! - `<id>.part`: an upload being received. It is renamed to `.sealed`
//!   when complete, before the import row naming it commits, so no import
//!   names a `.part`; a kill during the upload leaves one behind.
//! - `<id>.sealed`: the import's sealed upload, removed when the import
//!   ends (kept with `import.retain_uploads`). A kill between the rename
//!   and the commit leaves one that no import names; a kill between the
//!   end and the removal, one of a final import.
//! - `<id>.<run>.index/`: a validation run's row index ([`muster_intake::row_index`]).
//!
//! [`sweep`] removes what nothing will use any more: an entry whose import
//! is not pending (final, or not there at all) and that nobody has modified
//! for `import.orphan_grace_seconds`; but never an upload this instance is
//! receiving, nor, with `retain_uploads`, a final import's sealed upload.
//! Each instance sweeps at start and then every grace period.
//!
//! Why a grace period and not the import's state alone: another instance
//! may be receiving an upload into a `.part` (there is no import yet), or
//! have renamed it and not yet committed the import, or have just created
//! an import (and its index) after this sweep read the pending ones. A
//! `.part` being written is modified as its bytes arrive (a sealed piece of
//! 256 KiB at a time), and an upload that falls behind
//! `limits.min_upload_bytes_per_second` or stalls for
//! `limits.body_read_timeout_seconds` is ended (and its `.part` removed) by
//! its own instance: at the default pace a live upload's `.part` changes
//! at least every 256 s, far within the grace period. A client whose
//! upload is ended gets an error and sends the file again with the same
//! `Idempotency-Key`. Ages are read from the files' own times, so they
//! are measured by the real clock, not the injected one (instances on
//! several hosts sharing the directory need clocks that agree to well
//! within the grace period).
use crate::base::state::AppState;
use muster_store::{Store, StoreError};
use std::collections::HashSet;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// What an entry of the spool is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Part,
    Sealed,
    Index,
}

/// The import id and kind of a spool entry's name; `None` for anything
/// else (left alone).
pub fn entry_of(name: &str) -> Option<(&str, Kind)> {
    if let Some(id) = name.strip_suffix(".part") {
        return Some((id, Kind::Part));
    }
    if let Some(id) = name.strip_suffix(".sealed") {
        return Some((id, Kind::Sealed));
    }
    muster_intake::row_index::import_of(name).map(|id| (id, Kind::Index))
}

/// How many entries of each kind a sweep removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub parts: usize,
    pub sealed: usize,
    pub indexes: usize,
}

impl Swept {
    pub fn total(&self) -> usize {
        self.parts + self.sealed + self.indexes
    }
}

/// Removes the entries of `uploads` that nobody has modified for `grace`
/// (as of `now`) unless `keep` claims them. An entry that cannot be
/// removed is logged and left for the next sweep.
pub fn sweep_dir(
    uploads: &Path,
    grace: Duration,
    now: SystemTime,
    keep: &mut dyn FnMut(&str, Kind) -> bool,
) -> io::Result<Swept> {
    let mut swept = Swept::default();
    for entry in std::fs::read_dir(uploads)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some((id, kind)) = name.to_str().and_then(entry_of) else {
            continue;
        };
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() != (kind == Kind::Index) {
            continue;
        }
        let idle = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok());
        // Modified lately, or in the future: someone may be at it.
        if idle.is_none_or(|idle| idle < grace) || keep(id, kind) {
            continue;
        }
        let path = entry.path();
        let removed = match kind {
            Kind::Index => std::fs::remove_dir_all(&path),
            Kind::Part | Kind::Sealed => std::fs::remove_file(&path),
        };
        match removed {
            Ok(()) => match kind {
                Kind::Part => swept.parts += 1,
                Kind::Sealed => swept.sealed += 1,
                Kind::Index => swept.indexes += 1,
            },
            // Another instance's sweep was first.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove a file left in the uploads directory; the next sweep tries again");
            }
        }
    }
    Ok(swept)
}

/// The uploads this instance is receiving now (their `.part`, and their
/// `.sealed` until the import row commits): never swept, however slowly
/// their clients send.
#[derive(Debug, Default)]
pub struct Receiving(Mutex<HashSet<String>>);

impl Receiving {
    /// Marks `id` as being received until the returned guard is dropped.
    pub fn start(self: &Arc<Self>, id: &str) -> ReceivingGuard {
        self.set().insert(id.to_owned());
        ReceivingGuard {
            of: self.clone(),
            id: id.to_owned(),
        }
    }

    pub fn contains(&self, id: &str) -> bool {
        self.set().contains(id)
    }

    fn set(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        // The set stays consistent whatever panicked while it was held.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct ReceivingGuard {
    of: Arc<Receiving>,
    id: String,
}

impl Drop for ReceivingGuard {
    fn drop(&mut self) {
        self.of.set().remove(&self.id);
    }
}

/// Whether an import of this id exists in any tenant. An answer the
/// store cannot give counts as yes: the file is kept.
fn import_exists(store: &dyn Store, id: &str) -> bool {
    let Ok(tenants) = store.tenant_list() else {
        return true;
    };
    tenants.iter().any(|t| {
        !matches!(
            store.import_get(&t.id, id),
            Err(StoreError::NotFound { .. })
        )
    })
}

/// One sweep of the gateway's spool (blocking: store calls and file
/// system work).
pub fn sweep(state: &AppState) -> anyhow::Result<Swept> {
    let store = state.store.as_ref();
    // Read before the directory: an import created after this is younger
    // than the grace period, and so are its files.
    let pending: HashSet<String> = store.import_pending()?.into_iter().map(|i| i.id).collect();
    let retain = state.config.import.retain_uploads;
    let mut keep = |id: &str, kind: Kind| {
        pending.contains(id)
            || state.receiving.contains(id)
            || (kind == Kind::Sealed && retain && import_exists(store, id))
    };
    let grace = Duration::from_secs(state.config.import.orphan_grace_seconds);
    Ok(sweep_dir(
        &state.config.uploads_dir(),
        grace,
        SystemTime::now(),
        &mut keep,
    )?)
}

/// Sweeps off the async runtime and logs what went. A failure only leaves
/// files (sealed, or holding no personnel data in plaintext) for the next
/// sweep: logged, never fatal.
pub async fn sweep_logged(state: &AppState) {
    let st = state.clone();
    match tokio::task::spawn_blocking(move || sweep(&st)).await {
        Ok(Ok(s)) if s.total() == 0 => {}
        Ok(Ok(s)) => tracing::info!(
            partial_uploads = s.parts,
            sealed_uploads = s.sealed,
            validation_indexes = s.indexes,
            "removed files no import needs from the uploads directory"
        ),
        Ok(Err(e)) => tracing::warn!(
            error = format!("{e:#}"),
            "cannot sweep the uploads directory"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot sweep the uploads directory"),
    }
}

/// Sweeps every grace period until `stop` is set (the start's sweep is
/// [`sweep_logged`], before the worker starts).
pub async fn run(state: AppState, stop: Arc<AtomicBool>) {
    let every = Duration::from_secs(state.config.import.orphan_grace_seconds.max(1));
    loop {
        tokio::time::sleep(every).await;
        if stop.load(Ordering::SeqCst) {
            return;
        }
        sweep_logged(&state).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn age(path: &Path, by: Duration) {
        let t = SystemTime::now() - by;
        let f = std::fs::File::options().write(true).open(path);
        match f {
            Ok(f) => f.set_modified(t).unwrap(),
            // A directory: set through a handle opened for reading.
            Err(_) => std::fs::File::open(path).unwrap().set_modified(t).unwrap(),
        }
    }

    #[test]
    fn entries_name_their_import_and_kind() {
        assert_eq!(entry_of("a-1.part"), Some(("a-1", Kind::Part)));
        assert_eq!(entry_of("a-1.sealed"), Some(("a-1", Kind::Sealed)));
        assert_eq!(entry_of("a-1.0f.index"), Some(("a-1", Kind::Index)));
        assert_eq!(entry_of("a-1.index"), Some(("a-1", Kind::Index)));
        assert_eq!(entry_of("notes.txt"), None);
    }

    #[test]
    fn only_old_entries_that_nobody_keeps_are_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let hour = Duration::from_secs(3600);
        for f in [
            "old.part",
            "new.part",
            "old.sealed",
            "kept.sealed",
            "kept.part",
            "other.txt",
        ] {
            std::fs::write(d.join(f), b"x").unwrap();
        }
        std::fs::create_dir(d.join("old.r1.index")).unwrap();
        std::fs::write(d.join("old.r1.index").join("k0"), b"x").unwrap();
        // A directory named like a file, and a file named like an index.
        std::fs::create_dir(d.join("odd.sealed")).unwrap();
        std::fs::write(d.join("odd.r1.index"), b"x").unwrap();
        for f in [
            "old.part",
            "old.sealed",
            "kept.sealed",
            "kept.part",
            "other.txt",
            "old.r1.index",
            "odd.sealed",
            "odd.r1.index",
        ] {
            age(&d.join(f), 2 * hour);
        }
        let mut asked = Vec::new();
        let swept = sweep_dir(d, hour, SystemTime::now(), &mut |id, kind| {
            asked.push((id.to_owned(), kind));
            id == "kept"
        })
        .unwrap();
        assert_eq!(
            swept,
            Swept {
                parts: 1,
                sealed: 1,
                indexes: 1
            }
        );
        let mut left: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "kept.part",
                "kept.sealed",
                "new.part",
                "odd.r1.index",
                "odd.sealed",
                "other.txt"
            ]
        );
        // Only old entries of a known kind are asked about.
        assert!(asked.iter().all(|(id, _)| id != "new" && id != "odd"));
    }

    #[test]
    fn an_upload_being_received_is_marked_until_its_guard_goes() {
        let r = Arc::new(Receiving::default());
        let g = r.start("u1");
        assert!(r.contains("u1") && !r.contains("u2"));
        drop(g);
        assert!(!r.contains("u1"));
    }
}
