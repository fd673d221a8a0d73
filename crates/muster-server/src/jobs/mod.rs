//! Background work: the import worker, effective dates, deliveries to
//! subscriptions (the engine and its sinks), instance heartbeats and the
//! upload spool.
pub(crate) mod cluster;
pub(crate) mod delivery;
pub(crate) mod schedule;
pub(crate) mod sinks;
pub(crate) mod spool;
pub(crate) mod worker;
