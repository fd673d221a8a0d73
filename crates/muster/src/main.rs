//! `muster`: the gateway (`serve`), the scheduled worker that pushes HR
//! files (`push`), the admin client (`admin ...`) and operator tools
//! (`audit verify`).
//!
//! Exit codes: 0 success; 1 failure (refused, unreachable, rejected or
//! failed import, broken audit chain); 2 usage error (clap's); 3 `push`
//! succeeded with row errors. See `push` for the details.
#![forbid(unsafe_code)]

mod admin;
mod migrate;
mod output;
mod push;
mod push_config;
mod schedule;
mod subscription;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc: imports allocate and free many small values on two threads,
/// where it measured 25% faster than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "muster",
    version,
    about = "Personnel-data sync gateway",
    after_help = "Exit codes: 0 success; 1 failure; 2 usage error; 3 push succeeded with row errors."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway (embedded SQLite in ./muster-data unless configured).
    Serve {
        /// A TOML configuration file; MUSTER_* variables override it.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Log as JSON lines instead of human-readable text.
        #[arg(long)]
        log_json: bool,
    },
    /// Upload an HR export and report the result (the scheduled worker).
    Push(push::PushArgs),
    /// Manage tenants, clients, mappings, imports through the admin API.
    Admin(admin::AdminArgs),
    /// Operator tools for the audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Move a whole installation from SQLite to a fresh PostgreSQL database
    /// (stop the gateway first; the target must be empty).
    Migrate(migrate::MigrateArgs),
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check every tenant's hash chain straight from the database
    /// (exit 1 if any chain is broken).
    Verify {
        /// The gateway's TOML configuration file.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Print the results as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config, log_json } => serve(config, log_json),
        Command::Audit(AuditCommand::Verify {
            config,
            tenant,
            json,
        }) => audit_verify(config, tenant, json),
        Command::Push(args) => on_runtime(push::run(args)),
        Command::Admin(args) => on_runtime(admin::run(args)),
        Command::Migrate(args) => migrate::run(args),
    }
}

/// Runs a client command; one thread is plenty for one request at a time.
fn on_runtime(f: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(f),
        Err(e) => {
            eprintln!("muster: cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(config: Option<PathBuf>, log_json: bool) -> ExitCode {
    if log_json {
        // Read by the configuration layers and the log setup. Set while
        // the process has one thread, before any runtime exists.
        std::env::set_var("MUSTER_LOG_FORMAT", "json");
    }
    let cfg = match muster_server::config::Config::load(config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("muster: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("muster: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(muster_server::serve(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("muster: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// One line per tenant: "ok, N entries" or where the chain breaks.
fn verification_line(tenant: &str, v: &muster_proto::AuditVerification) -> String {
    if v.ok {
        format!("{tenant}: ok, {} entries", v.entries_verified)
    } else {
        format!(
            "{tenant}: BROKEN at entry {}: {} ({} entries verified before it)",
            v.first_bad_seq
                .map_or_else(|| "?".to_owned(), |s| s.to_string()),
            v.problem.as_deref().unwrap_or("unknown problem"),
            v.entries_verified
        )
    }
}

fn audit_verify(config: Option<PathBuf>, tenant: Option<String>, json: bool) -> ExitCode {
    let result = muster_server::config::Config::load(config.as_deref())
        .and_then(|cfg| muster_server::verify_audit(&cfg, tenant.as_deref()));
    let results = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("muster: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    if json {
        let v: Vec<serde_json::Value> = results
            .iter()
            .map(|(t, v)| serde_json::json!({ "tenant": t, "result": v }))
            .collect();
        output::print_json(&v);
    } else {
        for (t, v) in &results {
            println!("{}", verification_line(t, v));
        }
    }
    if results.iter().all(|(_, v)| v.ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("muster").chain(args.iter().copied()))
    }

    #[test]
    fn the_commands_parse() {
        for args in [
            &["serve"][..],
            &["serve", "--config", "m.toml", "--log-json"],
            &["audit", "verify", "--tenant", "default", "--json"],
            &["admin", "tenant", "create", "acme", "--name", "Acme"],
            &["admin", "--json", "tenant", "list"],
            &[
                "admin",
                "client",
                "create",
                "--role",
                "importer",
                "--token-policy",
                "one_time",
                "--ttl",
                "60",
                "--attributes",
                "email,department",
                "--grant-roles",
                "staff",
            ],
            &["admin", "client", "list", "--json"],
            &["admin", "client", "show", "hr"],
            &["admin", "client", "disable", "hr"],
            &["admin", "client", "enable", "hr"],
            &["admin", "client", "rotate", "hr", "--overlap", "0"],
            &["admin", "mapping", "put", "workday", "m.toml"],
            &["admin", "mapping", "show", "workday", "--version", "2"],
            &["admin", "mapping", "list"],
            &["admin", "mapping", "versions", "workday"],
            &[
                "admin",
                "import",
                "list",
                "--state",
                "succeeded_with_errors",
                "--limit",
                "5",
            ],
            &["admin", "import", "show", "i1"],
            &["admin", "import", "errors", "i1", "--limit", "5"],
            &["admin", "person", "show", "E1"],
            // The old name of person show.
            &["admin", "person", "get", "E1"],
            &["admin", "person", "list", "--limit", "10"],
            &["admin", "audit", "list", "--after", "10", "--limit", "5"],
            &[
                "admin",
                "--url",
                "http://gw:8080",
                "--token-file",
                "t",
                "audit",
                "verify",
            ],
            &["push", "f.csv", "--mapping", "hr"],
            &[
                "migrate",
                "--from",
                "sqlite://muster-data/muster.db",
                "--to",
                "postgres://postgres@127.0.0.1/muster",
            ],
        ] {
            if let Err(e) = parse(args) {
                panic!("{args:?}: {e}");
            }
        }
    }

    #[test]
    fn push_options_parse_into_typed_values() {
        let cli = parse(&[
            "push",
            "people.txt",
            "--mapping",
            "hr",
            "--mode",
            "snapshot",
            "--dry-run",
            "--wait",
            "60",
            "--format",
            "jsonl",
            "--delimiter",
            "tab",
            "--header-map",
            "A=B,C=D",
            "--header-map",
            "E=F",
            "--on-behalf-of",
            "jane",
            "--idempotency-key",
            "k1",
            "--json",
            "--url",
            "http://gw",
        ])
        .unwrap();
        let Command::Push(p) = cli.command else {
            panic!("not push");
        };
        assert_eq!(p.mode, Some(muster_client::ImportMode::Snapshot));
        assert_eq!(p.format, Some(muster_client::ImportFormat::Jsonl));
        assert_eq!(p.delimiter, Some('\t'));
        assert_eq!(p.header_map.len(), 2);
        assert_eq!(p.header_map[0]["C"], "D");
        assert_eq!(p.wait, Some(60));
        assert!(p.dry_run && p.json && !p.no_wait);
        let Command::Push(p) = parse(&["push", "f.csv", "--mapping", "hr"])
            .unwrap()
            .command
        else {
            panic!("not push");
        };
        assert_eq!(
            p.wait, None,
            "the default wait is applied with the config file"
        );
        // A SCIM file is read by the SCIM User mapping: no --mapping.
        let Command::Push(p) = parse(&["push", "users.json", "--format", "scim"])
            .unwrap()
            .command
        else {
            panic!("not push");
        };
        assert_eq!(p.format, Some(muster_client::ImportFormat::Scim));
        assert_eq!(p.mapping, None);
    }

    #[test]
    fn usage_errors_are_refused_by_clap() {
        for (args, why) in [
            (&["push", "f.csv"][..], "--mapping is required"),
            (
                &["push", "f.csv", "--mapping", "hr", "--client-secret", "x"],
                "no secret on the command line",
            ),
            (
                &["push", "f.csv", "--mapping", "hr", "--mode", "merge"],
                "unknown mode",
            ),
            (
                &["push", "f.csv", "--mapping", "hr", "--format", "xml"],
                "unknown format",
            ),
            (
                &[
                    "push",
                    "f.csv",
                    "--mapping",
                    "hr",
                    "--header-map",
                    "nonsense",
                ],
                "bad header map",
            ),
            (
                &["push", "f.csv", "--mapping", "hr", "--delimiter", ";;"],
                "bad delimiter",
            ),
            (
                &[
                    "push",
                    "f.csv",
                    "--mapping",
                    "hr",
                    "--wait",
                    "5",
                    "--no-wait",
                ],
                "wait and no-wait",
            ),
            (
                &["admin", "--token", "mat_x", "tenant", "list"],
                "no token on the command line",
            ),
            (
                &[
                    "admin",
                    "client",
                    "create",
                    "--role",
                    "importer",
                    "--token-policy",
                    "forever",
                ],
                "unknown policy",
            ),
            (
                &["admin", "import", "list", "--state", "done"],
                "unknown state",
            ),
            (&["frobnicate"], "unknown command"),
        ] {
            match parse(args) {
                Ok(_) => panic!("{why}: {args:?} parsed"),
                Err(e) => assert_eq!(e.exit_code(), 2, "{why}: {e}"),
            }
        }
    }

    #[test]
    fn no_wait_alone_is_accepted() {
        let Command::Push(p) = parse(&["push", "f.csv", "--mapping", "hr", "--no-wait"])
            .unwrap()
            .command
        else {
            panic!("not push");
        };
        assert!(p.no_wait);
    }

    #[test]
    fn push_help_documents_the_exit_codes() {
        let e = parse(&["push", "--help"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::DisplayHelp);
        let help = e.to_string();
        for needle in [
            "Exit codes",
            "0  the import succeeded",
            "3  it succeeded",
            "2  usage error",
            "MUSTER_CLIENT_SECRET_FILE",
        ] {
            assert!(help.contains(needle), "{needle} missing from:\n{help}");
        }
    }

    #[test]
    fn verification_reads_as_one_line_per_tenant() {
        let ok = muster_proto::AuditVerification {
            ok: true,
            entries_verified: 12,
            first_bad_seq: None,
            problem: None,
        };
        assert_eq!(verification_line("default", &ok), "default: ok, 12 entries");
        let bad = muster_proto::AuditVerification {
            ok: false,
            entries_verified: 6,
            first_bad_seq: Some(7),
            problem: Some("hash mismatch".into()),
        };
        assert_eq!(
            verification_line("acme", &bad),
            "acme: BROKEN at entry 7: hash mismatch (6 entries verified before it)"
        );
    }
}
