//! End-to-end tests: the daemon with its real peers, driven the way users and admins drive it.

mod harness;

mod access_keys;
mod ad;
mod ad_feed;
mod ad_last_logon;
mod admin;
mod change_feed;
mod cli;
mod client;
mod connections;
mod dc_discovery;
mod events;
mod fuzz;
#[cfg(feature = "kerberos")]
mod kerberos;
mod key_controls;
mod ldap_directory;
mod ldap_feed;
mod ldap_login;
mod management;
mod notifications;
mod oidc;
mod proxy;
mod request_path;
mod scim;
mod scim_conformance;
mod sdk;
mod secret_scanning;
mod service_accounts;
mod ssf;
mod sync;
mod sync_scale;
mod systemd;
mod tls;
mod ui;
mod windows_events;
