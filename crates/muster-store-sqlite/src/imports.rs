//! [`Imports`] on SQLite. Imports: their rows, the queue instances divide with
//! leases, and the lease holder's fenced bookkeeping.
use crate::*;

impl Imports for SqliteStore {
    fn import_create(&self, i: NewImport) -> Result<(ImportRow, bool)> {
        self.writer.write(move |conn| {
            if let Some(key) = &i.idempotency_key {
                let existing: Option<String> = conn
                    .query_row(
                        "SELECT id FROM imports WHERE principal_id = ?1 AND idempotency_key = ?2",
                        params![i.principal_id, key],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(be)?;
                if let Some(id) = existing {
                    let row =
                        get_import(conn, &id)?.ok_or(StoreError::NotFound { what: "import" })?;
                    return Ok((row, false));
                }
            }
            let options = serde_json::to_string(&i.options).map_err(json_err)?;
            conn.execute(
                "INSERT INTO imports (id, tenant_id, principal_id, client_id, on_behalf_of, \
                 idempotency_key, mapping, mapping_version, mode, dry_run, format, options, bytes, \
                 state, created_at, updated_at) VALUES \
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 'received', ?14, ?14)",
                params![
                    i.id,
                    i.tenant.as_str(),
                    i.principal_id,
                    i.client_id,
                    i.on_behalf_of,
                    i.idempotency_key,
                    i.mapping,
                    i.mapping_version,
                    i.mode.as_str(),
                    i.dry_run,
                    i.format,
                    options,
                    i.bytes as i64,
                    us(i.created_at)
                ],
            )
            .map_err(be)?;
            let row = get_import(conn, &i.id)?.ok_or(StoreError::NotFound { what: "import" })?;
            Ok((row, true))
        })
    }

    fn import_get(&self, tenant: &TenantId, id: &str) -> Result<ImportRow> {
        let row = self
            .read(|conn| get_import(conn, id))?
            .ok_or(StoreError::NotFound { what: "import" })?;
        if &row.tenant != tenant {
            return Err(StoreError::NotFound { what: "import" });
        }
        Ok(row)
    }

    fn import_list(&self, tenant: &TenantId, f: &ImportFilter) -> Result<Vec<ImportRow>> {
        self.read(|conn| {
            let sql = format!(
                "SELECT {IMPORT_COLS} FROM imports WHERE tenant_id = ?1 \
                 AND (?2 IS NULL OR state = ?2) AND (?3 IS NULL OR principal_id = ?3) \
                 AND (?4 IS NULL OR rowid < (SELECT rowid FROM imports WHERE id = ?4)) \
                 ORDER BY rowid DESC LIMIT ?5"
            );
            let mut s = conn.prepare_cached(&sql).map_err(be)?;
            let rows = s
                .query_map(
                    params![
                        tenant.as_str(),
                        f.state.map(ImportState::as_str),
                        f.principal_id,
                        f.before_id,
                        f.limit
                    ],
                    import_from_row,
                )
                .map_err(be)?;
            rows.map(|r| r.map_err(be)?.decode()).collect()
        })
    }

    fn import_by_key(&self, principal_id: &str, key: &str) -> Result<Option<ImportRow>> {
        self.read(|conn| {
            let sql = format!(
                "SELECT {IMPORT_COLS} FROM imports WHERE principal_id = ?1 AND idempotency_key = ?2"
            );
            conn.prepare_cached(&sql)
                .map_err(be)?
                .query_row(params![principal_id, key], import_from_row)
                .optional()
                .map_err(be)?
                .map(ImportRowRaw::decode)
                .transpose()
        })
    }

    fn import_pending(&self) -> Result<Vec<ImportRow>> {
        self.read(|conn| {
            let sql = format!(
                concat!(
                    "SELECT {cols} FROM imports WHERE state IN ",
                    muster_store::pending_states_sql!(),
                    " ORDER BY rowid"
                ),
                cols = IMPORT_COLS
            );
            let mut s = conn.prepare_cached(&sql).map_err(be)?;
            let rows = s.query_map([], import_from_row).map_err(be)?;
            rows.map(|r| r.map_err(be)?.decode()).collect()
        })
    }

    // One writer serialises claims, so no row locking is needed; the lease
    // still matters: a restarted instance (with a new id) takes its old
    // work back once the dead one's lease runs out, or at once after a
    // clean shutdown handed it back.
    fn import_claim_in(
        &self,
        owner: &str,
        lease: chrono::Duration,
        now: DateTime<Utc>,
        scope: ClaimScope,
    ) -> Result<Option<ImportRow>> {
        let owner = owner.to_owned();
        let (now, until) = (us(now), us(now + lease));
        let idle_only = scope == ClaimScope::IdleTenants;
        self.writer.write(move |conn| {
            // Tenants take turns (see `Imports::import_claim`): the running
            // count and the last end are read per candidate, through the
            // tenant index, and only for imports that could be claimed.
            let id: Option<String> = conn
                .prepare_cached(concat!(
                    "SELECT i.id FROM imports i \
                     WHERE i.state IN ",
                    muster_store::pending_states_sql!(),
                    " \
                       AND (i.lease_until IS NULL OR i.lease_until <= ?1) \
                       AND (NOT ?2 OR NOT EXISTS (SELECT 1 FROM imports r \
                            WHERE r.tenant_id = i.tenant_id AND r.lease_until > ?1 \
                              AND r.state IN ",
                    muster_store::pending_states_sql!(),
                    ")) \
                     ORDER BY (SELECT count(*) FROM imports r \
                                WHERE r.tenant_id = i.tenant_id AND r.lease_until > ?1 \
                                  AND r.state IN ",
                    muster_store::pending_states_sql!(),
                    "), \
                              (SELECT max(f.finished_at) FROM imports f \
                                WHERE f.tenant_id = i.tenant_id) NULLS FIRST, \
                              i.rowid \
                     LIMIT 1"
                ))
                .map_err(be)?
                .query_row(params![now, idle_only], |r| r.get(0))
                .optional()
                .map_err(be)?;
            let Some(id) = id else { return Ok(None) };
            conn.execute(
                "UPDATE imports SET lease_owner = ?1, lease_until = ?2 WHERE id = ?3",
                params![owner, until, id],
            )
            .map_err(be)?;
            get_import(conn, &id)
        })
    }

    fn import_renew(
        &self,
        id: &str,
        owner: &str,
        lease: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let (id, owner) = (id.to_owned(), owner.to_owned());
        let until = us(now + lease);
        self.writer.write(move |conn| {
            let n = conn
                .execute(
                    "UPDATE imports SET lease_until = ?1 WHERE id = ?2 AND lease_owner = ?3",
                    params![until, id, owner],
                )
                .map_err(be)?;
            Ok(n == 1)
        })
    }

    fn import_errors(
        &self,
        id: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<(u64, RowErrorRecord)>> {
        self.read(|conn| {
            let mut s = conn
                .prepare_cached(
                    "SELECT id, row, col, attribute, code, message FROM import_errors \
                     WHERE import_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
                )
                .map_err(be)?;
            let rows = s
                .query_map(params![id, after as i64, limit], |r| {
                    Ok((
                        r.get::<_, i64>(0)? as u64,
                        RowErrorRecord {
                            row: r.get::<_, i64>(1)? as u64,
                            column: r.get(2)?,
                            attribute: r.get(3)?,
                            code: r.get(4)?,
                            message: r.get(5)?,
                        },
                    ))
                })
                .map_err(be)?;
            rows.collect::<rusqlite::Result<_>>().map_err(be)
        })
    }

    fn import_error_rows(&self, id: &str) -> Result<Vec<u64>> {
        self.read(|conn| {
            let mut s = conn
                .prepare_cached(
                    "SELECT DISTINCT row FROM import_errors WHERE import_id = ?1 ORDER BY row",
                )
                .map_err(be)?;
            let rows = s
                .query_map([id], |r| Ok(r.get::<_, i64>(0)? as u64))
                .map_err(be)?;
            rows.collect::<rusqlite::Result<_>>().map_err(be)
        })
    }

    // The one writer runs each job whole, so the lease check and the write
    // cannot be split by a claim.
    fn import_reset_claimed(&self, id: &str, owner: &str, now: DateTime<Utc>) -> Result<bool> {
        self.reset(id, Some(owner), now)
    }

    fn import_set_state_claimed(
        &self,
        id: &str,
        owner: &str,
        state: ImportState,
        error: Option<(&str, &str)>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        self.set_state(id, Some(owner), state, error, now)
    }

    fn import_add_errors_claimed(
        &self,
        id: &str,
        owner: &str,
        errors: &[RowErrorRecord],
    ) -> Result<bool> {
        self.add_errors(id, Some(owner), errors)
    }

    fn import_set_warnings_claimed(
        &self,
        id: &str,
        owner: &str,
        warnings: &serde_json::Value,
    ) -> Result<bool> {
        let (id, owner) = (id.to_owned(), owner.to_owned());
        let warnings = serde_json::to_string(warnings).map_err(json_err)?;
        self.writer.write(move |conn| {
            let n = conn
                .prepare_cached(
                    "UPDATE imports SET options = json_set(options, '$.warnings', json(?1)) \
                     WHERE id = ?2 AND lease_owner = ?3",
                )
                .map_err(be)?
                .execute(params![warnings, id, owner])
                .map_err(be)?;
            Ok(n == 1)
        })
    }

    fn import_set_total_claimed(
        &self,
        id: &str,
        owner: &str,
        rows_total: u64,
        failed: u64,
    ) -> Result<bool> {
        self.set_total(id, Some(owner), rows_total, failed)
    }
}

fn get_import(conn: &Connection, id: &str) -> Result<Option<ImportRow>> {
    let sql = format!("SELECT {IMPORT_COLS} FROM imports WHERE id = ?1");
    conn.prepare_cached(&sql)
        .map_err(be)?
        .query_row([id], import_from_row)
        .optional()
        .map_err(be)?
        .map(ImportRowRaw::decode)
        .transpose()
}
