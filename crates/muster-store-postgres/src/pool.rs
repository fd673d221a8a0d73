//! A small blocking connection pool, and [`Sql`], which runs statements
//! through a per-connection cache of prepared statements.
//!
//! Why our own and not r2d2_postgres: rust-postgres prepares a fresh
//! statement for every `query(&str, ..)` (a round trip and a planning of
//! its own), and r2d2 hands out bare `Client`s with nowhere to keep
//! prepared ones. Measured on a local server (`examples/choices_bench.rs`),
//! a one-row indexed read took 0.13-0.70 ms prepared per call and
//! 0.06-0.10 ms prepared once. What r2d2 adds beyond
//! that (a reaper thread, idle limits, a checkout ping that costs another
//! round trip) this store does not need: connections open on demand up to
//! a maximum, and one found closed is dropped instead of reused.
use crate::{be, Result};
use muster_store::StoreError;
use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, Config, GenericClient, NoTls, Row, Statement, Transaction};
use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub(crate) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// One connection and the statements prepared on it.
pub(crate) struct Conn {
    client: Client,
    cache: HashMap<&'static str, Statement>,
}

struct State {
    idle: Vec<Conn>,
    /// Connections handed out or idle.
    open: usize,
}

pub(crate) struct Pool {
    config: Config,
    max: usize,
    wait: Duration,
    state: Mutex<State>,
    freed: Condvar,
}

impl Pool {
    pub(crate) fn new(config: Config, max: usize, wait: Duration) -> Self {
        Self {
            config,
            max: max.max(1),
            wait,
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
        }
    }

    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    pub(crate) fn status(&self) -> muster_store::PoolStatus {
        let st = self.lock();
        let idle = st.idle.len();
        muster_store::PoolStatus {
            in_use: st.open.saturating_sub(idle) as u64,
            idle: idle as u64,
            max: self.max as u64,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a connection outside the pool (migrations use one of their own).
    pub(crate) fn connect(&self) -> Result<Client> {
        self.config.connect(NoTls).map_err(|e| {
            StoreError::caused(
                "cannot connect to PostgreSQL",
                crate::Cause::of(&e, Some(&self.config)),
            )
        })
    }

    fn take(&self) -> Result<Conn> {
        let deadline = Instant::now() + self.wait;
        let mut st = self.lock();
        loop {
            if let Some(c) = st.idle.pop() {
                if c.client.is_closed() {
                    st.open -= 1;
                    continue;
                }
                return Ok(c);
            }
            if st.open < self.max {
                st.open += 1;
                drop(st);
                return match self.connect() {
                    Ok(client) => Ok(Conn {
                        client,
                        cache: HashMap::new(),
                    }),
                    Err(e) => {
                        self.lock().open -= 1;
                        self.freed.notify_one();
                        Err(e)
                    }
                };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(StoreError::backend(format!(
                    "no PostgreSQL connection became free within {:?} ({} in use)",
                    self.wait, self.max
                )));
            }
            st = self
                .freed
                .wait_timeout(st, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn give_back(&self, c: Conn) {
        let mut st = self.lock();
        if c.client.is_closed() {
            st.open -= 1;
        } else {
            st.idle.push(c);
        }
        drop(st);
        self.freed.notify_one();
    }

    /// Runs `f` on a pooled connection outside any transaction, where each
    /// statement commits (and sees a consistent snapshot) on its own: for
    /// calls that are one statement, which this spares a BEGIN and a
    /// COMMIT round trip.
    pub(crate) fn run<R>(&self, f: impl FnOnce(&mut Sql<'_, Client>) -> Result<R>) -> Result<R> {
        let mut lease = Lease {
            pool: self,
            conn: Some(self.take()?),
        };
        let Conn { client, cache } = lease.conn()?;
        f(&mut Sql { c: client, cache })
    }

    /// Runs `f` in a transaction that commits when `f` returns `Ok` and
    /// rolls back otherwise.
    pub(crate) fn write<R>(
        &self,
        f: impl FnOnce(&mut Sql<'_, Transaction<'_>>) -> Result<R>,
    ) -> Result<R> {
        let mut lease = Lease {
            pool: self,
            conn: Some(self.take()?),
        };
        let Conn { client, cache } = lease.conn()?;
        let mut tx = client.transaction().map_err(be)?;
        let r = f(&mut Sql { c: &mut tx, cache })?;
        // On the error paths, dropping the transaction rolls it back.
        tx.commit().map_err(be)?;
        Ok(r)
    }
}

/// A connection out of the pool; it goes back when this is dropped, on
/// every path, unless a panic interrupted it mid-way (then it is closed,
/// since its session state is unknown).
struct Lease<'a> {
    pool: &'a Pool,
    conn: Option<Conn>,
}

impl Lease<'_> {
    fn conn(&mut self) -> Result<&mut Conn> {
        self.conn
            .as_mut()
            .ok_or_else(|| StoreError::backend("a pooled connection was taken twice"))
    }
}

impl Drop for Pool {
    /// Closing a connection blocks on the driver's own small runtime, which
    /// panics on a thread that drives an async runtime, and a server drops
    /// its last handle to the store on just such a thread (at shutdown).
    /// The idle connections are closed on a thread of their own instead.
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        let idle = std::mem::take(&mut st.idle);
        if idle.is_empty() {
            return;
        }
        // Joined, so the server's goodbye is sent before the process exits;
        // closing is one message per connection.
        let _ = std::thread::spawn(move || drop(idle)).join();
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            if std::thread::panicking() {
                drop(c);
                self.pool.lock().open -= 1;
                self.pool.freed.notify_one();
            } else {
                self.pool.give_back(c);
            }
        }
    }
}

/// A client (plain or in a transaction) with its statement cache.
pub(crate) struct Sql<'a, C> {
    c: &'a mut C,
    cache: &'a mut HashMap<&'static str, Statement>,
}

impl<C: GenericClient> Sql<'_, C> {
    fn stmt(&mut self, sql: &'static str) -> Result<Statement> {
        if let Some(s) = self.cache.get(sql) {
            return Ok(s.clone());
        }
        let s = self.c.prepare(sql).map_err(be)?;
        self.cache.insert(sql, s.clone());
        Ok(s)
    }

    /// A prepared statement whose tables another instance migrated since
    /// fails with "cached plan must not change result type" (0A000); it is
    /// forgotten, so the next call prepares it afresh.
    fn check<T>(
        &mut self,
        sql: &'static str,
        r: std::result::Result<T, postgres::Error>,
    ) -> std::result::Result<T, postgres::Error> {
        if let Err(e) = &r {
            if e.code() == Some(&SqlState::FEATURE_NOT_SUPPORTED) {
                self.cache.remove(sql);
            }
        }
        r
    }

    /// Like [`Sql::exec`], but hands back the driver's error, for callers
    /// that turn some errors (unique violations) into answers.
    pub(crate) fn try_exec(
        &mut self,
        sql: &'static str,
        params: Params<'_>,
    ) -> Result<std::result::Result<u64, postgres::Error>> {
        let s = self.stmt(sql)?;
        let r = self.c.execute(&s, params);
        Ok(self.check(sql, r))
    }

    pub(crate) fn exec(&mut self, sql: &'static str, params: Params<'_>) -> Result<u64> {
        let s = self.stmt(sql)?;
        let r = self.c.execute(&s, params);
        self.check(sql, r).map_err(be)
    }

    pub(crate) fn query(&mut self, sql: &'static str, params: Params<'_>) -> Result<Vec<Row>> {
        let s = self.stmt(sql)?;
        let r = self.c.query(&s, params);
        self.check(sql, r).map_err(be)
    }

    pub(crate) fn opt(&mut self, sql: &'static str, params: Params<'_>) -> Result<Option<Row>> {
        let s = self.stmt(sql)?;
        let r = self.c.query_opt(&s, params);
        self.check(sql, r).map_err(be)
    }

    /// Starts a `COPY ... FROM STDIN` on this client (in its transaction,
    /// if it is one).
    pub(crate) fn copy_in(&mut self, sql: &str) -> Result<postgres::CopyInWriter<'_>> {
        self.c.copy_in(sql).map_err(be)
    }

    pub(crate) fn one(&mut self, sql: &'static str, params: Params<'_>) -> Result<Row> {
        let s = self.stmt(sql)?;
        let r = self.c.query_one(&s, params);
        self.check(sql, r).map_err(be)
    }
}
