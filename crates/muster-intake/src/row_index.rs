//! The validation pass's per-row state, on disk instead of in memory.
//!
//! Duplicate keys, managers named before their own row (or not in the file
//! at all) and rows whose manager's row fails in turn can only be settled
//! once the whole file has been read. Kept in memory, what that needs grows
//! with the file (a key and row for every row, a manager reference for
//! every managed row); here it is appended to partition files during the
//! pass and settled afterwards one partition at a time, so what stays in
//! memory is a bit a row and one partition's keys.
//!
//! The files live in a directory of their own next to the upload spool
//! (`<uploads>/<import id>.index/`), removed when the index is dropped (on
//! success and on every error) and, after a crash, when the import runs
//! again ([`clear_import`]) or by the server's sweep of the uploads
//! directory ([`import_of`] names an index's import). Every file is made by
//! the caller's [`CreateFile`], so that it gets the data directory's
//! owner-only mode. Nothing in them names a person:
//!
//! - keys are 64-bit digests keyed with a random key of this run, held in
//!   memory only ([`Digester`]), so they cannot be linked to external ids;
//! - `k<P>`: (key, row) of every good row, and in snapshot mode the keys of
//!   failed rows, 16 bytes each, partitioned by the key's top bits;
//! - `m<P>`: (manager key, key, row, manager id) of every good row naming a
//!   manager, partitioned by the manager key's top bits, sealed (streaming
//!   AEAD, [`crate::seal`]) under a random key that is never stored:
//!   manager ids are personnel data;
//! - `errors`: the row errors found during the pass, sealed likewise, so
//!   that those found after it can be put in row order among them;
//! - `l<P>`: the errors found after the pass as (row, what) pairs, by row
//!   range.
//!
//! Because a key's partition is its top bits, a manager's M records and its
//! own K record are in the same partition, and the partitions' sorted keys
//! laid end to end are sorted.
use muster_core::RowErrorRecord;
use rand::RngCore;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::hash::{BuildHasher, RandomState};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::seal::{SealWriter, UnsealReader};

/// Creates (or truncates) one of the index's files; the server passes the
/// data directory's owner-only file creation.
pub type CreateFile = fn(&Path) -> io::Result<File>;

/// Digests of external ids under a random key of this process, never
/// stored: equal ids give equal digests within a run, and a digest on
/// disk says nothing about the id it came from.
#[derive(Clone, Default)]
pub struct Digester(RandomState);

impl Digester {
    pub fn new() -> Self {
        Self(RandomState::new())
    }

    pub fn digest(&self, id: &str) -> u64 {
        self.0.hash_one(id)
    }
}

/// Source rows, a bit each.
#[derive(Debug, Default)]
pub struct RowSet(Vec<u64>);

impl RowSet {
    pub fn insert(&mut self, row: u64) {
        let (w, b) = ((row / 64) as usize, row % 64);
        if self.0.len() <= w {
            self.0.resize(w + 1, 0);
        }
        self.0[w] |= 1 << b;
    }

    /// Takes a row out; whether it was in.
    pub fn remove(&mut self, row: u64) -> bool {
        let (w, b) = ((row / 64) as usize, row % 64);
        match self.0.get_mut(w) {
            Some(x) if *x & (1 << b) != 0 => {
                *x &= !(1 << b);
                true
            }
            _ => false,
        }
    }

    pub fn contains(&self, row: u64) -> bool {
        let (w, b) = ((row / 64) as usize, row % 64);
        self.0.get(w).is_some_and(|x| x & (1 << b) != 0)
    }
}

impl FromIterator<u64> for RowSet {
    fn from_iter<I: IntoIterator<Item = u64>>(rows: I) -> Self {
        let mut set = RowSet::default();
        rows.into_iter().for_each(|r| set.insert(r));
        set
    }
}

/// The most partitions an index uses (each open partition holds two
/// files and their buffers during the pass).
pub const MAX_PARTITIONS: usize = 64;

/// Partitions for an upload of `bytes`: one per 8 MiB or so (about 60,000
/// rows), a power of two up to [`MAX_PARTITIONS`], so that a partition's
/// keys stay a few megabytes when settled and a small import opens three
/// files, not a hundred.
pub fn partitions_for(bytes: u64) -> usize {
    let want = (bytes / (8 << 20)).max(1).next_power_of_two();
    usize::try_from(want)
        .unwrap_or(MAX_PARTITIONS)
        .min(MAX_PARTITIONS)
}

/// The index directory of one run of an import's validation. Each run has
/// its own (`run` is random per run): an instance that stalled past its
/// lease and wakes up after another took the import over removes only its
/// own directory when it stops, never the one the new holder is using.
pub fn dir_for(uploads: &Path, import_id: &str, run: &str) -> PathBuf {
    uploads.join(format!("{import_id}.{run}.index"))
}

/// The import an entry of the uploads directory is the index of, if it is
/// one (`<import id>.<run>.index`, or `<import id>.index` as earlier
/// releases named them).
pub fn import_of(name: &str) -> Option<&str> {
    let stem = name.strip_suffix(".index")?;
    Some(stem.split_once('.').map_or(stem, |(id, _)| id))
}

/// Removes every index directory of `import_id`: called by the run that
/// holds the import's lease before it starts its own, so what a crash left
/// goes, and so does the directory of a run that lost the lease (which
/// can write nothing more: its writes are fenced). Returns how many.
pub fn clear_import(uploads: &Path, import_id: &str) -> io::Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(uploads)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_str().and_then(import_of) != Some(import_id) {
            continue;
        }
        match std::fs::remove_dir_all(entry.path()) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

/// The row of a K record for a failed row's key (snapshot mode): not a
/// row of the file, only a key the file speaks for.
const FAILED: u64 = u64::MAX;
/// The second half of an L record: a duplicate's first row, or one of these.
const UNKNOWN_MANAGER: u64 = u64::MAX;
const MANAGER_FAILED: u64 = u64::MAX - 1;
/// `None` in an optional string of a sealed error record.
const NONE_LEN: u32 = u32::MAX;
/// Store look-ups of managers go in chunks of this many.
const LOOKUP_CHUNK: usize = 1000;

/// The directory, removed with everything in it when dropped.
struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(path = %self.0.display(), error = %e, "cannot remove an import's index directory; it is removed when the import next runs or the gateway starts");
            }
        }
    }
}

/// Where the partitions of one index are, and how keys map to them.
struct Layout {
    dir: Dir,
    /// log2 of the number of partitions.
    bits: u32,
    /// Seals the M files and the error file; never stored.
    seal_key: [u8; 32],
    create: CreateFile,
}

impl Layout {
    fn parts(&self) -> usize {
        1 << self.bits
    }

    fn part(&self, digest: u64) -> usize {
        if self.bits == 0 {
            0
        } else {
            (digest >> (64 - self.bits)) as usize
        }
    }

    fn path(&self, kind: &str, p: usize) -> PathBuf {
        self.dir.0.join(format!("{kind}{p}"))
    }

    fn errors_path(&self) -> PathBuf {
        self.dir.0.join("errors")
    }

    /// The associated data of a sealed file: its name, so that one file
    /// cannot stand in for another.
    fn aad(kind: &str, p: usize) -> Vec<u8> {
        format!("muster-row-index:{kind}{p}").into_bytes()
    }

    fn open_managers(&self, p: usize) -> io::Result<Managers> {
        let f = File::open(self.path("m", p))?;
        Ok(Managers(UnsealReader::new(
            f,
            &self.seal_key,
            &Self::aad("m", p),
        )?))
    }

    fn open_keys(&self, p: usize) -> io::Result<BufReader<File>> {
        Ok(BufReader::with_capacity(
            64 * 1024,
            File::open(self.path("k", p))?,
        ))
    }
}

/// The index while the pass writes it.
pub struct RowIndex {
    layout: Layout,
    keys: Vec<BufWriter<File>>,
    managers: Vec<SealWriter<File>>,
    errors: Option<SealWriter<File>>,
}

impl RowIndex {
    /// Starts an index in `dir` (a leftover there from a crash is removed
    /// first) with `parts` partitions (a power of two, at most
    /// [`MAX_PARTITIONS`]), its files made by `create` (the directory itself
    /// is made owner-only, 0700). With `record_errors`, row errors are kept
    /// to be listed in row order at the end ([`Settled::errors`]).
    pub fn create(
        dir: PathBuf,
        parts: usize,
        record_errors: bool,
        create: CreateFile,
    ) -> io::Result<Self> {
        if !parts.is_power_of_two() || parts > MAX_PARTITIONS {
            return Err(io::Error::other(format!(
                "{parts} partitions: a power of two up to {MAX_PARTITIONS} is needed"
            )));
        }
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        create_private_dir(&dir)?;
        let mut seal_key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut seal_key);
        let layout = Layout {
            dir: Dir(dir),
            bits: parts.trailing_zeros(),
            seal_key,
            create,
        };
        let mut keys = Vec::with_capacity(parts);
        let mut managers = Vec::with_capacity(parts);
        for p in 0..parts {
            let k = (layout.create)(&layout.path("k", p))?;
            keys.push(BufWriter::with_capacity(32 * 1024, k));
            let m = (layout.create)(&layout.path("m", p))?;
            managers.push(SealWriter::new(m, &layout.seal_key, &Layout::aad("m", p))?);
        }
        let errors = if record_errors {
            let f = (layout.create)(&layout.errors_path())?;
            Some(SealWriter::new(
                f,
                &layout.seal_key,
                &Layout::aad("errors", 0),
            )?)
        } else {
            None
        };
        Ok(Self {
            layout,
            keys,
            managers,
            errors,
        })
    }

    /// A good row (its first occurrence or not: duplicates are found later).
    pub fn add_key(&mut self, key: u64, row: u64) -> io::Result<()> {
        let p = self.layout.part(key);
        write_pair(&mut self.keys[p], key, row)
    }

    /// The key of a row with errors: a snapshot must not deactivate its
    /// person, but it is no row for duplicates or managers.
    pub fn add_failed_key(&mut self, key: u64) -> io::Result<()> {
        let p = self.layout.part(key);
        write_pair(&mut self.keys[p], key, FAILED)
    }

    /// A good row naming a manager: `manager` is the digest of `manager_id`.
    pub fn add_manager(
        &mut self,
        manager: u64,
        key: u64,
        row: u64,
        manager_id: &str,
    ) -> io::Result<()> {
        let w = &mut self.managers[self.layout.part(manager)];
        w.write_all(&manager.to_le_bytes())?;
        w.write_all(&key.to_le_bytes())?;
        w.write_all(&row.to_le_bytes())?;
        write_str(w, manager_id)
    }

    /// A row error found during the pass (given in row order).
    pub fn add_error(&mut self, e: &RowErrorRecord) -> io::Result<()> {
        let Some(w) = self.errors.as_mut() else {
            return Ok(());
        };
        w.write_all(&e.row.to_le_bytes())?;
        write_opt_str(w, e.column.as_deref())?;
        write_opt_str(w, e.attribute.as_deref())?;
        write_str(w, &e.code)?;
        write_str(w, &e.message)
    }

    /// Ends the pass: everything written is on disk, nothing is open.
    pub fn finish(self) -> io::Result<Spill> {
        for k in self.keys {
            k.into_inner().map_err(|e| e.into_error())?;
        }
        for m in self.managers {
            m.finish()?;
        }
        let record_errors = match self.errors {
            Some(e) => {
                e.finish()?;
                true
            }
            None => false,
        };
        Ok(Spill {
            layout: self.layout,
            record_errors,
        })
    }
}

/// The index after the pass, before its late findings.
pub struct Spill {
    layout: Layout,
    record_errors: bool,
}

/// What [`Spill::settle`] found after the pass, for one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Late {
    /// The row's key is on an earlier good row, `first`.
    Duplicate { first: u64 },
    /// The row's manager is neither a good row of the file nor stored.
    UnknownManager,
    /// The row's manager's own row failed after the pass.
    ManagerFailed,
}

/// The index once settled: the errors found after the pass wait, by row
/// range, to be listed among the others.
pub struct Settled {
    layout: Layout,
    record_errors: bool,
    /// Sorted digests of every key in the file (good rows, and rows with
    /// errors but a valid key), when asked for.
    file_keys: Vec<u64>,
}

impl Spill {
    /// Finds, partition by partition, the rows that fail now that the whole
    /// file is known, and calls `failed` once for each:
    ///
    /// 1. a good row whose key an earlier good row has is a duplicate;
    /// 2. a good, not duplicate row whose manager is no good row of the
    ///    file is checked against the store (`exists`, in chunks of 1000
    ///    manager ids): not stored, it fails;
    /// 3. a good row whose manager's row failed in 2 or 3 fails too, down
    ///    the chain, a level a round. Failed keys are few as a rule: they
    ///    stay in memory, and each round reads only the M partitions of
    ///    the managers that failed in the round before.
    ///
    /// `last_row` is the file's last row (it divides the late errors into
    /// row ranges); with `want_keys`, [`Settled::file_keys`] holds the
    /// sorted digests of every key in the file.
    pub fn settle<E, X>(
        self,
        last_row: u64,
        want_keys: bool,
        mut exists: X,
        failed: &mut dyn FnMut(u64, Late),
    ) -> Result<Settled, E>
    where
        E: From<io::Error>,
        X: FnMut(&[&str]) -> Result<Vec<bool>, E>,
    {
        let layout = self.layout;
        let parts = layout.parts();
        let mut late = LateWriter::create(&layout, last_row, self.record_errors)?;
        let mut on_late = |row: u64, what: Late| -> io::Result<()> {
            failed(row, what);
            late.write(row, what)
        };
        // 1. Duplicates, and the keys of the file.
        let mut dups = RowSet::default();
        let mut file_keys = Vec::new();
        let mut first: HashMap<u64, u64> = HashMap::new();
        for p in 0..parts {
            first.clear();
            let mut r = layout.open_keys(p)?;
            let start = file_keys.len();
            while let Some((key, row)) = read_pair(&mut r)? {
                if row == FAILED {
                    if want_keys {
                        file_keys.push(key);
                    }
                    continue;
                }
                match first.entry(key) {
                    std::collections::hash_map::Entry::Occupied(o) => {
                        dups.insert(row);
                        on_late(row, Late::Duplicate { first: *o.get() })?;
                    }
                    std::collections::hash_map::Entry::Vacant(v) => {
                        v.insert(row);
                    }
                }
            }
            if want_keys {
                file_keys.extend(first.keys().copied());
                file_keys[start..].sort_unstable();
            }
        }
        drop(first);
        file_keys.dedup();
        // 2. Managers: in the file, or stored.
        let mut dead: HashSet<u64> = HashSet::new();
        let mut good: HashSet<u64> = HashSet::new();
        let mut ask: Vec<(u64, u64, String)> = Vec::with_capacity(LOOKUP_CHUNK);
        let mut lookup = |ask: &mut Vec<(u64, u64, String)>,
                          dead: &mut HashSet<u64>,
                          on_late: &mut dyn FnMut(u64, Late) -> io::Result<()>|
         -> Result<(), E> {
            if ask.is_empty() {
                return Ok(());
            }
            let ids: Vec<&str> = ask.iter().map(|(_, _, m)| m.as_str()).collect();
            let found = exists(&ids)?;
            for ((key, row, _), found) in ask.iter().zip(found) {
                if !found {
                    on_late(*row, Late::UnknownManager)?;
                    dead.insert(*key);
                }
            }
            ask.clear();
            Ok(())
        };
        for p in 0..parts {
            good.clear();
            let mut r = layout.open_keys(p)?;
            while let Some((key, row)) = read_pair(&mut r)? {
                if row != FAILED {
                    good.insert(key);
                }
            }
            let mut m = layout.open_managers(p)?;
            while let Some(rec) = m.next()? {
                if dups.contains(rec.row) || good.contains(&rec.manager) {
                    continue;
                }
                ask.push((rec.key, rec.row, rec.manager_id));
                if ask.len() == LOOKUP_CHUNK {
                    lookup(&mut ask, &mut dead, &mut on_late)?;
                }
            }
            lookup(&mut ask, &mut dead, &mut on_late)?;
        }
        drop(good);
        // 3. Down the chain from the managers that failed.
        let mut failed_keys = dead.clone();
        while !dead.is_empty() {
            let mut scan: Vec<usize> = dead.iter().map(|k| layout.part(*k)).collect();
            scan.sort_unstable();
            scan.dedup();
            let mut next = HashSet::new();
            for p in scan {
                let mut m = layout.open_managers(p)?;
                while let Some(rec) = m.next()? {
                    if dead.contains(&rec.manager)
                        && !dups.contains(rec.row)
                        && failed_keys.insert(rec.key)
                    {
                        next.insert(rec.key);
                        on_late(rec.row, Late::ManagerFailed)?;
                    }
                }
            }
            dead = next;
        }
        late.finish()?;
        Ok(Settled {
            layout,
            record_errors: self.record_errors,
            file_keys,
        })
    }
}

impl Settled {
    /// The sorted digests of every key in the file (good rows, and rows
    /// with errors but a valid key; empty unless `settle` was asked for
    /// them). The index's files are removed.
    pub fn into_file_keys(self) -> Vec<u64> {
        self.file_keys
    }

    /// Every row error of the import, the pass's and the late ones, in row
    /// order, handed to `sink` a thousand at a time; `late` words a late
    /// finding. Nothing when the index was made without `record_errors`.
    pub fn errors<E: From<io::Error>>(
        &self,
        late: &dyn Fn(u64, Late) -> RowErrorRecord,
        sink: &mut dyn FnMut(&[RowErrorRecord]) -> Result<(), E>,
    ) -> Result<(), E> {
        if !self.record_errors {
            return Ok(());
        }
        let layout = &self.layout;
        let f = File::open(layout.errors_path())?;
        let mut early = Errors(UnsealReader::new(
            f,
            &layout.seal_key,
            &Layout::aad("errors", 0),
        )?);
        let mut next_early = early.next()?;
        let mut out: Vec<RowErrorRecord> = Vec::with_capacity(LOOKUP_CHUNK);
        let mut push = |e: RowErrorRecord, out: &mut Vec<RowErrorRecord>| -> Result<(), E> {
            out.push(e);
            if out.len() == LOOKUP_CHUNK {
                sink(out)?;
                out.clear();
            }
            Ok(())
        };
        for p in 0..layout.parts() {
            let mut r = BufReader::new(File::open(layout.path("l", p))?);
            let mut found = Vec::new();
            while let Some(pair) = read_pair(&mut r)? {
                found.push(pair);
            }
            found.sort_unstable_by_key(|(row, _)| *row);
            for (row, what) in found {
                while let Some(e) = next_early.take() {
                    if e.row > row {
                        next_early = Some(e);
                        break;
                    }
                    push(e, &mut out)?;
                    next_early = early.next()?;
                }
                let what = match what {
                    UNKNOWN_MANAGER => Late::UnknownManager,
                    MANAGER_FAILED => Late::ManagerFailed,
                    first => Late::Duplicate { first },
                };
                push(late(row, what), &mut out)?;
            }
        }
        while let Some(e) = next_early {
            push(e, &mut out)?;
            next_early = early.next()?;
        }
        if !out.is_empty() {
            sink(&out)?;
        }
        Ok(())
    }
}

/// The late findings, as (row, what) pairs in files by row range.
struct LateWriter {
    files: Vec<BufWriter<File>>,
    last_row: u64,
}

impl LateWriter {
    fn create(layout: &Layout, last_row: u64, record: bool) -> io::Result<Self> {
        let mut files = Vec::new();
        if record {
            for p in 0..layout.parts() {
                let f = (layout.create)(&layout.path("l", p))?;
                files.push(BufWriter::with_capacity(16 * 1024, f));
            }
        }
        Ok(Self { files, last_row })
    }

    fn write(&mut self, row: u64, what: Late) -> io::Result<()> {
        if self.files.is_empty() {
            return Ok(());
        }
        let n = self.files.len() as u128;
        let range = (u128::from(row) * n / (u128::from(self.last_row) + 1)).min(n - 1);
        let what = match what {
            Late::Duplicate { first } => first,
            Late::UnknownManager => UNKNOWN_MANAGER,
            Late::ManagerFailed => MANAGER_FAILED,
        };
        write_pair(&mut self.files[range as usize], row, what)
    }

    fn finish(self) -> io::Result<()> {
        for f in self.files {
            f.into_inner().map_err(|e| e.into_error())?;
        }
        Ok(())
    }
}

/// One M record.
struct ManagerRef {
    manager: u64,
    key: u64,
    row: u64,
    manager_id: String,
}

/// Reads an M file's records.
struct Managers(UnsealReader<File>);

impl Managers {
    fn next(&mut self) -> io::Result<Option<ManagerRef>> {
        let mut head = [0u8; 24];
        if !read_or_end(&mut self.0, &mut head)? {
            return Ok(None);
        }
        let word = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&head[i * 8..i * 8 + 8]);
            u64::from_le_bytes(b)
        };
        let (manager, key, row) = (word(0), word(1), word(2));
        let manager_id = read_str(&mut self.0)?.ok_or_else(|| corrupt("a manager id"))?;
        Ok(Some(ManagerRef {
            manager,
            key,
            row,
            manager_id,
        }))
    }
}

/// Reads the sealed error file's records.
struct Errors(UnsealReader<File>);

impl Errors {
    fn next(&mut self) -> io::Result<Option<RowErrorRecord>> {
        let mut row = [0u8; 8];
        if !read_or_end(&mut self.0, &mut row)? {
            return Ok(None);
        }
        let column = read_str(&mut self.0)?;
        let attribute = read_str(&mut self.0)?;
        let code = read_str(&mut self.0)?.ok_or_else(|| corrupt("an error code"))?;
        let message = read_str(&mut self.0)?.ok_or_else(|| corrupt("an error message"))?;
        Ok(Some(RowErrorRecord {
            row: u64::from_le_bytes(row),
            column,
            attribute,
            code,
            message,
        }))
    }
}

fn corrupt(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the import's index is damaged: {what} is missing"),
    )
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

fn write_pair(w: &mut impl Write, a: u64, b: u64) -> io::Result<()> {
    let mut buf = [0u8; 16];
    buf[..8].copy_from_slice(&a.to_le_bytes());
    buf[8..].copy_from_slice(&b.to_le_bytes());
    w.write_all(&buf)
}

fn read_pair(r: &mut impl Read) -> io::Result<Option<(u64, u64)>> {
    let mut buf = [0u8; 16];
    if !read_or_end(r, &mut buf)? {
        return Ok(None);
    }
    let (a, b) = buf.split_at(8);
    let word = |s: &[u8]| {
        let mut w = [0u8; 8];
        w.copy_from_slice(s);
        u64::from_le_bytes(w)
    };
    Ok(Some((word(a), word(b))))
}

fn write_str(w: &mut impl Write, s: &str) -> io::Result<()> {
    let len = u32::try_from(s.len())
        .ok()
        .filter(|l| *l != NONE_LEN)
        .ok_or_else(|| io::Error::other("a string too long for the import's index"))?;
    w.write_all(&len.to_le_bytes())?;
    w.write_all(s.as_bytes())
}

fn write_opt_str(w: &mut impl Write, s: Option<&str>) -> io::Result<()> {
    match s {
        Some(s) => write_str(w, s),
        None => w.write_all(&NONE_LEN.to_le_bytes()),
    }
}

fn read_str(r: &mut impl Read) -> io::Result<Option<String>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len);
    if len == NONE_LEN {
        return Ok(None);
    }
    let mut buf = vec![0u8; len as usize];
    r.read_exact(&mut buf)?;
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "the import's index is damaged"))
}

/// Fills `buf`; `false` at a clean end before its first byte, an error
/// at an end within it.
fn read_or_end(r: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::collections::BTreeMap;

    /// What the server passes: a file only its owner may read and write.
    fn private_file(path: &Path) -> io::Result<File> {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        opts.open(path)
    }

    /// A row as the pass hands it to the index.
    #[derive(Clone)]
    enum Row {
        Good {
            key: String,
            manager: Option<String>,
        },
        Failed {
            key: Option<String>,
        },
    }

    fn good(key: &str, manager: Option<&str>) -> Row {
        Row::Good {
            key: key.into(),
            manager: manager.map(Into::into),
        }
    }

    fn early_error(row: u64) -> RowErrorRecord {
        RowErrorRecord {
            row,
            column: Some("Email".into()),
            attribute: None,
            code: "invalid_email".into(),
            message: "not an email address".into(),
        }
    }

    fn late_error(row: u64, what: Late) -> RowErrorRecord {
        RowErrorRecord {
            row,
            column: None,
            attribute: None,
            code: format!("{what:?}"),
            message: String::new(),
        }
    }

    /// What settling a file found: the late rows and what failed them,
    /// the file's keys, every error in listing order, the store look-ups.
    struct Found {
        late: BTreeMap<u64, Late>,
        file_keys: Vec<u64>,
        errors: Vec<RowErrorRecord>,
        lookups: Vec<usize>,
    }

    /// Writes `rows` (rows 2, 3, ...) into an index of `parts` partitions
    /// in `dir` and settles it against a store holding `stored`.
    fn run(dir: &Path, parts: usize, rows: &[Row], stored: &[&str]) -> Found {
        let d = Digester::new();
        let mut index = RowIndex::create(dir.join("i.index"), parts, true, private_file).unwrap();
        for (i, r) in rows.iter().enumerate() {
            let row = i as u64 + 2;
            match r {
                Row::Good { key, manager } => {
                    index.add_key(d.digest(key), row).unwrap();
                    if let Some(m) = manager {
                        index
                            .add_manager(d.digest(m), d.digest(key), row, m)
                            .unwrap();
                    }
                }
                Row::Failed { key } => {
                    if let Some(k) = key {
                        index.add_failed_key(d.digest(k)).unwrap();
                    }
                    index.add_error(&early_error(row)).unwrap();
                }
            }
        }
        let mut late = BTreeMap::new();
        let mut lookups = Vec::new();
        let exists = |ids: &[&str]| -> Result<Vec<bool>, io::Error> {
            lookups.push(ids.len());
            Ok(ids.iter().map(|i| stored.contains(i)).collect())
        };
        let settled = index
            .finish()
            .unwrap()
            .settle(rows.len() as u64 + 1, true, exists, &mut |row, what| {
                assert!(late.insert(row, what).is_none(), "row {row} failed twice");
            })
            .unwrap();
        let mut errors = Vec::new();
        settled
            .errors(&late_error, &mut |e| -> Result<(), io::Error> {
                assert!(e.len() <= 1000);
                errors.extend_from_slice(e);
                Ok(())
            })
            .unwrap();
        let file_keys = settled.into_file_keys();
        assert!(!dir.join("i.index").exists(), "the index's files are gone");
        Found {
            late,
            file_keys,
            errors,
            lookups,
        }
    }

    /// The same findings the way the pass used to make them, all in memory.
    fn in_memory(rows: &[Row], stored: &[&str]) -> BTreeMap<u64, Late> {
        let mut late = BTreeMap::new();
        let mut seen: HashMap<&str, u64> = HashMap::new();
        let mut reports: Vec<(&str, &str)> = Vec::new();
        let mut forward: Vec<(u64, &str, &str)> = Vec::new();
        for (i, r) in rows.iter().enumerate() {
            let row = i as u64 + 2;
            let Row::Good { key, manager } = r else {
                continue;
            };
            if let Some(first) = seen.get(key.as_str()) {
                late.insert(row, Late::Duplicate { first: *first });
                continue;
            }
            seen.insert(key, row);
            if let Some(m) = manager {
                reports.push((m, key));
                forward.push((row, key, m));
            }
        }
        let mut dead: HashSet<&str> = HashSet::new();
        let mut failed: HashSet<&str> = HashSet::new();
        for (row, key, m) in forward {
            if !seen.contains_key(m) && !stored.contains(&m) {
                late.insert(row, Late::UnknownManager);
                dead.insert(key);
                failed.insert(key);
            }
        }
        while !dead.is_empty() {
            let mut next = HashSet::new();
            for (m, key) in &reports {
                if dead.contains(m) && failed.insert(key) {
                    next.insert(*key);
                    late.insert(seen[key], Late::ManagerFailed);
                }
            }
            dead = next;
        }
        late
    }

    #[test]
    fn managers_resolve_forward_backward_and_from_the_store_and_failures_go_down_the_chain() {
        let tmp = tempfile::tempdir().unwrap();
        let rows = vec![
            good("E1", Some("E3")),   // 2: a manager later in the file
            good("E2", Some("M0")),   // 3: a stored manager
            good("E3", None),         // 4
            good("E4", Some("BOSS")), // 5: neither: unknown
            good("E6", Some("E4")),   // 6: under a failed manager
            good("E7", Some("E6")),   // 7: and one more level down
            good("E8", Some("E1")),   // 8: a manager earlier in the file
            good("E9", Some("E7")),   // 9: three levels down
        ];
        for parts in [1, 2, 64] {
            let f = run(tmp.path(), parts, &rows, &["M0"]);
            assert_eq!(
                f.late,
                BTreeMap::from([
                    (5, Late::UnknownManager),
                    (6, Late::ManagerFailed),
                    (7, Late::ManagerFailed),
                    (9, Late::ManagerFailed),
                ]),
                "{parts} partitions"
            );
            assert_eq!(f.late, in_memory(&rows, &["M0"]));
            // Only the managers the file does not hold are looked up.
            assert_eq!(f.lookups.iter().sum::<usize>(), 2, "{:?}", f.lookups);
        }
    }

    #[test]
    fn a_duplicate_names_the_first_row_and_is_no_report_of_a_manager() {
        let tmp = tempfile::tempdir().unwrap();
        let rows = vec![
            good("E1", None), // 2
            Row::Failed {
                key: Some("E2".into()),
            }, // 3: failed: not a first row
            good("E2", Some("E1")), // 4
            good("E1", Some("NOBODY")), // 5: duplicate: its manager is not looked at
            good("E2", None), // 6: duplicate of row 4
            good("E3", Some("E4")), // 7
            good("E4", Some("GONE")), // 8: unknown
            good("E4", None), // 9: a duplicate of a failed row
            good("E5", Some("E4")), // 10: under the failed E4
        ];
        for parts in [1, 4, 64] {
            let f = run(tmp.path(), parts, &rows, &[]);
            assert_eq!(
                f.late,
                BTreeMap::from([
                    (5, Late::Duplicate { first: 2 }),
                    (6, Late::Duplicate { first: 4 }),
                    (7, Late::ManagerFailed),
                    (8, Late::UnknownManager),
                    (9, Late::Duplicate { first: 8 }),
                    (10, Late::ManagerFailed),
                ]),
                "{parts} partitions"
            );
            assert_eq!(f.late, in_memory(&rows, &[]));
            assert_eq!(f.lookups, vec![1], "only GONE is looked up");
        }
    }

    #[test]
    fn settling_agrees_with_the_in_memory_pass_on_a_large_random_file() {
        // Keys drawn from a small range so that duplicates fall into every
        // partition; managers forward, backward, stored, unknown and in
        // chains.
        let tmp = tempfile::tempdir().unwrap();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let stored: Vec<String> = (0..50).map(|i| format!("S{i}")).collect();
        let stored: Vec<&str> = stored.iter().map(String::as_str).collect();
        let mut rows = Vec::new();
        for _ in 0..20_000 {
            let key = format!("E{}", next(15_000));
            let manager = match next(10) {
                0..=3 => None,
                4..=7 => Some(format!("E{}", next(15_000))),
                8 => Some(format!("S{}", next(60))),
                _ => Some(format!("X{}", next(5))),
            };
            rows.push(match next(50) {
                0 => Row::Failed { key: Some(key) },
                1 => Row::Failed { key: None },
                _ => Row::Good { key, manager },
            });
        }
        let f = run(tmp.path(), 16, &rows, &stored);
        let want = in_memory(&rows, &stored);
        assert_eq!(f.late, want);
        assert!(want.values().any(|l| matches!(l, Late::Duplicate { .. })));
        assert!(want.values().any(|l| *l == Late::UnknownManager));
        assert!(want.values().any(|l| *l == Late::ManagerFailed));
        assert!(f.lookups.iter().all(|n| *n <= 1000), "{:?}", f.lookups);
        assert!(f.lookups.iter().sum::<usize>() > 1000);
        // Every key of the file, good or failed, once and in order.
        assert!(f.file_keys.windows(2).all(|w| w[0] < w[1]));
        let distinct: HashSet<&str> = rows
            .iter()
            .filter_map(|r| match r {
                Row::Good { key, .. } => Some(key.as_str()),
                Row::Failed { key } => key.as_deref(),
            })
            .collect();
        assert_eq!(f.file_keys.len(), distinct.len());
        // All errors, in row order, the late ones among the others.
        let rows_listed: Vec<u64> = f.errors.iter().map(|e| e.row).collect();
        assert!(rows_listed.windows(2).all(|w| w[0] < w[1]));
        let failed_early = rows
            .iter()
            .filter(|r| matches!(r, Row::Failed { .. }))
            .count();
        assert_eq!(f.errors.len(), failed_early + want.len());
        for e in &f.errors {
            match want.get(&e.row) {
                Some(l) => assert_eq!(e, &late_error(e.row, *l)),
                None => assert_eq!(e, &early_error(e.row)),
            }
        }
    }

    #[test]
    fn file_keys_answer_for_good_and_failed_rows_and_nothing_else() {
        let tmp = tempfile::tempdir().unwrap();
        let d = Digester::new();
        let mut index =
            RowIndex::create(tmp.path().join("s.index"), 8, false, private_file).unwrap();
        let ids: Vec<String> = (0..5000).map(|i| format!("P{i}")).collect();
        for (i, id) in ids.iter().enumerate() {
            if i % 3 == 0 {
                index.add_failed_key(d.digest(id)).unwrap();
            } else {
                index.add_key(d.digest(id), i as u64 + 2).unwrap();
            }
        }
        let settled = index
            .finish()
            .unwrap()
            .settle(
                5001,
                true,
                |_: &[&str]| -> Result<Vec<bool>, io::Error> { unreachable!() },
                &mut |_, _| {},
            )
            .unwrap();
        // Made without `record_errors`: no errors to list.
        settled
            .errors(&late_error, &mut |_| -> Result<(), io::Error> {
                panic!("no errors were recorded")
            })
            .unwrap();
        let keys = settled.into_file_keys();
        assert!(ids
            .iter()
            .all(|id| keys.binary_search(&d.digest(id)).is_ok()));
        assert!(keys.binary_search(&d.digest("P5000")).is_err());
    }

    #[test]
    fn the_index_holds_no_id_in_plaintext_and_digests_differ_between_runs() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("p.index");
        let d = Digester::new();
        let mut index = RowIndex::create(dir.clone(), 4, true, private_file).unwrap();
        for i in 0..3000u64 {
            let key = format!("EMPLOYEE{i:05}");
            let boss = format!("SECRETBOSS{:03}", i % 7);
            index.add_key(d.digest(&key), i + 2).unwrap();
            index
                .add_manager(d.digest(&boss), d.digest(&key), i + 2, &boss)
                .unwrap();
        }
        index
            .add_error(&RowErrorRecord {
                row: 3002,
                column: Some("Manager".into()),
                attribute: None,
                code: "SECRETCODE".into(),
                message: "SECRETMESSAGE".into(),
            })
            .unwrap();
        let spill = index.finish().unwrap();
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            for needle in ["SECRETBOSS", "EMPLOYEE", "SECRETCODE", "SECRETMESSAGE"] {
                assert!(!text.contains(needle), "{needle} on disk");
            }
            files += 1;
        }
        assert_eq!(files, 9, "4 K files, 4 M files and the errors");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        drop(spill);
        assert!(!dir.exists());
        // Another run keys its digests differently.
        assert_ne!(Digester::new().digest("E1"), d.digest("E1"));
    }

    #[test]
    fn the_files_go_on_error_and_a_leftover_goes_when_the_import_runs_again() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = dir_for(tmp.path(), "imp1", "run1");
        // Dropped half-way (the pass failed): nothing stays.
        let mut index = RowIndex::create(dir.clone(), 2, true, private_file).unwrap();
        index.add_key(1, 2).unwrap();
        assert!(dir.exists());
        drop(index);
        assert!(!dir.exists());
        // Settling fails (the store is down): the files go too.
        let mut index = RowIndex::create(dir.clone(), 2, false, private_file).unwrap();
        index.add_key(5, 2).unwrap();
        index.add_manager(9, 5, 2, "M").unwrap();
        let r = index.finish().unwrap().settle(
            2,
            false,
            |_: &[&str]| Err(io::Error::other("down")),
            &mut |_, _| {},
        );
        assert!(r.is_err());
        assert!(!dir.exists());
        // A crash leaves directories (of this release's runs and of an
        // earlier one's); the next run of the import removes them all, and
        // only this import's.
        for d in [
            dir.clone(),
            tmp.path().join("imp1.index"),
            dir_for(tmp.path(), "imp2", "run9"),
        ] {
            std::fs::create_dir(&d).unwrap();
            std::fs::write(d.join("k0"), b"stale").unwrap();
        }
        std::fs::write(tmp.path().join("imp1.sealed"), b"x").unwrap();
        assert_eq!(clear_import(tmp.path(), "imp1").unwrap(), 2);
        assert!(!dir.exists());
        assert!(!tmp.path().join("imp1.index").exists());
        assert!(dir_for(tmp.path(), "imp2", "run9").exists());
        assert!(tmp.path().join("imp1.sealed").exists());
    }

    #[test]
    fn a_run_that_lost_its_lease_removes_only_its_own_directory() {
        let tmp = tempfile::tempdir().unwrap();
        // The stalled run's index, and then the new holder's.
        let mut stale =
            RowIndex::create(dir_for(tmp.path(), "imp1", "a"), 1, true, private_file).unwrap();
        stale.add_key(1, 2).unwrap();
        let mine = dir_for(tmp.path(), "imp1", "b");
        let mut index = RowIndex::create(mine.clone(), 1, true, private_file).unwrap();
        index.add_key(1, 2).unwrap();
        // The stalled run stops (its first write is refused) and drops its
        // index: the new holder's files stay.
        drop(stale);
        assert!(mine.join("k0").exists());
        drop(index);
        assert!(!mine.exists());
    }

    #[test]
    fn index_directories_name_their_import() {
        assert_eq!(import_of("0190-ab.f00d.index"), Some("0190-ab"));
        assert_eq!(import_of("0190-ab.index"), Some("0190-ab"));
        assert_eq!(import_of("0190-ab.sealed"), None);
        assert_eq!(import_of("0190-ab.part"), None);
    }

    #[test]
    fn partitions_grow_with_the_upload_up_to_the_limit() {
        assert_eq!(partitions_for(0), 1);
        assert_eq!(partitions_for(1 << 20), 1);
        assert_eq!(partitions_for(100 << 20), 16);
        assert_eq!(partitions_for(1 << 30), 64);
        assert_eq!(partitions_for(u64::MAX), 64);
    }

    #[test]
    fn a_row_set_holds_a_bit_a_row() {
        let mut s = RowSet::default();
        s.insert(3);
        s.insert(200);
        assert!(s.contains(3) && s.contains(200) && !s.contains(4));
        assert!(s.remove(200));
        assert!(!s.remove(200));
        assert!(!s.contains(200));
    }
}
