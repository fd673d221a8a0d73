//! The single writer. SQLite allows one writer at a time, so one thread owns
//! the write connection and runs every write job sent to it. Jobs that queue
//! up while a transaction commits are run together in the next transaction,
//! each inside its own savepoint (group commit): a failing job rolls back
//! alone, and all callers get their answer only after the commit.
//!
//! Copying the write-ahead log back into the database file (a checkpoint)
//! is not the writer's work: SQLite would do it inside a commit every 1,000
//! pages, stalling every write behind it. A checkpointer thread with its
//! own connection does it instead, woken after commits, while the writer
//! goes on appending to the log. The writer keeps SQLite's own checkpoint
//! only as a backstop, at a much larger log size, for when the checkpointer
//! cannot keep up (a long reader holding an old snapshot, say).
use muster_store::{Result, StoreError};
use rusqlite::Connection;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

type Reply = Box<dyn FnOnce(Result<()>) + Send>;
type Job = Box<dyn FnOnce(&Connection) -> Reply + Send>;

/// Most jobs run in one transaction.
const GROUP_MAX: usize = 256;

/// Log pages after which the writer checkpoints by itself (SQLite's
/// default is 1,000); 16,384 pages of 4 KiB is 64 MiB of log.
const WRITER_CHECKPOINT_PAGES: u32 = 16_384;

/// The checkpointer runs at most this often, so a stream of small commits
/// does not turn into a stream of checkpoints.
const CHECKPOINT_PAUSE: Duration = Duration::from_millis(50);

pub struct Writer {
    tx: mpsc::SyncSender<Job>,
}

impl Writer {
    /// Starts the writer on `conn` and a checkpointer on its own
    /// connection to the database at `path`.
    pub fn start(conn: Connection, path: &Path) -> Result<Self> {
        conn.pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)
            .map_err(crate::be)?;
        let checkpoints = Connection::open(path).map_err(crate::be)?;
        checkpoints
            .execute_batch("PRAGMA busy_timeout=10000;")
            .map_err(crate::be)?;
        let (wake, woken) = mpsc::sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("muster-sqlite-checkpoint".into())
            .spawn(move || checkpointer(checkpoints, woken))
            .map_err(|e| StoreError::caused("cannot start the checkpointer", e))?;
        let (tx, rx) = mpsc::sync_channel::<Job>(4096);
        std::thread::Builder::new()
            .name("muster-sqlite-writer".into())
            .spawn(move || run(conn, rx, wake))
            .map_err(|e| StoreError::caused("cannot start the writer thread", e))?;
        Ok(Self { tx })
    }

    /// Runs `f` in a write transaction and returns its result once committed.
    pub fn write<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
    {
        let (rtx, rrx) = mpsc::sync_channel::<Result<R>>(1);
        let job: Job = Box::new(move |conn: &Connection| {
            let out = in_savepoint(conn, f);
            Box::new(move |commit: Result<()>| {
                let answer = match (commit, out) {
                    (Ok(()), out) => out,
                    (Err(e), _) => Err(e),
                };
                let _ = rtx.send(answer);
            }) as Reply
        });
        self.tx
            .send(job)
            .map_err(|_| StoreError::backend("the writer thread has stopped"))?;
        rrx.recv()
            .map_err(|_| StoreError::backend("the writer thread dropped a job"))?
    }
}

fn in_savepoint<R>(conn: &Connection, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
    conn.execute_batch("SAVEPOINT job").map_err(crate::be)?;
    match f(conn) {
        Ok(r) => {
            conn.execute_batch("RELEASE job").map_err(crate::be)?;
            Ok(r)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
            Err(e)
        }
    }
}

fn run(conn: Connection, rx: mpsc::Receiver<Job>, wake: mpsc::SyncSender<()>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < GROUP_MAX {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            // Nothing ran; dropping the jobs tells each caller it failed.
            tracing::error!(error = %e, "sqlite writer cannot begin a transaction");
            drop(jobs);
            continue;
        }
        let replies: Vec<Reply> = jobs.into_iter().map(|job| job(&conn)).collect();
        let commit = conn.execute_batch("COMMIT").map_err(crate::be);
        if commit.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        // A wake-up already pending covers this commit too.
        let _ = wake.try_send(());
        for reply in replies {
            reply(match &commit {
                Ok(()) => Ok(()),
                Err(e) => Err(StoreError::backend(format!("the commit failed: {e}"))),
            });
        }
    }
}

/// Copies committed log pages into the database file after commits, without
/// blocking the writer (a passive checkpoint never waits for a lock). Ends
/// when the writer has gone, with a last checkpoint.
fn checkpointer(conn: Connection, woken: mpsc::Receiver<()>) {
    let checkpoint = || {
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "sqlite checkpoint failed; the writer's own backstop remains");
        }
    };
    while woken.recv().is_ok() {
        checkpoint();
        std::thread::sleep(CHECKPOINT_PAUSE);
    }
    checkpoint();
}
