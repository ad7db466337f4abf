//! The fast tier: the API's and the pages' rules, driven in-process through the router with
//! the built-in directory and a movable clock; no TCP listener, no system peer. Plain
//! `cargo test` runs it; the peers' own tests are in `tests/e2e` (`scripts/test.sh`).

mod app;
#[path = "../e2e/harness/arrange.rs"]
mod arrange;
#[path = "../e2e/harness/db.rs"]
mod db;
#[path = "../e2e/harness/log.rs"]
mod log;
#[path = "../e2e/harness/scanner.rs"]
mod scanner;

mod access_keys;
mod admin;
mod events;
mod input;
mod jobs;
mod key_report;
mod logins;
mod openapi;
mod pages;
mod request_path;
mod scim;
mod secret_scanning;
mod security_events;
mod service_accounts;
mod signals;
mod sync;
mod validity;
mod windows;
