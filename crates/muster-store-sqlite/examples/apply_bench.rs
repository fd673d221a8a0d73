//! Measures `apply_batch` alone: N new people in batches, then the same
//! again (unchanged). `cargo run --release --example apply_bench -- 100000`
#![allow(clippy::unwrap_used, clippy::expect_used)]
use muster_core::person::Incoming;
use muster_core::policy::WritePolicy;
use muster_core::{AttrValue, ExternalId, TenantId};
use muster_store::prelude::*;
use muster_store::{BatchItem, WriteContext};
use muster_store_sqlite::SqliteStore;
use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("b.db")).unwrap();
    s.bootstrap([0; 32], chrono::Utc::now()).unwrap();
    let ctx = WriteContext {
        tenant: TenantId::default_tenant(),
        principal: "client:bench".into(),
        on_behalf_of: None,
        source: "import:bench".into(),
        policy: WritePolicy::allow_all(),
        now: chrono::Utc::now(),
        source_system: None,
    };
    let make = |i: usize| {
        let mut inc = Incoming::new(ExternalId::parse(&format!("E{i:07}")).unwrap());
        for (k, v) in [
            ("given_name", "Ada"),
            ("family_name", "Lovelace"),
            ("display_name", "Ada Lovelace"),
            ("email", "ada.lovelace@example.com"),
            ("department", "Engineering"),
            ("job_title", "Engineer"),
            ("manager_external_id", "E0000001"),
            ("location", "London"),
            ("employment_status", "active"),
            ("hire_date", "2015-01-01"),
        ] {
            inc.attrs.insert(k.into(), Some(AttrValue::string(v)));
        }
        inc.attrs.insert("termination_date".into(), None);
        inc.roles = Some(["employee".to_string(), "vpn".to_string()].into());
        BatchItem::new(i as u64, inc)
    };
    for pass in ["new", "unchanged"] {
        let t = Instant::now();
        let mut build = std::time::Duration::ZERO;
        for start in (0..n).step_by(5000) {
            let b0 = Instant::now();
            let batch: Vec<BatchItem> = (start..(start + 5000).min(n)).map(make).collect();
            build += b0.elapsed();
            s.apply_batch(&ctx, batch, None, false).unwrap();
        }
        let el = t.elapsed();
        println!(
            "{pass}: {n} rows in {:.2}s ({:.1} us/row; building {:.2}s)",
            el.as_secs_f64(),
            el.as_secs_f64() * 1e6 / n as f64,
            build.as_secs_f64()
        );
    }
}
