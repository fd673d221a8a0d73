//! Integration tests of muster-httpsig: the RFC's own test vectors first,
//! then one refusal per `VerifyError`.

mod helpers;
mod refusals;
mod rfc9421;
mod rfc9530;
mod round_trip;
