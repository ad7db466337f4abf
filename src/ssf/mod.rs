//! OpenID Shared Signals (SSF 1.0) receiver for OpenID Connect directories: Security Event
//! Tokens pushed to us (RFC 8935) or polled (RFC 8936) are verified against the
//! transmitter's keys, refused when replayed, and their CAEP and RISC events become change
//! signals (suspend, lift, end sessions, lapse keys) about the people they name.

pub mod events;
pub mod set;
pub mod transmitter;
