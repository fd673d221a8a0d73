//! The single writer. SQLite allows one writer at a time, so one thread owns
//! the write connection and runs every write job sent to it. Jobs that queue
//! up while a transaction commits are run together in the next transaction,
//! each inside its own savepoint (group commit): a failing job rolls back
//! alone, and all callers get their answer only after the commit.
use muster_store::{Result, StoreError};
use rusqlite::Connection;
use std::sync::mpsc;

type Reply = Box<dyn FnOnce(Result<()>) + Send>;
type Job = Box<dyn FnOnce(&Connection) -> Reply + Send>;

/// Most jobs run in one transaction.
const GROUP_MAX: usize = 256;

pub struct Writer {
    tx: mpsc::SyncSender<Job>,
}

impl Writer {
    pub fn start(conn: Connection) -> Result<Self> {
        let (tx, rx) = mpsc::sync_channel::<Job>(4096);
        std::thread::Builder::new()
            .name("muster-sqlite-writer".into())
            .spawn(move || run(conn, rx))
            .map_err(|e| StoreError::Backend(format!("cannot start the writer thread: {e}")))?;
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
            .map_err(|_| StoreError::Backend("the writer thread has stopped".into()))?;
        rrx.recv()
            .map_err(|_| StoreError::Backend("the writer thread dropped a job".into()))?
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

fn run(conn: Connection, rx: mpsc::Receiver<Job>) {
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
        for reply in replies {
            reply(match &commit {
                Ok(()) => Ok(()),
                Err(e) => Err(StoreError::Backend(e.to_string())),
            });
        }
    }
}
