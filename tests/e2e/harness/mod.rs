//! Test harness: real peers (slapd) and the daemon, each on free 127.0.0.1 ports and stopped
//! on drop, also when a test fails.

pub mod arrange;
pub mod daemon;
pub mod db;
pub mod dns;
pub mod kdc;
pub mod log;
pub mod nginx;
pub mod oidc;
pub mod process;
pub mod samba;
pub mod scanner;
pub mod slapd;
pub mod smtp;
pub mod ssf;
pub mod webhook;
