//! A small blocking connection pool, and [`Sql`], which runs statements
//! through a per-connection cache of prepared statements.
//!
//! Why not r2d2: rust-postgres prepares an unnamed statement for every
//! `query(&str, ..)`, a round trip of its own; keeping prepared statements
//! per connection halves the round trips of every one-statement call
//! (measured in `tests/contract.rs`, `prepared_statements_pay_off`), and
//! r2d2 hands out bare `Client`s with nowhere to keep them. What r2d2 adds
//! beyond that (a reaper thread, idle limits) this store does not need:
//! connections are opened on demand up to a maximum, and a connection that
//! broke is dropped instead of being returned.
use crate::{be, Result};
use muster_store::StoreError;
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

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a connection outside the pool (migrations use one of their own).
    pub(crate) fn connect(&self) -> Result<Client> {
        self.config
            .connect(NoTls)
            .map_err(|e| StoreError::Backend(crate::redact(&self.config, &e.to_string())))
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
                return Err(StoreError::Backend(format!(
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

    /// Runs `f` on a pooled connection, outside any transaction: for reads
    /// that are one statement (each statement sees a consistent snapshot).
    pub(crate) fn read<R>(&self, f: impl FnOnce(&mut Sql<'_, Client>) -> Result<R>) -> Result<R> {
        let mut conn = self.take()?;
        let Conn { client, cache } = &mut conn;
        let out = f(&mut Sql { c: client, cache });
        self.give_back(conn);
        out
    }

    /// Runs `f` in a transaction that commits when `f` returns `Ok` and
    /// rolls back otherwise.
    pub(crate) fn write<R>(
        &self,
        f: impl FnOnce(&mut Sql<'_, Transaction<'_>>) -> Result<R>,
    ) -> Result<R> {
        let mut conn = self.take()?;
        let out = {
            let Conn { client, cache } = &mut conn;
            match client.transaction() {
                Ok(mut tx) => match f(&mut Sql { c: &mut tx, cache }) {
                    Ok(r) => tx.commit().map(|()| r).map_err(be),
                    // Dropping the transaction rolls it back.
                    Err(e) => Err(e),
                },
                Err(e) => Err(be(e)),
            }
        };
        self.give_back(conn);
        out
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

    /// Like [`Sql::exec`], but hands back the driver's error, for callers
    /// that turn some errors (unique violations) into answers.
    pub(crate) fn try_exec(
        &mut self,
        sql: &'static str,
        params: Params<'_>,
    ) -> Result<std::result::Result<u64, postgres::Error>> {
        let s = self.stmt(sql)?;
        Ok(self.c.execute(&s, params))
    }

    pub(crate) fn exec(&mut self, sql: &'static str, params: Params<'_>) -> Result<u64> {
        let s = self.stmt(sql)?;
        self.c.execute(&s, params).map_err(be)
    }

    pub(crate) fn query(&mut self, sql: &'static str, params: Params<'_>) -> Result<Vec<Row>> {
        let s = self.stmt(sql)?;
        self.c.query(&s, params).map_err(be)
    }

    pub(crate) fn opt(&mut self, sql: &'static str, params: Params<'_>) -> Result<Option<Row>> {
        let s = self.stmt(sql)?;
        self.c.query_opt(&s, params).map_err(be)
    }

    pub(crate) fn one(&mut self, sql: &'static str, params: Params<'_>) -> Result<Row> {
        let s = self.stmt(sql)?;
        self.c.query_one(&s, params).map_err(be)
    }
}
