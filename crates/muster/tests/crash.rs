//! Crash safety (docs/operations.md#crash-safety): the real `muster serve` is killed with SIGKILL
//! at random moments while it takes in and applies large imports, and
//! restarted; after every import the test checks that
//!
//! - the import completed (`succeeded`, its counts add up to the file's
//!   rows: nothing counted twice, nothing lost),
//! - every person equals the expected state exactly (attributes, roles and
//!   version), computed here with the same mapping engine from the file,
//! - every person the import changed has exactly one audit entry from it,
//!   and no one else has any,
//! - `muster audit verify` passes,
//! - nothing is left in the uploads directory: no upload, no validation
//!   index, and no partial upload, not even one a kill during the upload
//!   left (an instance removes those when it starts, once they are older
//!   than `import.orphan_grace_seconds`; the test ages them past it).
//!
//! Kills fall during the upload (the client then sends the file again
//! with the same `Idempotency-Key`), during validation and while applying.
//! On SQLite the one instance is killed and restarted. On PostgreSQL two
//! instances share the database and data directory; the one holding the
//! import's lease is killed, and the other must take the import over once
//! the (short, 3 s) lease runs out; the dead one is restarted only after.
//!
//! The random moments come from a seeded generator; the seed is printed
//! and `MUSTER_CRASH_SEED` replays it. Sizes: `MUSTER_CRASH_KILLS` (kills
//! per backend, default 4) and `MUSTER_CRASH_ROWS` (rows per file, default
//! 20,000) keep the default run short for CI; the full run is
//!
//! ```text
//! MUSTER_CRASH_KILLS=20 MUSTER_CRASH_ROWS=200000 \
//!   cargo test --release -p muster --test crash -- --nocapture --test-threads 1
//! ```
//!
//! Bounded in time: every wait has a deadline, and the whole run per
//! backend must end within `MUSTER_CRASH_BUDGET_SECONDS` (default 1800).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use muster_core::mapping::{MappingDoc, MappingFormat};
use muster_core::person::{apply, PersonState};
use muster_core::policy::WritePolicy;
use muster_core::TenantId;
use muster_intake::records::{Format, Item, Limits, Record, RecordReader};
use muster_store::Store;
use reqwest::Method;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use support::*;

/// The two backends' runs take turns: each needs the machine's cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// splitmix64: small, and the same sequence for the same seed everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A 128-bit digest of a person's state (two keyed SipHashes): the
/// expected states of 200,000 people fit in a few megabytes.
fn digest(state: &PersonState) -> (u64, u64) {
    let json = serde_json::to_vec(state).unwrap();
    let h = |k: u8| {
        let mut s = std::collections::hash_map::DefaultHasher::new();
        k.hash(&mut s);
        json.hash(&mut s);
        s.finish()
    };
    (h(1), h(2))
}

/// What each person must look like after importing `file`: the mapping
/// engine applied to every row. Every row maps all of the mapping's
/// attributes and the role column, so the state after an upsert does not
/// depend on the state before it.
fn expected_states(file: &Path) -> HashMap<String, (u64, u64)> {
    let doc = MappingDoc::parse(
        &std::fs::read_to_string(repo().join("examples/hr/mapping.toml")).unwrap(),
        MappingFormat::Toml,
    )
    .unwrap();
    let f = std::io::BufReader::new(std::fs::File::open(file).unwrap());
    let mut reader =
        RecordReader::new(f, Format::Csv { delimiter: b',' }, Limits::default()).unwrap();
    let header: Vec<String> = reader.header().unwrap().to_vec();
    let cols: Vec<&str> = header.iter().map(String::as_str).collect();
    let compiled = doc.compile(&cols, &Default::default()).unwrap();
    let policy = WritePolicy::allow_all();
    let mut out = HashMap::new();
    while let Some(item) = reader.next_item().unwrap() {
        let Item::Record(Record::Fields { fields, row }) = item else {
            panic!("the generated file has a bad row")
        };
        let f: Vec<&str> = fields.iter().map(String::as_str).collect();
        let inc = compiled
            .map_row(&f)
            .unwrap_or_else(|_| panic!("row {row} of the generated file does not map"));
        let state = apply(None, &inc, &policy);
        out.insert(inc.external_id.as_str().to_owned(), digest(&state));
    }
    out
}

/// The spool's entries (uploads, partial uploads, validation indexes).
fn spool(uploads: &Path) -> Vec<String> {
    std::fs::read_dir(uploads)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".index") || n.ends_with(".part") || n.ends_with(".sealed"))
        .collect()
}

/// Makes the spool's files look two hours old (past the default grace
/// period of `import.orphan_grace_seconds`); answers how many partial
/// uploads there are.
fn age_spool(uploads: &Path) -> usize {
    let then = std::time::SystemTime::now() - Duration::from_secs(2 * 3600);
    let mut partial = 0;
    for name in spool(uploads) {
        let path = uploads.join(&name);
        if path.is_file() {
            let f = std::fs::File::options().write(true).open(&path).unwrap();
            f.set_modified(then).unwrap();
            partial += usize::from(name.ends_with(".part"));
        }
    }
    partial
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

/// Where a kill falls.
#[derive(Clone, Copy, Debug)]
enum Moment {
    Upload,
    Validating,
    Applying(f64),
}

struct Run {
    backend: Backend,
    rt: tokio::runtime::Runtime,
    setup: Setup,
    /// Two instances on PostgreSQL, one on SQLite; `None` while killed.
    servers: Vec<Option<Server>>,
    admin: String,
    token: String,
    deadline: Instant,
    rng: Rng,
    pg: Option<PgDb>,
    kills: Vec<String>,
}

impl Run {
    fn check_time(&self, what: &str) {
        assert!(
            Instant::now() < self.deadline,
            "{:?}: over the time budget while {what}",
            self.backend
        );
    }

    /// A live instance (the first one up).
    fn live(&self) -> &Server {
        self.servers
            .iter()
            .flatten()
            .next()
            .expect("an instance is up")
    }

    fn store(&self) -> Box<dyn Store> {
        match &self.pg {
            Some(db) => Box::new(muster_store_postgres::PostgresStore::open(&db.url()).unwrap()),
            None => Box::new(
                muster_store_sqlite::SqliteStore::open(&self.setup.data.join("muster.db")).unwrap(),
            ),
        }
    }

    fn import(&self, id: &str) -> Value {
        let url = format!("{}/api/v1/imports/{id}", self.live().url);
        let (status, v) = api(&self.rt, Method::GET, &url, &self.admin, None);
        assert_eq!(status, 200, "{v}");
        v
    }

    /// Uploads `body`; with `throttle`, spread over about that long (so a
    /// kill can land in the middle). Answers the import id, or `None` when
    /// the connection broke.
    fn upload(
        &self,
        to: &str,
        body: &'static [u8],
        key: &str,
        throttle: Option<Duration>,
    ) -> Option<String> {
        let url = format!("{to}/api/v1/imports?mapping=workday");
        let token = self.token.clone();
        let key = key.to_owned();
        let fut = async move {
            const CHUNK: usize = 64 * 1024;
            let chunks = body.len().div_ceil(CHUNK).max(1) as u32;
            let pause = throttle.map(|t| t / chunks);
            let stream = futures::stream::unfold(0usize, move |at| async move {
                if at >= body.len() {
                    return None;
                }
                if let Some(p) = pause {
                    tokio::time::sleep(p).await;
                }
                let end = (at + CHUNK).min(body.len());
                Some((
                    Ok::<_, std::io::Error>(bytes::Bytes::from_static(&body[at..end])),
                    end,
                ))
            });
            let resp = reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .header("content-type", "text/csv")
                .header("idempotency-key", key)
                .body(reqwest::Body::wrap_stream(stream))
                .send()
                .await
                .ok()?;
            let status = resp.status().as_u16();
            let v: Value = resp.json().await.ok()?;
            assert!(
                status == 202 || status == 200,
                "upload refused: {status} {v}"
            );
            v["id"].as_str().map(str::to_owned)
        };
        self.rt.block_on(fut)
    }

    /// Which live instance holds the import's lease, if any.
    fn holder(&self, id: &str) -> Option<usize> {
        let owner: Option<String> = match &self.pg {
            Some(db) => db
                .client()
                .query_one("SELECT lease_owner FROM imports WHERE id = $1", &[&id])
                .unwrap()
                .get(0),
            None => return self.servers[0].as_ref().map(|_| 0),
        };
        let owner = owner?;
        self.servers
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.instance() == owner))
    }

    fn is_final(state: &str) -> bool {
        matches!(
            state,
            "succeeded" | "succeeded_with_errors" | "failed" | "rejected"
        )
    }

    /// Waits for `moment` in the import's progress, then kills the
    /// instance working on it. `false` when the import ended first.
    fn kill_at(&mut self, id: &str, moment: Moment, rows: u64) -> bool {
        let pause = Duration::from_millis(self.rng.below(300));
        loop {
            self.check_time("waiting for the moment to kill");
            let v = self.import(id);
            let state = v["state"].as_str().unwrap().to_owned();
            if Self::is_final(&state) {
                return false;
            }
            let c = &v["counts"];
            let done = ["created", "updated", "unchanged", "deactivated"]
                .iter()
                .map(|k| c[k].as_u64().unwrap_or(0))
                .sum::<u64>();
            let now = match moment {
                Moment::Validating => state == "parsing",
                Moment::Applying(f) => state == "applying" && done as f64 >= f * rows as f64,
                Moment::Upload => true,
            };
            if now {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if matches!(moment, Moment::Validating) {
            std::thread::sleep(pause);
        }
        let Some(victim) = self.holder(id) else {
            return false;
        };
        let mut s = self.servers[victim].take().unwrap();
        s.kill();
        let state = self
            .store()
            .import_get(&TenantId::default_tenant(), id)
            .unwrap()
            .state
            .as_str()
            .to_owned();
        if Self::is_final(&state) {
            // It finished just before the kill: not a kill during an import.
            self.servers[victim] = Some(Server::start(&self.setup, &victim.to_string()));
            return false;
        }
        self.kills.push(format!("{moment:?}"));
        eprintln!(
            "  kill {} ({:?}, instance {victim}) during {moment:?}, import in state {state}",
            self.kills.len(),
            self.backend
        );
        match self.backend {
            Backend::Sqlite => {
                self.servers[victim] = Some(Server::start(&self.setup, "0"));
            }
            Backend::Postgres => {
                // The survivor must take the import over once the lease
                // has run out; only then does the dead one come back.
                let survivor = self.servers[1 - victim].as_ref().unwrap().instance();
                loop {
                    self.check_time("waiting for the other instance to take over");
                    let row = self
                        .store()
                        .import_get(&TenantId::default_tenant(), id)
                        .unwrap();
                    if Self::is_final(row.state.as_str()) {
                        break;
                    }
                    let owner: Option<String> = self
                        .pg
                        .as_ref()
                        .unwrap()
                        .client()
                        .query_one("SELECT lease_owner FROM imports WHERE id = $1", &[&id])
                        .unwrap()
                        .get(0);
                    if owner.as_deref() == Some(survivor.as_str()) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                self.servers[victim] = Some(Server::start(&self.setup, &victim.to_string()));
            }
        }
        true
    }
}

fn run_backend(backend: Backend) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let pg = match backend {
        Backend::Postgres => match pg_server() {
            Some(s) => Some(PgDb::create(&s)),
            None => return,
        },
        Backend::Sqlite => None,
    };
    let kills_wanted = env_u64("MUSTER_CRASH_KILLS", 4) as usize;
    let rows = env_u64("MUSTER_CRASH_ROWS", 20_000);
    let budget = Duration::from_secs(env_u64("MUSTER_CRASH_BUDGET_SECONDS", 1800));
    let seed = env_u64(
        "MUSTER_CRASH_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    );
    eprintln!(
        "crash test {backend:?}: seed {seed} (MUSTER_CRASH_SEED={seed} replays it), \
         {kills_wanted} kills, {rows} rows"
    );
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let files = [dir.path().join("v1.csv"), dir.path().join("v2.csv")];
    gen_file(&files[0], rows, seed, 0.0);
    gen_file(&files[1], rows, seed, 10.0);
    let bodies: [&'static [u8]; 2] = [
        Box::leak(std::fs::read(&files[0]).unwrap().into_boxed_slice()),
        Box::leak(std::fs::read(&files[1]).unwrap().into_boxed_slice()),
    ];
    let expected = [expected_states(&files[0]), expected_states(&files[1])];
    assert_eq!(expected[0].len() as u64, rows);

    let setup = Setup {
        data: dir.path().join("data"),
        database_url: pg.as_ref().map(PgDb::url),
        env: vec![
            ("MUSTER_IMPORT__LEASE_SECONDS".into(), "3".into()),
            ("MUSTER_IMPORT__BATCH_SIZE".into(), "1000".into()),
        ],
    };
    let instances = if backend == Backend::Postgres { 2 } else { 1 };
    let servers: Vec<Option<Server>> = (0..instances)
        .map(|i| Some(Server::start(&setup, &i.to_string())))
        .collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s0 = servers[0].as_ref().unwrap();
    let out = s0.run(PUT_WORKDAY_MAPPING);
    assert!(out.status.success(), "{}", text(&out));
    let creds = s0.client(&[IMPORTER, &["--token-policy", "ttl", "--ttl", "86400"]].concat());
    let token = rt.block_on(async {
        let v: Value = reqwest::Client::new()
            .post(format!("{}/oauth2/token", s0.url))
            .basic_auth(&creds.0, Some(&creds.1))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["access_token"].as_str().unwrap().to_owned()
    });
    let admin = setup.admin_token();
    let mut run = Run {
        backend,
        rt,
        setup,
        servers,
        admin,
        token,
        deadline: started + budget,
        rng: Rng(seed),
        pg,
        kills: Vec::new(),
    };

    let mut current: HashMap<String, (u64, u64)> = HashMap::new();
    let mut versions: HashMap<String, i64> = HashMap::new();
    let mut audit_seen = {
        let store = run.store();
        let mut last = 0;
        store
            .audit_walk(&TenantId::default_tenant(), &mut |r| {
                last = r.entry.seq;
                true
            })
            .unwrap();
        last
    };
    let mut round = 0usize;
    while run.kills.len() < kills_wanted {
        run.check_time("importing");
        let which = round % 2;
        round += 1;
        let key = format!("crash-round-{round}");
        let moment = match run.rng.below(10) {
            0..=2 => Moment::Upload,
            3..=4 => Moment::Validating,
            _ => Moment::Applying(0.05 + 0.9 * run.rng.unit()),
        };
        let t = Instant::now();
        let target = run.rng.below(instances as u64) as usize;
        let id = match moment {
            Moment::Upload => {
                let mut victim = run.servers[target].take().unwrap();
                let to = victim.url.clone();
                let throttle = Duration::from_millis(1500);
                let kill_after = Duration::from_millis(100 + run.rng.below(1300));
                let ids = std::thread::scope(|scope| {
                    let (run, key) = (&run, &key);
                    let up =
                        scope.spawn(move || run.upload(&to, bodies[which], key, Some(throttle)));
                    std::thread::sleep(kill_after);
                    victim.kill();
                    up.join().unwrap()
                });
                drop(victim);
                // What the kill left in the spool (a partial upload, or one
                // renamed into place whose import never committed) goes when
                // an instance starts, once older than the grace period: aged
                // past it here, as if the restart came an hour later.
                let uploads = run.setup.data.join("uploads");
                let partial = age_spool(&uploads);
                run.kills.push("Upload".into());
                eprintln!(
                    "  kill {} ({backend:?}, instance {target}) during the upload ({})",
                    run.kills.len(),
                    if ids.is_some() {
                        "it had just completed"
                    } else {
                        "cut off"
                    }
                );
                run.servers[target] = Some(Server::start(&run.setup, &target.to_string()));
                let still: Vec<String> = spool(&uploads)
                    .into_iter()
                    .filter(|n| n.ends_with(".part"))
                    .collect();
                assert!(
                    still.is_empty(),
                    "round {round}: partial uploads left after the restart: {still:?}"
                );
                if partial > 0 {
                    eprintln!(
                        "  the kill left {partial} partial upload(s); gone after the restart"
                    );
                }
                // The client sends the file again, with the same key.
                let to = run.live().url.clone();
                run.upload(&to, bodies[which], &key, None)
                    .expect("the repeated upload is taken")
            }
            _ => {
                let to = run.servers[target].as_ref().unwrap().url.clone();
                let id = run
                    .upload(&to, bodies[which], &key, None)
                    .expect("the upload is taken");
                // One kill, sometimes two, while this import runs.
                let mut m = moment;
                for _ in 0..1 + run.rng.below(2) {
                    if run.kills.len() >= kills_wanted || !run.kill_at(&id, m, rows) {
                        break;
                    }
                    m = Moment::Applying(0.05 + 0.9 * run.rng.unit());
                }
                id
            }
        };
        // The import completes.
        let info = loop {
            run.check_time("waiting for the import to finish");
            let v = run.import(&id);
            if Run::is_final(v["state"].as_str().unwrap()) {
                break v;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(info["state"], "succeeded", "round {round}: {info}");
        let c = &info["counts"];
        let n = |k: &str| c[k].as_u64().unwrap();
        assert_eq!(n("rows_total"), rows, "{info}");
        assert_eq!(
            n("created") + n("updated") + n("unchanged") + n("deactivated"),
            rows,
            "round {round}: every row counted once: {info}"
        );

        // The expected state after this import, and who it changed.
        let next = &expected[which];
        let changed: HashSet<&String> = next
            .iter()
            .filter(|(k, v)| current.get(*k) != Some(v))
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            n("created") + n("updated") + n("deactivated"),
            changed.len() as u64,
            "round {round}: {info}"
        );
        for k in &changed {
            *versions.entry((*k).clone()).or_insert(0) += 1;
        }
        current = next.clone();

        // People equal the expected state exactly.
        let store = run.store();
        let tenant = TenantId::default_tenant();
        let mut seen = 0u64;
        let mut after: Option<String> = None;
        loop {
            let page = store.person_list(&tenant, after.as_deref(), 1000).unwrap();
            for p in &page {
                let id = p.external_id.as_str();
                assert_eq!(
                    Some(&digest(&p.state)),
                    current.get(id),
                    "round {round}: person {id} differs from the expected state"
                );
                assert_eq!(p.version, versions[id], "round {round}: version of {id}");
                seen += 1;
            }
            if page.len() < 1000 {
                break;
            }
            after = page.last().map(|p| p.external_id.as_str().to_owned());
        }
        assert_eq!(seen, rows, "round {round}: the number of people");
        // Each changed person has exactly one audit entry from this import.
        let source = format!("import:{id}");
        let mut entries: HashMap<String, u32> = HashMap::new();
        loop {
            let page = store.audit_list(&tenant, audit_seen, 1000).unwrap();
            for r in &page {
                audit_seen = r.entry.seq;
                if let Some(p) = &r.entry.person {
                    assert_eq!(
                        r.entry.source, source,
                        "round {round}: an entry from elsewhere"
                    );
                    *entries.entry(p.clone()).or_insert(0) += 1;
                }
            }
            if page.len() < 1000 {
                break;
            }
        }
        drop(store);
        let twice: Vec<_> = entries.iter().filter(|(_, n)| **n != 1).collect();
        assert!(
            twice.is_empty(),
            "round {round}: people audited more than once: {}",
            twice.len()
        );
        assert_eq!(
            entries.len(),
            changed.len(),
            "round {round}: audited people"
        );
        assert!(
            entries.keys().all(|k| changed.contains(k)),
            "round {round}: audited but unchanged"
        );
        // The spool is empty: the upload went with the import's end, and
        // validation's index (crates/muster-server/src/row_index.rs) and
        // partial uploads are gone, even those a kill left behind.
        let left = spool(&run.setup.data.join("uploads"));
        assert!(
            left.is_empty(),
            "round {round}: files left in the uploads directory: {left:?}"
        );
        // The chain verifies.
        let out = run.setup.audit_verify();
        assert!(out.status.success(), "round {round}: {}", text(&out));
        eprintln!(
            "  round {round} ({backend:?}): import {id} of v{} succeeded in {:.1}s, {} changed, checked",
            which + 1,
            t.elapsed().as_secs_f64(),
            changed.len()
        );
    }
    eprintln!(
        "crash test {backend:?}: {} kills ({} during upload) over {round} imports of {rows} rows, \
         all checks passed, {:.0}s, seed {seed}",
        run.kills.len(),
        run.kills.iter().filter(|k| k.as_str() == "Upload").count(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn sqlite_survives_sigkill_during_imports() {
    run_backend(Backend::Sqlite);
}

#[test]
fn postgres_with_two_instances_survives_sigkill_of_the_one_working() {
    run_backend(Backend::Postgres);
}
