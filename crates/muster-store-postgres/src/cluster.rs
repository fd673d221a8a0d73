//! [`Cluster`] on PostgreSQL. What instances sharing the database keep
//! together: how the backend reads, live instances, failed-authentication
//! counters, and master-key re-sealing.
use crate::*;

impl Cluster for PostgresStore {
    fn pool_status(&self) -> muster_store::PoolStatus {
        self.pool.status()
    }

    fn sealed_all(&self) -> Result<Vec<SealedValue>> {
        self.pool.run(rotate::sealed_all)
    }

    fn sealed_replace(&self, column: SealedColumn, swaps: Vec<SealedSwap>) -> Result<u64> {
        self.pool
            .write(|s| rotate::sealed_replace(s, column, &swaps))
    }

    fn auth_failure_record(
        &self,
        keys: &[String],
        window: ChronoDuration,
        now: DateTime<Utc>,
    ) -> Result<Vec<(u32, DateTime<Utc>)>> {
        self.pool
            .run(|s| rotate::failure_record(s, keys, window, now))
    }

    fn auth_failures_over(
        &self,
        max: u32,
        window: ChronoDuration,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, DateTime<Utc>)>> {
        self.pool
            .run(|s| rotate::failures_over(s, max, window, now))
    }

    fn instance_heartbeat(&self, id: &str, master_key_id: &str, now: DateTime<Utc>) -> Result<()> {
        self.pool
            .run(|s| rotate::heartbeat(s, id, master_key_id, now))
    }

    fn instance_list(&self, since: DateTime<Utc>) -> Result<Vec<InstanceRow>> {
        self.pool.run(|s| rotate::instances(s, since))
    }

    fn instance_remove(&self, id: &str) -> Result<()> {
        self.pool.run(|s| {
            s.exec("DELETE FROM instances WHERE id = $1", &[&id])
                .map(|_| ())
        })
    }
}
