//! [`Cluster`] on SQLite. What instances sharing the database keep together:
//! how the backend reads, live instances, failed-authentication counters, and
//! master-key re-sealing.
use crate::*;

impl Cluster for SqliteStore {
    /// The read connections (the writer is one thread of its own).
    fn pool_status(&self) -> muster_store::PoolStatus {
        let idle = self.readers.lock().unwrap_or_else(|p| p.into_inner()).len();
        muster_store::PoolStatus {
            in_use: self.reading.load(std::sync::atomic::Ordering::Relaxed) as u64,
            idle: idle as u64,
            max: 0,
        }
    }

    /// Reads go to a pool of read-only connections to a local file; in WAL
    /// mode they never wait for the writer.
    fn reads_are_local(&self) -> bool {
        true
    }

    fn sealed_all(&self) -> Result<Vec<SealedValue>> {
        self.read(rotate::sealed_all)
    }

    fn sealed_replace(&self, column: SealedColumn, swaps: Vec<SealedSwap>) -> Result<u64> {
        self.writer
            .write(move |conn| rotate::sealed_replace(conn, column, &swaps))
    }

    fn auth_failure_record(
        &self,
        keys: &[String],
        window: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<(u32, DateTime<Utc>)>> {
        let keys = keys.to_vec();
        self.writer
            .write(move |conn| rotate::failure_record(conn, &keys, window, now))
    }

    fn auth_failures_over(
        &self,
        max: u32,
        window: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, DateTime<Utc>)>> {
        let over = self.read(|conn| rotate::failures_over(conn, max, window, now))?;
        self.writer
            .write(move |conn| rotate::failures_purge(conn, window, now))?;
        Ok(over)
    }

    fn instance_heartbeat(&self, id: &str, master_key_id: &str, now: DateTime<Utc>) -> Result<()> {
        let (id, key) = (id.to_owned(), master_key_id.to_owned());
        self.writer
            .write(move |conn| rotate::heartbeat(conn, &id, &key, now))
    }

    fn instance_list(&self, since: DateTime<Utc>) -> Result<Vec<InstanceRow>> {
        self.read(|conn| rotate::instances(conn, since))
    }

    fn instance_remove(&self, id: &str) -> Result<()> {
        let id = id.to_owned();
        self.writer.write(move |conn| {
            conn.execute("DELETE FROM instances WHERE id = ?1", [&id])
                .map_err(be)?;
            Ok(())
        })
    }
}
