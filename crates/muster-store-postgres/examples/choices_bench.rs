//! Measures the two choices the PostgreSQL backend rests on, on a database
//! of its own (created here, dropped at the end, also after a failure):
//!
//! - prepared statements: the same one-row indexed read prepared for every
//!   call (what `Client::query(&str, ..)` does) and prepared once, which is
//!   why `pool.rs` keeps prepared statements per connection;
//! - the bulk upsert: arrays bound to one `INSERT ... SELECT FROM unnest(..)`
//!   against COPY into a temporary staging table and an `INSERT ... SELECT`
//!   from it, each in its own transaction, which is why `apply.rs` binds
//!   arrays.
//!
//! ```text
//! PG_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!   cargo run --release -p muster-store-postgres --example choices_bench
//! ```
//!
//! `PG_URL` names the server (the URL above is the default; its database is
//! only used to create and drop the bench's own). Prints one line per
//! measurement; times vary with the machine and its load.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use muster_store_postgres::testing::TestDb;
use muster_store_postgres::PostgresStore;
use postgres::{Client, Config, NoTls};
use std::io::Write;
use std::time::{Duration, Instant};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// Reads per way of preparing them.
const READS: u32 = 2000;
/// Rows per bulk upsert, and rounds of it.
const ROWS: usize = 5000;
const ROUNDS: i64 = 4;

fn main() {
    let url = std::env::var("PG_URL").unwrap_or_else(|_| DEFAULT_URL.into());
    // The URL may hold a password: it is never printed, only parsed.
    let server: Config = url.parse().expect("PG_URL is not a PostgreSQL URL");
    let db = TestDb::create(&server);
    prepared_statements(&db);
    unnest_and_copy(&db);
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// The same read, prepared per call and prepared once.
fn prepared_statements(db: &TestDb) {
    // The store's own schema: the read is one the gateway makes.
    drop(PostgresStore::open_with(db.config(), 1).unwrap());
    let mut c = db.config().connect(NoTls).unwrap();
    let sql = "SELECT scope, one_time FROM tokens WHERE digest = $1";
    let d: &[u8] = &[0u8; 32];
    let started = Instant::now();
    for _ in 0..READS {
        c.query(sql, &[&d]).unwrap();
    }
    let each = started.elapsed() / READS;
    let stmt = c.prepare(sql).unwrap();
    let started = Instant::now();
    for _ in 0..READS {
        c.query(&stmt, &[&d]).unwrap();
    }
    let once = started.elapsed() / READS;
    println!(
        "one-row indexed read, {READS} each: prepared per call {} a query, prepared once {}",
        ms(each),
        ms(once)
    );
}

/// The same upsert of people-like rows through `unnest` and through COPY
/// into a staging table, alternating, so each round changes every row.
fn unnest_and_copy(db: &TestDb) {
    let mut c: Client = db.config().connect(NoTls).unwrap();
    c.batch_execute(
        "CREATE TABLE p (tenant_id text COLLATE \"C\", external_id text COLLATE \"C\", \
         version bigint, fingerprint bytea, attrs jsonb, roles jsonb, \
         PRIMARY KEY (tenant_id, external_id))",
    )
    .unwrap();
    let upsert_tail = "ON CONFLICT (tenant_id, external_id) DO UPDATE SET \
        version = excluded.version, fingerprint = excluded.fingerprint, \
        attrs = excluded.attrs, roles = excluded.roles WHERE p.version < excluded.version";
    let unnest_sql = format!(
        "INSERT INTO p AS p SELECT 't', u.e, u.v, u.f, u.a::jsonb, u.r::jsonb \
         FROM unnest($1::text[], $2::bigint[], $3::bytea[], $4::text[], $5::text[]) \
         AS u(e, v, f, a, r) {upsert_tail}"
    );
    let copy_sql = format!(
        "INSERT INTO p AS p SELECT 't', e, v, f, a::jsonb, r::jsonb FROM stage {upsert_tail}"
    );
    let (mut unnest, mut copy) = (Vec::new(), Vec::new());
    for round in 1..=ROUNDS {
        let ext: Vec<String> = (0..ROWS).map(|i| format!("P{i:06}")).collect();
        let ver: Vec<i64> = vec![2 * round - 1; ROWS];
        let fp: Vec<Vec<u8>> = (0..ROWS)
            .map(|i| (i as u128).to_le_bytes().to_vec())
            .collect();
        let attrs: Vec<String> = (0..ROWS)
            .map(|i| format!("{{\"given_name\":\"Name{i}-{round}\",\"family_name\":\"X\"}}"))
            .collect();
        let roles: Vec<String> = vec!["[\"staff\"]".into(); ROWS];

        let started = Instant::now();
        let mut tx = c.transaction().unwrap();
        let n = tx
            .execute(&unnest_sql, &[&ext, &ver, &fp, &attrs, &roles])
            .unwrap();
        tx.commit().unwrap();
        unnest.push(started.elapsed());
        assert_eq!(n as usize, ROWS);

        let ver2 = 2 * round;
        let started = Instant::now();
        let mut tx = c.transaction().unwrap();
        tx.batch_execute(
            "CREATE TEMP TABLE stage (e text, v bigint, f bytea, a text, r text) ON COMMIT DROP",
        )
        .unwrap();
        let mut w = tx.copy_in("COPY stage (e, v, f, a, r) FROM STDIN").unwrap();
        for i in 0..ROWS {
            let hex: String = fp[i].iter().map(|b| format!("{b:02x}")).collect();
            writeln!(
                w,
                "{}\t{ver2}\t\\\\x{hex}\t{}\t{}",
                ext[i], attrs[i], roles[i]
            )
            .unwrap();
        }
        w.finish().unwrap();
        let n = tx.execute(&copy_sql, &[]).unwrap();
        tx.commit().unwrap();
        copy.push(started.elapsed());
        assert_eq!(n as usize, ROWS);
    }
    let changed: i64 = c
        .query_one(
            "SELECT count(*) FROM p WHERE version = $1",
            &[&(2 * ROUNDS)],
        )
        .unwrap()
        .get(0);
    assert_eq!(changed as usize, ROWS, "the last round changed every row");
    let range = |d: &[Duration]| {
        let lo = d.iter().min().copied().unwrap_or_default();
        let hi = d.iter().max().copied().unwrap_or_default();
        format!("{}-{}", ms(lo), ms(hi))
    };
    println!(
        "upsert of {ROWS} rows, {ROUNDS} rounds each: unnest {}, COPY + staging {}",
        range(&unnest),
        range(&copy)
    );
}
