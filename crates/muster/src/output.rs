//! Printing: compact aligned tables and lines for people, the API's own
//! JSON for scripts (`--json`), and one-line error messages on stderr.
use chrono::{DateTime, SecondsFormat, Utc};
use muster_client::ClientError;
use muster_proto::{ImportCounts, ImportInfo, RowErrorInfo};
use serde::Serialize;

/// Prints `v` as pretty JSON on stdout.
pub fn print_json<T: Serialize>(v: &T) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("muster: cannot print JSON: {e}"),
    }
}

/// Rows as aligned columns under a header.
pub fn table_text(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let parts: Vec<String> = cells
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        parts.join("  ").trim_end().to_owned()
    };
    let mut out = line(&mut header.iter().copied());
    out.push('\n');
    for r in rows {
        out.push_str(&line(&mut r.iter().map(String::as_str)));
        out.push('\n');
    }
    out
}

pub fn table(header: &[&str], rows: &[Vec<String>]) {
    print!("{}", table_text(header, rows));
}

/// An optional value, `-` when absent.
pub fn opt(s: &Option<String>) -> String {
    s.clone().unwrap_or_else(|| "-".into())
}

/// A time to the second, in UTC.
pub fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub fn counts_line(c: &ImportCounts) -> String {
    format!(
        "{} rows: {} created, {} updated, {} unchanged, {} deactivated, {} failed",
        c.rows_total, c.created, c.updated, c.unchanged, c.deactivated, c.failed
    )
}

pub const IMPORT_HEADER: [&str; 6] = ["ID", "STATE", "CREATED", "CLIENT", "MAPPING", "COUNTS"];

pub fn import_row(i: &ImportInfo) -> Vec<String> {
    vec![
        i.id.clone(),
        format!(
            "{}{}",
            i.state.as_str(),
            if i.dry_run { " (dry run)" } else { "" }
        ),
        time(&i.created_at),
        i.client_id.clone(),
        format!("{}@{}", i.mapping, i.mapping_version),
        counts_line(&i.counts),
    ]
}

pub fn print_row_errors(errors: &[RowErrorInfo]) {
    let rows: Vec<Vec<String>> = errors
        .iter()
        .map(|e| {
            vec![
                e.row.to_string(),
                opt(&e.column),
                opt(&e.attribute),
                e.code.clone(),
                e.message.clone(),
            ]
        })
        .collect();
    table(&["ROW", "COLUMN", "ATTRIBUTE", "CODE", "MESSAGE"], &rows);
}

/// Reports a failed call on stderr: one line (the problem's detail and
/// code), then the field-level problems a 422 may list. No secret can
/// appear: `ClientError` never holds one.
pub fn report_error(who: &str, e: &ClientError) {
    eprintln!("{who}: {e}");
    if let ClientError::Api { problem, .. } = e {
        for f in &problem.errors {
            let place = match (&f.column, &f.attribute) {
                (Some(c), _) => format!(" {c}"),
                (None, Some(a)) => format!(" {a}"),
                (None, None) => String::new(),
            };
            eprintln!("  -{place}: {} ({})", f.message, f.code);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_and_trim_trailing_space() {
        let t = table_text(
            &["ID", "STATE"],
            &[
                vec!["a".into(), "succeeded".into()],
                vec!["longer-id".into(), "".into()],
            ],
        );
        assert_eq!(t, "ID         STATE\na          succeeded\nlonger-id\n");
    }

    #[test]
    fn counts_read_as_one_line() {
        let c = ImportCounts {
            rows_total: 50,
            created: 48,
            failed: 2,
            ..ImportCounts::default()
        };
        assert_eq!(
            counts_line(&c),
            "50 rows: 48 created, 0 updated, 0 unchanged, 0 deactivated, 2 failed"
        );
    }
}
