//! `muster-gen`: writes a deterministic Workday-style HR export (see the
//! library docs) to a file or to standard output.
#![forbid(unsafe_code)]

use clap::Parser;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "muster-gen",
    version,
    about = "Deterministic Workday-style HR export generator"
)]
struct Args {
    /// Number of people (data rows).
    #[arg(long, default_value_t = 1000)]
    rows: u64,
    /// Seed: the same rows and seed always give the same file.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Share of people (0 to 100) changed against the same seed's file
    /// without changes.
    #[arg(long, default_value_t = 0.0, value_parser = percent)]
    change_percent: f64,
    /// Output file; standard output when absent.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn percent(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p),
        _ => Err("expected a number from 0 to 100".to_owned()),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let opts = muster_gen::GenOptions {
        rows: args.rows,
        seed: args.seed,
        change_percent: args.change_percent,
    };
    let result = match &args.out {
        Some(path) => std::fs::File::create(path).and_then(|f| {
            let mut w = BufWriter::with_capacity(1 << 20, f);
            muster_gen::write_export(&mut w, &opts).and_then(|()| w.flush())
        }),
        None => {
            let mut w = BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            muster_gen::write_export(&mut w, &opts).and_then(|()| w.flush())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("muster-gen: {e}");
            ExitCode::FAILURE
        }
    }
}
