//! Background work: the import worker, effective dates, webhook deliveries,
//! instance heartbeats and the upload spool.
pub(crate) mod cluster;
pub(crate) mod schedule;
pub(crate) mod spool;
pub(crate) mod webhooks;
pub(crate) mod worker;
