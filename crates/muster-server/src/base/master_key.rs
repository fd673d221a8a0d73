//! The master key ring (docs/intake.md#master-key): the key everything at rest is sealed
//! under, and the keys it replaced that still open what waits to be
//! re-sealed.
//!
//! **Files.** The current key is `<data>/master.key` (or
//! `MUSTER_MASTER_KEY_FILE`): 64 hex characters. Previous keys are in the
//! same path with `.previous` appended, one per line, newest first. Each
//! key has a short id (`mk_` + 12 hex characters of a SHA-256 of the key),
//! which is safe to show and log; the key never is.
//!
//! **Opening.** Sealed values carry no key id: they are opened by trying
//! the current key, then each previous key (an AEAD failure is cheap and
//! says nothing). When none opens, the files are read again (another
//! instance may have rotated) and the new keys are tried.
//!
//! **Rotation** (`POST /api/v1/admin/master-key/rotate`, the installation's
//! operator only: `tenant:admin` on `default`): a new key becomes current,
//! the old one moves to the previous file, and every sealed row (tenant
//! key secrets, client HMAC keys, issuer secrets, webhook secrets) is
//! re-sealed, one transaction per column, each row swapped only where it
//! still holds what was read (a row changed meanwhile was sealed afresh).
//! Imports go on throughout: uploads in the spool stay sealed under the key
//! they were received with and open through the ring. Other instances
//! pick the new key up on their next heartbeat (`cluster.heartbeat_ms`).
//!
//! **Retiring** (`POST /api/v1/admin/master-key/retire-previous`): refused
//! while a live instance still seals with another key or an upload waiting
//! in the spool was sealed under a previous key; otherwise the rows are
//! swept once more and the previous file is removed. From then on only the
//! current key opens anything.
use crate::base::state::AppState;
use anyhow::Context;
use muster_intake::seal::{SealWriter, UnsealReader};
use muster_intake::sealed_box;
use muster_store::{SealedColumn, SealedSwap, Store};
use serde::Serialize;
use sha2::Digest;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

type Key = [u8; 32];

/// The keys, current first. Debug prints only their ids.
pub struct MasterKey {
    path: PathBuf,
    ring: RwLock<Vec<Key>>,
    /// One rotation or retirement at a time in this process.
    pub(crate) changing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey")
            .field("ids", &self.key_ids())
            .finish()
    }
}

/// The public name of a key: never the key, and not usable to find it.
pub fn key_id(key: &Key) -> String {
    let d = sha2::Sha256::new()
        .chain_update(b"muster master key id\0")
        .chain_update(key)
        .finalize();
    format!("mk_{}", &hex::encode(d)[..12])
}

fn parse_key(text: &str, path: &Path) -> anyhow::Result<Key> {
    let bytes = hex::decode(text.trim())
        .ok()
        .filter(|b| b.len() == 32)
        .with_context(|| format!("{} must hold 64 hex characters (32 bytes)", path.display()))?;
    let mut k = [0u8; 32];
    k.copy_from_slice(&bytes);
    Ok(k)
}

fn previous_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".previous");
    PathBuf::from(p)
}

/// Reads the current key and the previous ones.
fn read_ring(path: &Path) -> anyhow::Result<Vec<Key>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the master key file {}", path.display()))?;
    let mut keys = vec![parse_key(&text, path)?];
    let prev = previous_path(path);
    match std::fs::read_to_string(&prev) {
        Ok(text) => {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let k = parse_key(line, &prev)?;
                if !keys.contains(&k) {
                    keys.push(k);
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read {}", prev.display()));
        }
    }
    Ok(keys)
}

/// Writes a file readable by its owner only, replacing it atomically
/// (a reader sees the old or the new content, never a part).
fn replace_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

fn random_key() -> Key {
    let mut k = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut k);
    k
}

impl MasterKey {
    /// Reads the ring at `path`, creating a first key (mode 0600) when the
    /// file is missing and `create` allows it.
    pub fn load(path: &Path, create: bool) -> anyhow::Result<Self> {
        if !path.exists() {
            anyhow::ensure!(
                create,
                "the master key file {} does not exist",
                path.display()
            );
            crate::base::data_dir::write_private(path, &hex::encode(random_key()))?;
            tracing::info!(path = %path.display(), "generated a new master key");
        }
        Ok(Self {
            path: path.to_owned(),
            ring: RwLock::new(read_ring(path)?),
            changing: tokio::sync::Mutex::new(()),
        })
    }

    /// A ring held in memory only (tests of code that seals).
    pub fn ephemeral(key: Key) -> Self {
        Self {
            path: PathBuf::new(),
            ring: RwLock::new(vec![key]),
            changing: tokio::sync::Mutex::new(()),
        }
    }

    fn keys(&self) -> Vec<Key> {
        self.ring.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The key new values are sealed under.
    pub fn current(&self) -> Key {
        self.keys()[0]
    }

    pub fn current_id(&self) -> String {
        key_id(&self.current())
    }

    /// Ids of the ring's keys, current first.
    pub fn key_ids(&self) -> Vec<String> {
        self.keys().iter().map(key_id).collect()
    }

    /// Reads the files again; `true` when the ring changed.
    pub fn reload(&self) -> anyhow::Result<bool> {
        if self.path.as_os_str().is_empty() {
            return Ok(false);
        }
        let fresh = read_ring(&self.path)?;
        let mut ring = self.ring.write().unwrap_or_else(|p| p.into_inner());
        if *ring == fresh {
            return Ok(false);
        }
        *ring = fresh;
        drop(ring);
        tracing::info!(current = %self.current_id(), "reloaded the master key ring");
        Ok(true)
    }

    /// Tries `open` with each key, current first; when none works, reads
    /// the files again and tries keys it did not have. Returns the index
    /// of the key that opened it (0: the current one) and the result.
    fn try_each<T>(&self, mut open: impl FnMut(&Key) -> Option<T>) -> Option<(usize, T)> {
        let keys = self.keys();
        for (i, k) in keys.iter().enumerate() {
            if let Some(v) = open(k) {
                return Some((i, v));
            }
        }
        match self.reload() {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => {
                tracing::error!(error = %e, "cannot reload the master key ring");
                return None;
            }
        }
        let fresh = self.keys();
        for (i, k) in fresh.iter().enumerate() {
            if !keys.contains(k) {
                if let Some(v) = open(k) {
                    return Some((i, v));
                }
            }
        }
        None
    }

    /// Seals a short secret under the current key (see `sealed_box`).
    pub fn seal_box(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        sealed_box::seal(&self.current(), aad, plaintext)
    }

    /// Opens a sealed box with whichever key of the ring sealed it.
    pub fn open_box(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, sealed_box::OpenError> {
        if !sealed.starts_with(b"MSTBOX1\0") {
            return Err(sealed_box::OpenError::Format);
        }
        self.try_each(|k| sealed_box::open(k, aad, sealed).ok())
            .map(|(_, v)| v)
            .ok_or(sealed_box::OpenError::Authentication)
    }

    /// Seals a value as a stream (tenant key secrets) under the current key.
    pub fn seal_stream(&self, aad: &[u8], plaintext: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut w = SealWriter::new(Vec::new(), &self.current(), aad)?;
        std::io::Write::write_all(&mut w, plaintext)?;
        w.finish()
    }

    /// Opens what [`MasterKey::seal_stream`] sealed, with whichever key did.
    pub fn open_stream(&self, aad: &[u8], sealed: &[u8]) -> std::io::Result<Vec<u8>> {
        self.open_stream_which(aad, sealed)
            .map(|(_, v)| v)
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "the sealed value does not open with any master key",
                )
            })
    }

    fn open_stream_which(&self, aad: &[u8], sealed: &[u8]) -> Option<(usize, Vec<u8>)> {
        self.try_each(|k| {
            let mut out = Vec::new();
            UnsealReader::new(sealed, k, aad)
                .and_then(|mut r| r.read_to_end(&mut out))
                .ok()
                .map(|_| out)
        })
    }

    /// Which key of the ring opens an upload in the spool: its place in
    /// the ring (0: the current) and the key itself, which a rotation
    /// running meanwhile cannot shift under the caller as it shifts places.
    /// Reads only its first chunk.
    pub fn upload_key(&self, path: &Path, aad: &[u8]) -> std::io::Result<Option<(usize, Key)>> {
        let mut last = None;
        let found = self.try_each(|k| {
            let probe = std::fs::File::open(path)
                .and_then(|f| UnsealReader::new(f, k, aad))
                .and_then(|mut r| r.read(&mut [0u8; 1]));
            match probe {
                Ok(_) => Some(*k),
                Err(e) => {
                    if e.kind() != std::io::ErrorKind::InvalidData {
                        last = Some(e);
                    }
                    None
                }
            }
        });
        match (found, last) {
            (Some(found), _) => Ok(Some(found)),
            (None, Some(e)) => Err(e),
            (None, None) => Ok(None),
        }
    }

    /// Opens an upload in the spool with whichever key sealed it.
    pub fn open_upload(
        &self,
        path: &Path,
        aad: &[u8],
    ) -> std::io::Result<UnsealReader<std::fs::File>> {
        let (_, key) = self.upload_key(path, aad)?.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the sealed upload does not open with any master key: \
                 it was altered, or sealed under a key that was retired",
            )
        })?;
        UnsealReader::new(std::fs::File::open(path)?, &key, aad)
    }

    /// Makes a new key current and keeps the old ones as previous keys.
    /// The previous file is written first: a crash in between leaves the
    /// old key both current and previous, which is harmless.
    pub(crate) fn rotate_files(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            !self.path.as_os_str().is_empty(),
            "this key ring has no files"
        );
        self.reload()?;
        let old = self.keys();
        let new = random_key();
        let prev: Vec<String> = old.iter().map(hex::encode).collect();
        replace_private(&previous_path(&self.path), &(prev.join("\n") + "\n"))?;
        replace_private(&self.path, &(hex::encode(new) + "\n"))?;
        let mut ring = vec![new];
        ring.extend(old);
        *self.ring.write().unwrap_or_else(|p| p.into_inner()) = ring;
        Ok(())
    }

    /// Forgets the previous keys: removes the previous file.
    pub(crate) fn retire_files(&self) -> anyhow::Result<Vec<String>> {
        let keys = self.keys();
        let gone: Vec<String> = keys[1..].iter().map(key_id).collect();
        let prev = previous_path(&self.path);
        match std::fs::remove_file(&prev) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot remove {}", prev.display())),
        }
        *self.ring.write().unwrap_or_else(|p| p.into_inner()) = vec![keys[0]];
        Ok(gone)
    }
}

/// The associated data a column's seals are bound to, for the row `id`.
fn aad_of(column: SealedColumn, id: &str) -> Vec<u8> {
    match column {
        SealedColumn::KeySecret => crate::base::sealed::key_secret_aad(id),
        SealedColumn::ClientHmac | SealedColumn::ClientHmacPrevious => {
            crate::base::sealed::hmac_aad(id)
        }
        SealedColumn::IssuerHs256 => crate::base::sealed::hs256_aad(id),
        SealedColumn::WebhookSecret | SealedColumn::WebhookPreviousSecret => {
            crate::base::sealed::secret_aad(id)
        }
    }
}

/// What one pass over the sealed rows did, per column.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct ResealReport {
    /// Values re-sealed under the current key, by column.
    pub resealed: BTreeMap<String, u64>,
    /// Values already under the current key.
    pub current: u64,
    /// Values that changed while the pass ran (sealed afresh meanwhile).
    pub changed_meanwhile: u64,
    /// `column:id` of values no key of the ring opens.
    pub unopenable: Vec<String>,
}

/// Re-seals under the current key every sealed row that another key of
/// the ring opens. Restartable: rows already current are skipped.
pub fn reseal_all(store: &dyn Store, ring: &MasterKey) -> anyhow::Result<ResealReport> {
    let all = store.sealed_all().context("listing sealed values")?;
    let mut report = ResealReport::default();
    let mut swaps: BTreeMap<SealedColumn, Vec<SealedSwap>> = BTreeMap::new();
    for v in all {
        let aad = aad_of(v.column, &v.id);
        let opened = if v.column == SealedColumn::KeySecret {
            ring.open_stream_which(&aad, &v.sealed)
        } else {
            ring.try_each(|k| sealed_box::open(k, &aad, &v.sealed).ok())
        };
        match opened {
            Some((0, _)) => report.current += 1,
            Some((_, plain)) => {
                let new = if v.column == SealedColumn::KeySecret {
                    ring.seal_stream(&aad, &plain)?
                } else {
                    ring.seal_box(&aad, &plain)
                };
                swaps.entry(v.column).or_default().push(SealedSwap {
                    id: v.id,
                    old: v.sealed,
                    new,
                });
            }
            None => report
                .unopenable
                .push(format!("{}:{}", v.column.as_str(), v.id)),
        }
    }
    for (column, list) in swaps {
        let wanted = list.len() as u64;
        let done = store
            .sealed_replace(column, list)
            .with_context(|| format!("re-sealing {}", column.as_str()))?;
        report.changed_meanwhile += wanted - done.min(wanted);
        report.resealed.insert(column.as_str().to_owned(), done);
    }
    if !report.unopenable.is_empty() {
        tracing::error!(values = ?report.unopenable, "sealed values that no master key opens");
    }
    Ok(report)
}

/// Uploads waiting in the spool that only a previous key opens.
pub(crate) fn uploads_on_previous_keys(state: &AppState) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for imp in state.store.import_pending()? {
        let path = crate::base::data_dir::upload_path(&state.config, &imp.id);
        if !path.exists() {
            continue;
        }
        if let Ok(Some((i, _))) = state.master_key.upload_key(&path, imp.id.as_bytes()) {
            if i > 0 {
                out.push(imp.id);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotated_ring_opens_old_and_new_values_and_forgets_retired_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let ring = MasterKey::load(&path, true).unwrap();
        let old_id = ring.current_id();
        let old_box = ring.seal_box(b"a", b"secret");
        let old_stream = ring.seal_stream(b"s", b"stream secret").unwrap();
        ring.rotate_files().unwrap();
        assert_ne!(ring.current_id(), old_id);
        assert_eq!(ring.key_ids()[1], old_id);
        assert_eq!(ring.open_box(b"a", &old_box).unwrap(), b"secret");
        assert_eq!(
            ring.open_stream(b"s", &old_stream).unwrap(),
            b"stream secret"
        );
        let new_box = ring.seal_box(b"a", b"fresh");
        // Another process reading the files sees the same ring.
        let other = MasterKey::load(&path, false).unwrap();
        assert_eq!(other.key_ids(), ring.key_ids());
        assert_eq!(other.open_box(b"a", &new_box).unwrap(), b"fresh");
        ring.retire_files().unwrap();
        assert!(ring.open_box(b"a", &old_box).is_err());
        assert_eq!(ring.open_box(b"a", &new_box).unwrap(), b"fresh");
        // The other process drops the retired key when it reloads.
        assert!(other.reload().unwrap());
        assert_eq!(other.key_ids(), vec![ring.current_id()]);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&old_id), "key files hold keys, not ids");
    }

    #[test]
    fn a_stale_ring_reloads_when_a_value_does_not_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let a = MasterKey::load(&path, true).unwrap();
        let b = MasterKey::load(&path, false).unwrap();
        a.rotate_files().unwrap();
        let sealed = a.seal_box(b"x", b"v");
        assert_eq!(b.open_box(b"x", &sealed).unwrap(), b"v");
        assert_eq!(b.current_id(), a.current_id());
    }

    #[test]
    fn key_ids_differ_per_key_and_never_show_it() {
        let (k1, k2) = ([1u8; 32], [2u8; 32]);
        assert_ne!(key_id(&k1), key_id(&k2));
        assert!(!key_id(&k1).contains(&hex::encode(k1)[..12]));
        assert_eq!(key_id(&k1).len(), 15);
    }
}
