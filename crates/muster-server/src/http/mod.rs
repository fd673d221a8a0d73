//! What every request and every outbound call shares: JSON and body
//! limits, the listener, and the destination rule for outbound requests.
pub(crate) mod bodies;
pub(crate) mod json;
pub(crate) mod outbound;
pub(crate) mod transport;
