//! `lastLogon` from every domain controller: Active Directory keeps that attribute per
//! controller and never replicates it, so a person's last sign-in is the newest value any
//! controller holds. Controllers are listed (`domain_controllers`) or found by DNS SRV
//! (`domain_controllers_srv`); each is read in parallel with one paged search of two
//! attributes, and one that cannot be read is reported, never fatal.

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::Resolver;

use crate::config::{DomainControllers, MAX_DOMAIN_CONTROLLERS};
use crate::directory::DirectoryError;

use super::values::{parse_last_login, scope_filter};
use super::LdapDirectory;

/// What reading one controller came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerRead {
    /// The controller's URL.
    pub controller: String,
    /// Entries with a `lastLogon` read from it, or why it could not be read.
    pub outcome: Result<u64, String>,
}

/// The controllers a run read, and those it could not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ControllersRead {
    pub reads: Vec<ControllerRead>,
    /// Finding the controllers failed (DNS); nothing was read.
    pub discovery_error: Option<String>,
}

impl ControllersRead {
    /// `"url: reason"` for each controller that could not be read (and the discovery).
    pub fn unread(&self) -> Vec<String> {
        self.discovery_error
            .iter()
            .map(|e| format!("domain controller discovery: {e}"))
            .chain(self.reads.iter().filter_map(|r| match &r.outcome {
                Ok(_) => None,
                Err(e) => Some(format!("{}: {e}", r.controller)),
            }))
            .collect()
    }
}

/// One SRV answer: `target:port`, with its priority and weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvTarget {
    pub target: String,
    pub port: u16,
    pub priority: u16,
    pub weight: u16,
}

/// The URLs of the controllers SRV records name, in priority order (heavier first within a
/// priority), each once, at most [`MAX_DOMAIN_CONTROLLERS`]. The scheme follows the
/// directory's `url`: `ldaps://` reaches each controller on 636 (SRV records name the plain
/// LDAP port), `ldap://` on the port the record gives (with STARTTLS when configured). A
/// target of "." means "no such service" (RFC 2782) and is skipped.
pub fn controller_urls(mut targets: Vec<SrvTarget>, ldaps: bool) -> Vec<String> {
    targets.sort_by(|a, b| {
        (a.priority, std::cmp::Reverse(a.weight), &a.target).cmp(&(
            b.priority,
            std::cmp::Reverse(b.weight),
            &b.target,
        ))
    });
    let mut urls: Vec<String> = Vec::new();
    for t in targets {
        let host = t.target.trim_end_matches('.').to_ascii_lowercase();
        if host.is_empty() {
            continue;
        }
        let url = if ldaps {
            format!("ldaps://{host}:636")
        } else {
            format!("ldap://{host}:{}", t.port)
        };
        if !urls.contains(&url) {
            urls.push(url);
        }
        if urls.len() == MAX_DOMAIN_CONTROLLERS {
            break;
        }
    }
    urls
}

/// The SRV records of `_ldap._tcp.dc._msdcs.<domain>`, asked of `servers` (empty: the
/// system's resolver settings), each query within `timeout`.
async fn lookup_srv(
    domain: &str,
    servers: &[SocketAddr],
    timeout: Duration,
) -> Result<Vec<SrvTarget>, String> {
    let provider = TokioConnectionProvider::default();
    let mut builder = if servers.is_empty() {
        Resolver::builder(provider).map_err(|e| format!("the system's resolver settings: {e}"))?
    } else {
        let mut config = ResolverConfig::new();
        for addr in servers {
            config.add_name_server(NameServerConfig::new(*addr, Protocol::Udp));
            config.add_name_server(NameServerConfig::new(*addr, Protocol::Tcp));
        }
        Resolver::builder_with_config(config, provider)
    };
    let opts = builder.options_mut();
    opts.timeout = timeout;
    opts.attempts = 2;
    let resolver = builder.build();
    // Fully qualified: search domains and ndots must not turn it into another name.
    let name = format!("_ldap._tcp.dc._msdcs.{domain}.");
    let answer = resolver
        .srv_lookup(name.as_str())
        .await
        .map_err(|e| format!("SRV {name}: {e}"))?;
    Ok(answer
        .iter()
        .map(|srv| SrvTarget {
            target: srv.target().to_utf8(),
            port: srv.port(),
            priority: srv.priority(),
            weight: srv.weight(),
        })
        .collect())
}

impl LdapDirectory {
    /// The same directory reached at another server (a domain controller): same bind, TLS
    /// settings and timeout.
    fn at(&self, url: &str) -> LdapDirectory {
        let mut cfg = self.cfg.clone();
        cfg.url = url.to_owned();
        LdapDirectory {
            cfg,
            tls: self.tls.clone(),
            timeout: self.timeout,
            dirsync_object_security: AtomicBool::new(false),
        }
    }

    /// The controllers `lastLogon` is read from: listed, or found by SRV now (so a controller
    /// added to the domain is read from the next run on). None without either setting.
    pub async fn domain_controllers(&self) -> Option<Result<Vec<String>, String>> {
        match self.cfg.domain_controllers.as_ref()? {
            DomainControllers::Listed(urls) => Some(Ok(urls.clone())),
            DomainControllers::Srv {
                domain,
                dns_servers,
            } => Some(
                lookup_srv(domain, dns_servers, self.timeout)
                    .await
                    .and_then(|targets| {
                        let urls = controller_urls(targets, self.cfg.uses_ldaps());
                        if urls.is_empty() {
                            Err(format!(
                                "no domain controller in the SRV records of {domain}"
                            ))
                        } else {
                            Ok(urls)
                        }
                    }),
            ),
        }
    }

    /// For `check-config`: each controller `lastLogon` would be read from, and whether the
    /// service account can bind there and see `user_base` (in parallel). Empty without
    /// controllers; a failed discovery is one entry naming it.
    pub async fn check_controllers(&self) -> Vec<(String, Result<(), String>)> {
        match self.domain_controllers().await {
            None => Vec::new(),
            Some(Err(e)) => vec![("domain controller discovery".to_owned(), Err(e))],
            Some(Ok(urls)) => {
                join_all(urls.into_iter().map(|url| async move {
                    let result = self.at(&url).check().await.map_err(|e| e.to_string());
                    (url, result)
                }))
                .await
            }
        }
    }

    /// Reads `lastLogon` of every user (`user_filter`, with a value) from each controller in
    /// parallel, calling `visit(external id, time)` for every value; the caller keeps the
    /// newest. A controller that cannot be read is reported in the answer; what it sent
    /// before failing was still visited, which is harmless: a value only ever moves a
    /// last login forward.
    pub async fn last_logons_from_controllers(
        &self,
        visit: impl FnMut(&str, DateTime<Utc>) + Send,
    ) -> ControllersRead {
        let urls = match self.domain_controllers().await {
            None => return ControllersRead::default(),
            Some(Err(e)) => {
                tracing::warn!(directory = %self.cfg.id, "domain controller discovery failed: {e}");
                return ControllersRead {
                    reads: Vec::new(),
                    discovery_error: Some(e),
                };
            }
            Some(Ok(urls)) => urls,
        };
        let visit = Mutex::new(visit);
        let filter = scope_filter(&self.cfg.user_filter, Some("(lastLogon>=1)".to_owned()));
        let reads = urls.iter().map(|url| {
            let (visit, filter) = (&visit, &filter);
            async move {
                let dc = self.at(url);
                let attrs = [dc.cfg.id_attribute.as_str(), "lastLogon"];
                let outcome = dc
                    .paged_read("lastLogon read", filter, &attrs, |entry| {
                        let id = dc.external_id(&entry)?;
                        let Some(value) = entry.text("lastLogon") else {
                            return Ok(());
                        };
                        let at = parse_last_login(&value).map_err(|()| {
                            DirectoryError::Unavailable(format!(
                                "entry {} has an unreadable lastLogon value {value:?}",
                                entry.dn
                            ))
                        })?;
                        if let Some(at) = at {
                            // The visitors run in this one task, one at a time: the lock is
                            // never contended, a poisoned one only means a visitor panicked.
                            let mut v = visit.lock().unwrap_or_else(|p| p.into_inner());
                            (*v)(&id, at);
                        }
                        Ok(())
                    })
                    .await
                    .map(|stats| stats.entries)
                    .map_err(|e| e.to_string());
                if let Err(e) = &outcome {
                    tracing::warn!(directory = %self.cfg.id, controller = %url, "lastLogon not read from this domain controller: {e}");
                }
                ControllerRead {
                    controller: url.clone(),
                    outcome,
                }
            }
        });
        ControllersRead {
            reads: join_all(reads).await,
            discovery_error: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn srv(target: &str, port: u16, priority: u16, weight: u16) -> SrvTarget {
        SrvTarget {
            target: target.into(),
            port,
            priority,
            weight,
        }
    }

    #[test]
    fn srv_answers_become_urls_in_priority_order_each_once() {
        let answers = vec![
            srv("dc3.corp.example.", 389, 10, 100),
            srv("DC1.corp.example.", 389, 0, 50),
            srv("dc2.corp.example.", 3268, 0, 100),
            srv("dc1.corp.example.", 389, 0, 10),
            srv(".", 0, 0, 0),
        ];
        assert_eq!(
            controller_urls(answers.clone(), false),
            [
                "ldap://dc2.corp.example:3268",
                "ldap://dc1.corp.example:389",
                "ldap://dc3.corp.example:389"
            ]
        );
        assert_eq!(
            controller_urls(answers, true),
            [
                "ldaps://dc2.corp.example:636",
                "ldaps://dc1.corp.example:636",
                "ldaps://dc3.corp.example:636"
            ],
            "ldaps:// reaches every controller on 636, whatever port the record names"
        );
    }

    #[test]
    fn a_huge_srv_answer_is_cut_at_the_limit() {
        let many = (0..200)
            .map(|i| srv(&format!("dc{i}.corp.example."), 389, 0, 0))
            .collect();
        assert_eq!(controller_urls(many, false).len(), MAX_DOMAIN_CONTROLLERS);
    }

    #[test]
    fn unread_controllers_name_the_controller_and_the_reason() {
        let read = ControllersRead {
            reads: vec![
                ControllerRead {
                    controller: "ldap://dc1:389".into(),
                    outcome: Ok(12),
                },
                ControllerRead {
                    controller: "ldap://dc2:389".into(),
                    outcome: Err("connect: refused".into()),
                },
            ],
            discovery_error: None,
        };
        assert_eq!(read.unread(), ["ldap://dc2:389: connect: refused"]);
        let dns = ControllersRead {
            reads: vec![],
            discovery_error: Some("SRV x: no records".into()),
        };
        assert_eq!(
            dns.unread(),
            ["domain controller discovery: SRV x: no records"]
        );
    }
}
