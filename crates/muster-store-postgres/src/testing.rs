//! Test databases, for this crate's tests and benches: the server named by
//! `MUSTER_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and a fresh, uniquely
//! named database on it, dropped afterwards even when the test fails. When
//! the server cannot be reached the tests fail under `CI=true` and are
//! skipped, loudly, otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::PostgresStore;
use postgres::{Config, NoTls};
use std::io::Write;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Where a config points, without its password.
fn place(c: &Config) -> String {
    format!(
        "hosts {:?} ports {:?} user {:?} db {:?}",
        c.get_hosts(),
        c.get_ports(),
        c.get_user(),
        c.get_dbname()
    )
}

/// The server's admin connection settings, or `None` (after saying so)
/// when the tests are to be skipped.
pub fn server() -> Option<Config> {
    let url = std::env::var("MUSTER_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.into());
    let mut cfg: Config = url
        .parse()
        .expect("MUSTER_TEST_POSTGRES_URL is not a PostgreSQL URL");
    cfg.connect_timeout(std::time::Duration::from_secs(5));
    match cfg.connect(NoTls) {
        Ok(_) => Some(cfg),
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("PostgreSQL not reachable at {}: {e}", place(&cfg))
        }
        Err(e) => {
            // Straight to the stream, not eprintln!: the test harness
            // captures that, and a skip must not pass unnoticed.
            let _ = writeln!(
                std::io::stderr(),
                "\n**********\nSKIPPED: PostgreSQL not reachable at {} ({e:?})\n**********",
                place(&cfg)
            );
            None
        }
    }
}

/// A fresh database, dropped (with any connections still open to it) when
/// this is dropped, on success or panic alike.
pub struct TestDb {
    server: Config,
    pub name: String,
}

impl TestDb {
    pub fn create(server: &Config) -> Self {
        let name = format!("muster_test_{}", uuid::Uuid::new_v4().simple());
        let mut c = server.connect(NoTls).unwrap();
        c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        Self {
            server: server.clone(),
            name,
        }
    }

    pub fn config(&self) -> Config {
        let mut c = self.server.clone();
        c.dbname(&self.name);
        c
    }

    pub fn open(&self) -> PostgresStore {
        PostgresStore::open_with(self.config(), 4).unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let dropped = self.server.connect(NoTls).and_then(|mut c| {
            c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
        });
        if let Err(e) = dropped {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}
