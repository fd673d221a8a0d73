//! [`Imports`] on PostgreSQL. Imports: their rows, the queue instances divide
//! with leases, and the lease holder's fenced bookkeeping.
use crate::*;

impl Imports for PostgresStore {
    fn import_create(&self, i: NewImport) -> Result<(ImportRow, bool)> {
        self.pool.write(|s| {
            // ON CONFLICT on the idempotency index: a concurrent creator
            // with the same key makes this wait for its commit, then see
            // its row, so exactly one import is created per key.
            let inserted = s.opt(
                "INSERT INTO imports (id, tenant_id, principal_id, client_id, on_behalf_of, \
                 idempotency_key, mapping, mapping_version, mode, dry_run, format, options, bytes, \
                 state, created_at, updated_at) VALUES \
                 ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 'received', $14, $14) \
                 ON CONFLICT (principal_id, idempotency_key) WHERE idempotency_key IS NOT NULL \
                 DO NOTHING RETURNING id",
                &[
                    &i.id,
                    &i.tenant.as_str(),
                    &i.principal_id,
                    &i.client_id,
                    &i.on_behalf_of,
                    &i.idempotency_key,
                    &i.mapping,
                    &i.mapping_version,
                    &i.mode.as_str(),
                    &i.dry_run,
                    &i.format,
                    &i.options,
                    &(i.bytes as i64),
                    &i.created_at,
                ],
            )?;
            let (id, fresh) = match inserted {
                Some(_) => (i.id.clone(), true),
                None => {
                    let r = s.one(
                        "SELECT id FROM imports WHERE principal_id = $1 AND idempotency_key = $2",
                        &[&i.principal_id, &i.idempotency_key],
                    )?;
                    (get::<String>(&r, 0)?, false)
                }
            };
            let row = load_import(s, &id)?.ok_or(StoreError::NotFound { what: "import" })?;
            Ok((row, fresh))
        })
    }

    fn import_get(&self, tenant: &TenantId, id: &str) -> Result<ImportRow> {
        self.pool
            .run(|s| {
                s.opt(
                    import_select!("WHERE id = $1 AND tenant_id = $2"),
                    &[&id, &tenant.as_str()],
                )?
                .map(|r| to_import(&r))
                .transpose()
            })?
            .ok_or(StoreError::NotFound { what: "import" })
    }

    fn import_list(&self, tenant: &TenantId, f: &ImportFilter) -> Result<Vec<ImportRow>> {
        self.pool.run(|s| {
            s.query(
                import_select!(
                    "WHERE tenant_id = $1 \
                     AND ($2::text IS NULL OR state = $2) \
                     AND ($3::text IS NULL OR principal_id = $3) \
                     AND ($4::text IS NULL OR pos < (SELECT pos FROM imports WHERE id = $4)) \
                     ORDER BY pos DESC LIMIT $5"
                ),
                &[
                    &tenant.as_str(),
                    &f.state.map(ImportState::as_str),
                    &f.principal_id,
                    &f.before_id,
                    &i64::from(f.limit),
                ],
            )?
            .iter()
            .map(to_import)
            .collect()
        })
    }

    fn import_by_key(&self, principal_id: &str, key: &str) -> Result<Option<ImportRow>> {
        self.pool.run(|s| {
            s.opt(
                import_select!("WHERE principal_id = $1 AND idempotency_key = $2"),
                &[&principal_id, &key],
            )?
            .map(|r| to_import(&r))
            .transpose()
        })
    }

    fn import_pending(&self) -> Result<Vec<ImportRow>> {
        self.pool.run(|s| {
            s.query(
                import_select!(concat!(
                    "WHERE state IN ",
                    muster_store::pending_states_sql!(),
                    " \
                     ORDER BY pos"
                )),
                &[],
            )?
            .iter()
            .map(to_import)
            .collect()
        })
    }

    // Instances polling at once each get a different import: the candidate
    // row is locked `FOR UPDATE SKIP LOCKED`, so a concurrent claim skips it
    // and takes the next in turn. The turn order (see `Imports::import_claim`)
    // reads the running count and the last end per candidate through the
    // `(tenant_id, pos)` index; two instances may read the same counts at
    // once, which can only give one tenant a turn early, never an import
    // twice.
    fn import_claim_in(
        &self,
        owner: &str,
        lease: ChronoDuration,
        now: DateTime<Utc>,
        scope: ClaimScope,
    ) -> Result<Option<ImportRow>> {
        let until = now + lease;
        let idle_only = scope == ClaimScope::IdleTenants;
        self.pool.write(|s| {
            let row = s.opt(
                concat!(
                    "WITH next AS ( \
                   SELECT i.id FROM imports i \
                   WHERE i.state IN ",
                    muster_store::pending_states_sql!(),
                    " \
                     AND (i.lease_until IS NULL OR i.lease_until <= $2) \
                     AND (NOT $4 OR NOT EXISTS (SELECT 1 FROM imports r \
                          WHERE r.tenant_id = i.tenant_id AND r.lease_until > $2 \
                            AND r.state IN ",
                    muster_store::pending_states_sql!(),
                    ")) \
                   ORDER BY (SELECT count(*) FROM imports r \
                              WHERE r.tenant_id = i.tenant_id AND r.lease_until > $2 \
                                AND r.state IN ",
                    muster_store::pending_states_sql!(),
                    "), \
                            (SELECT max(f.finished_at) FROM imports f \
                              WHERE f.tenant_id = i.tenant_id) NULLS FIRST, \
                            i.pos \
                   LIMIT 1 FOR UPDATE OF i SKIP LOCKED) \
                 UPDATE imports i SET lease_owner = $1, lease_until = $3 \
                 FROM next WHERE i.id = next.id RETURNING i.id"
                ),
                &[&owner, &now, &until, &idle_only],
            )?;
            match row {
                Some(r) => {
                    let id: String = get(&r, 0)?;
                    load_import(s, &id)
                }
                None => Ok(None),
            }
        })
    }

    fn import_renew(
        &self,
        id: &str,
        owner: &str,
        lease: ChronoDuration,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let until = now + lease;
        self.pool.run(|s| {
            let n = s.exec(
                "UPDATE imports SET lease_until = $3 WHERE id = $1 AND lease_owner = $2",
                &[&id, &owner, &until],
            )?;
            Ok(n == 1)
        })
    }

    fn import_errors(
        &self,
        id: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<(u64, RowErrorRecord)>> {
        self.pool.run(|s| {
            s.query(
                "SELECT id, row_no, col, attribute, code, message FROM import_errors \
                 WHERE import_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                &[&id, &(after as i64), &i64::from(limit)],
            )?
            .iter()
            .map(|r| {
                Ok((
                    get::<i64>(r, 0)?.max(0) as u64,
                    RowErrorRecord {
                        row: get::<i64>(r, 1)?.max(0) as u64,
                        column: get(r, 2)?,
                        attribute: get(r, 3)?,
                        code: get(r, 4)?,
                        message: get(r, 5)?,
                    },
                ))
            })
            .collect()
        })
    }

    fn import_error_rows(&self, id: &str) -> Result<Vec<u64>> {
        self.pool.run(|s| {
            s.query(
                "SELECT DISTINCT row_no FROM import_errors WHERE import_id = $1 ORDER BY row_no",
                &[&id],
            )?
            .iter()
            .map(|r| Ok(get::<i64>(r, 0)?.max(0) as u64))
            .collect()
        })
    }

    fn import_reset_claimed(&self, id: &str, owner: &str, now: DateTime<Utc>) -> Result<bool> {
        self.pool.write(|s| fenced::reset(s, id, Some(owner), now))
    }

    fn import_set_state_claimed(
        &self,
        id: &str,
        owner: &str,
        state: ImportState,
        error: Option<(&str, &str)>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        self.pool
            .run(|s| fenced::set_state(s, id, Some(owner), state, error, now))
    }

    fn import_add_errors_claimed(
        &self,
        id: &str,
        owner: &str,
        errors: &[RowErrorRecord],
    ) -> Result<bool> {
        self.pool
            .write(|s| fenced::add_errors(s, id, Some(owner), errors))
    }

    fn import_set_warnings_claimed(
        &self,
        id: &str,
        owner: &str,
        warnings: &serde_json::Value,
    ) -> Result<bool> {
        self.pool.run(|s| {
            let n = s.exec(
                "UPDATE imports SET options = jsonb_set(options, '{warnings}', $1) \
                 WHERE id = $2 AND lease_owner = $3",
                &[warnings, &id, &owner],
            )?;
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
        self.pool
            .run(|s| fenced::set_total(s, id, Some(owner), rows_total, failed))
    }
}

fn load_import<C: GenericClient>(s: &mut Sql<'_, C>, id: &str) -> Result<Option<ImportRow>> {
    s.opt(import_select!("WHERE id = $1"), &[&id])?
        .map(|r| to_import(&r))
        .transpose()
}
