//! An import's bookkeeping (state, counts, row errors), fenced by the
//! import's lease (the worker: `false`, and nothing written, when `owner`
//! no longer holds it).
//!
//! A claim by another instance is an `UPDATE` of the import row, so a
//! fenced write either runs after it (and its `WHERE lease_owner = ..`
//! finds the row no longer ours) or holds the row until it commits (and
//! the claim, `FOR UPDATE SKIP LOCKED`, passes the row by until then).
use crate::pool::Sql;
use crate::Result;
use chrono::{DateTime, Utc};
use muster_store::{ImportState, RowErrorRecord};
use postgres::GenericClient;

pub(crate) fn set_state<C: GenericClient>(
    s: &mut Sql<'_, C>,
    id: &str,
    owner: Option<&str>,
    state: ImportState,
    error: Option<(&str, &str)>,
    now: DateTime<Utc>,
) -> Result<bool> {
    let fin = state.is_final();
    let (code, message) = error.unzip();
    let n = s.exec(
        "UPDATE imports SET state = $1, error_code = $2, error_message = $3, \
         updated_at = $4, finished_at = CASE WHEN $5 THEN $4 ELSE finished_at END, \
         lease_owner = CASE WHEN $5 THEN NULL ELSE lease_owner END, \
         lease_until = CASE WHEN $5 THEN NULL ELSE lease_until END \
         WHERE id = $6 AND ($7::text IS NULL OR lease_owner = $7)",
        &[&state.as_str(), &code, &message, &now, &fin, &id, &owner],
    )?;
    Ok(n == 1)
}

/// Forgets errors and counts; in a transaction (two statements).
pub(crate) fn reset<C: GenericClient>(
    s: &mut Sql<'_, C>,
    id: &str,
    owner: Option<&str>,
    now: DateTime<Utc>,
) -> Result<bool> {
    // The import row first: it locks the row, and when the row is not
    // ours no error is removed.
    let n = s.exec(
        "UPDATE imports SET rows_total = 0, created = 0, updated = 0, unchanged = 0, \
         deactivated = 0, failed = 0, checkpoint_row = 0, updated_at = $1 \
         WHERE id = $2 AND ($3::text IS NULL OR lease_owner = $3)",
        &[&now, &id, &owner],
    )?;
    if n == 0 && owner.is_some() {
        return Ok(false);
    }
    s.exec("DELETE FROM import_errors WHERE import_id = $1", &[&id])?;
    Ok(n == 1)
}

/// Adds row errors in their order; fenced, in a transaction that holds the
/// import row (`FOR SHARE`) from the check to the commit.
pub(crate) fn add_errors<C: GenericClient>(
    s: &mut Sql<'_, C>,
    id: &str,
    owner: Option<&str>,
    errors: &[RowErrorRecord],
) -> Result<bool> {
    if let Some(owner) = owner {
        let held = s.opt(
            "SELECT 1 FROM imports WHERE id = $1 AND lease_owner = $2 FOR SHARE",
            &[&id, &owner],
        )?;
        if held.is_none() {
            return Ok(false);
        }
    }
    if errors.is_empty() {
        return Ok(true);
    }
    let rows: Vec<i64> = errors.iter().map(|e| e.row as i64).collect();
    let cols: Vec<Option<&str>> = errors.iter().map(|e| e.column.as_deref()).collect();
    let attrs: Vec<Option<&str>> = errors.iter().map(|e| e.attribute.as_deref()).collect();
    let codes: Vec<&str> = errors.iter().map(|e| e.code.as_str()).collect();
    let msgs: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
    // One statement for the lot; WITH ORDINALITY keeps their order, which
    // is the order import_errors pages in.
    s.exec(
        "INSERT INTO import_errors (import_id, row_no, col, attribute, code, message) \
         SELECT $1, e.r, e.c, e.a, e.k, e.m \
         FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[]) \
         WITH ORDINALITY AS e(r, c, a, k, m, n) ORDER BY e.n",
        &[&id, &rows, &cols, &attrs, &codes, &msgs],
    )?;
    Ok(true)
}

pub(crate) fn set_total<C: GenericClient>(
    s: &mut Sql<'_, C>,
    id: &str,
    owner: Option<&str>,
    rows_total: u64,
    failed: u64,
) -> Result<bool> {
    let n = s.exec(
        "UPDATE imports SET rows_total = $1, failed = $2 \
         WHERE id = $3 AND ($4::text IS NULL OR lease_owner = $4)",
        &[&(rows_total as i64), &(failed as i64), &id, &owner],
    )?;
    Ok(n == 1)
}
