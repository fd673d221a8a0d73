//! `muster migrate`: moves a whole installation from the embedded SQLite
//! database to PostgreSQL (docs/operations.md#muster-migrate). The work is the store crates'
//! (`muster_store::transfer`); this is the command line around it.
//!
//! Stop the gateway first: the source is read in one snapshot, and what a
//! running gateway writes after it would not be moved. The target must be
//! a freshly created, empty database; everything is written in one
//! transaction, so a failed run leaves it empty and can be run again.
//! Keep the data directory (`master.key`, `uploads/`): sealed secrets move
//! as sealed bytes and stay readable only with the same master key.
use clap::Args;
use muster_store::transfer;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The installation to move: sqlite://PATH (e.g. sqlite://muster-data/muster.db).
    #[arg(long, value_name = "URL")]
    from: String,
    /// Where to: postgres://USER@HOST:PORT/DB, an existing, empty database.
    /// A password may come from MUSTER_MIGRATE_TO instead of the command line.
    #[arg(
        long,
        value_name = "URL",
        env = "MUSTER_MIGRATE_TO",
        hide_env_values = true
    )]
    to: String,
}

/// The URL without its password, for messages.
fn redacted(url: &str) -> String {
    muster_server::config::DatabaseUrl::new(url).redacted()
}

pub fn run(args: MigrateArgs) -> ExitCode {
    let Some(path) = args
        .from
        .strip_prefix("sqlite://")
        .filter(|p| !p.is_empty())
    else {
        eprintln!("muster: --from must be a sqlite://PATH URL");
        return ExitCode::from(2);
    };
    if !(args.to.starts_with("postgres://") || args.to.starts_with("postgresql://")) {
        eprintln!(
            "muster: --to must be a postgres:// URL (got {})",
            redacted(&args.to)
        );
        return ExitCode::from(2);
    }
    let started = std::time::Instant::now();
    let path = PathBuf::from(path);
    let result = (|| -> Result<transfer::Report, String> {
        let mut source =
            muster_store_sqlite::transfer::SqliteSource::open(&path, chrono::Utc::now())
                .map_err(|e| format!("reading {}: {e}", path.display()))?;
        let target = muster_store_postgres::transfer::PostgresTarget::open(&args.to)
            .map_err(|e| format!("opening {}: {e}", redacted(&args.to)))?;
        transfer::run(&mut source, Box::new(target)).map_err(|e| e.to_string())
    })();
    match result {
        Ok(report) => {
            println!("{:<16} {:>10} {:>10}", "table", "moved", "left out");
            for (name, moved, left_out) in &report.tables {
                println!("{name:<16} {moved:>10} {left_out:>10}");
            }
            println!(
                "moved {} to {} in {:.1}s; start `muster serve` with MUSTER_DATABASE_URL set to it and the same data directory",
                path.display(),
                redacted(&args.to),
                started.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("muster: migrate: {e}; nothing was written to the target");
            ExitCode::FAILURE
        }
    }
}
