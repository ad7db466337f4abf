//! Finding the domain controllers whose `lastLogon` a sync reads, through a real DNS server
//! (dnsmasq) answering SRV `_ldap._tcp.dc._msdcs.<domain>`; and a run's report when the
//! controllers it found cannot be read.

use crate::harness::dns::{Dns, Srv};
use crate::harness::process::free_port;
use accesskeyd::config::{DomainControllers, LdapDirectoryConfig, SyncPolicy};
use accesskeyd::directory::ldap::LdapDirectory;
use accesskeyd::secret::Secret;

const SRV_NAME: &str = "_ldap._tcp.dc._msdcs.corp.test";

/// An Active Directory entry whose controllers are looked up in `dns`.
fn ad(url: &str, dns: &Dns, domain: &str) -> LdapDirectory {
    LdapDirectory::new(LdapDirectoryConfig {
        id: "corp".into(),
        name: "Corp AD".into(),
        url: url.into(),
        starttls: false,
        ca_file: None,
        bind_dn: Some("CN=svc,CN=Users,DC=corp,DC=test".into()),
        bind_password: Some(Secret::new("svc-pw")),
        user_base: "DC=corp,DC=test".into(),
        user_filter: "(&(objectCategory=person)(objectClass=user))".into(),
        username_attribute: "sAMAccountName".into(),
        id_attribute: "objectGUID".into(),
        display_name_attribute: "cn".into(),
        first_name_attribute: "givenName".into(),
        last_name_attribute: "sn".into(),
        email_attribute: "mail".into(),
        admin_group: None,
        timeout_seconds: 2,
        active_directory: true,
        required_group: None,
        last_login_attribute: Some("lastLogon".into()),
        domain_controllers: Some(DomainControllers::Srv {
            domain: domain.into(),
            dns_servers: vec![dns.addr()],
        }),
        page_size: 500,
        sync: SyncPolicy::default(),
        create_users_from_events: false,
        change_feed: None,
        windows_domains: Vec::new(),
    })
    .expect("valid config")
}

fn srv(target: &str, port: u16, priority: u16, weight: u16) -> Srv<'_> {
    Srv {
        name: SRV_NAME,
        target,
        port,
        priority,
        weight,
    }
}

#[tokio::test]
async fn the_controllers_dns_names_are_read_in_priority_order() {
    let dns = Dns::start(&[
        srv("dc3.corp.test", 389, 10, 100),
        srv("dc1.corp.test", 389, 0, 100),
        srv("dc2.corp.test", 3268, 0, 50),
    ]);
    let plain = ad("ldap://dc1.corp.test", &dns, "corp.test");
    assert_eq!(
        plain.domain_controllers().await,
        Some(Ok(vec![
            "ldap://dc1.corp.test:389".to_string(),
            "ldap://dc2.corp.test:3268".to_string(),
            "ldap://dc3.corp.test:389".to_string(),
        ]))
    );
    let tls = ad("ldaps://dc1.corp.test", &dns, "corp.test");
    assert_eq!(
        tls.domain_controllers().await,
        Some(Ok(vec![
            "ldaps://dc1.corp.test:636".to_string(),
            "ldaps://dc2.corp.test:636".to_string(),
            "ldaps://dc3.corp.test:636".to_string(),
        ])),
        "with ldaps:// every controller is reached on 636"
    );
}

#[tokio::test]
async fn a_domain_dns_does_not_know_is_reported_as_a_discovery_failure_and_reads_nothing() {
    let dns = Dns::start(&[srv("dc1.corp.test", 389, 0, 100)]);
    let other = ad("ldap://dc1.corp.test", &dns, "elsewhere.test");
    let found = other.domain_controllers().await.expect("configured");
    let err = found.expect_err("no SRV records for elsewhere.test");
    assert!(
        err.contains("_ldap._tcp.dc._msdcs.elsewhere.test"),
        "names what was asked: {err}"
    );
    let mut visited = 0;
    let read = other
        .last_logons_from_controllers(|_, _| visited += 1)
        .await;
    assert_eq!(visited, 0);
    assert!(read.reads.is_empty());
    let unread = read.unread();
    assert_eq!(unread.len(), 1, "{unread:?}");
    assert!(
        unread[0].starts_with("domain controller discovery: "),
        "{unread:?}"
    );
}

#[tokio::test]
async fn controllers_that_cannot_be_reached_are_each_reported_and_nothing_is_visited() {
    // Two controllers on closed loopback ports: both refuse the connection at once.
    let (p1, p2) = (free_port(), free_port());
    let dns = Dns::start(&[srv("localhost", p1, 0, 100), srv("localhost", p2, 0, 50)]);
    let dir = ad("ldap://localhost", &dns, "corp.test");
    let mut visited = 0;
    let read = dir.last_logons_from_controllers(|_, _| visited += 1).await;
    assert_eq!(visited, 0);
    assert_eq!(read.reads.len(), 2, "{read:?}");
    let unread = read.unread();
    assert_eq!(unread.len(), 2, "{unread:?}");
    for (line, port) in unread.iter().zip([p1, p2]) {
        assert!(
            line.starts_with(&format!("ldap://localhost:{port}: ")),
            "each names its controller and why: {line}"
        );
    }

    // `accesskeyd check-config` asks each controller the same way and names each failure.
    let checked = dir.check_controllers().await;
    let names: Vec<&str> = checked.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(
        names,
        [
            format!("ldap://localhost:{p1}"),
            format!("ldap://localhost:{p2}")
        ]
    );
    assert!(checked.iter().all(|(_, r)| r.is_err()), "{checked:?}");
}
