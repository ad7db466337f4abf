//! accesskeyd: access keys for scripts, notebooks and OData clients, bound to people in the
//! company directory and valid only while their owner keeps logging in interactively.

pub mod app;
pub mod audit;
pub mod auth;
pub mod auth_cache;
pub mod caller;
pub mod cli;
pub mod clock;
pub mod config;
pub mod directory;
pub mod error;
pub mod events;
pub mod hearing;
pub mod http;
pub mod jobs;
pub mod kerberos;
pub mod key_format;
pub mod keys;
pub mod leadership;
pub mod metrics;
pub mod notify;
pub mod options;
pub mod passwords;
pub mod revocation;
pub mod scim;
pub mod secret;
pub mod service_accounts;
pub mod services;
pub mod sessions;
pub mod store;
pub mod sync;
pub mod text;
pub mod throttle;
pub mod transfer;
pub mod users;
pub mod validity;
