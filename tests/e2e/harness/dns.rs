//! A real DNS server (Debian's `dnsmasq-base`) on a free 127.0.0.1 port, serving only the
//! SRV records a test gives it: no upstream servers, no /etc/hosts, so every other name is
//! refused and nothing leaves the machine. Killed on drop, also when a test fails.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::process::free_port;

const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// One SRV record: `name` -> `target:port` with a priority and weight.
pub struct Srv<'a> {
    pub name: &'a str,
    pub target: &'a str,
    pub port: u16,
    pub priority: u16,
    pub weight: u16,
}

pub struct Dns {
    child: Child,
    addr: SocketAddr,
}

impl Dns {
    pub fn start(records: &[Srv]) -> Dns {
        let port = free_port();
        let mut cmd = Command::new("dnsmasq");
        cmd.args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--pid-file=",
            "--log-queries",
            "--log-facility=-",
        ])
        .arg(format!("--port={port}"));
        // As root dnsmasq drops to `nobody`; as anyone else it cannot and must not try.
        if unsafe { libc::geteuid() } == 0 {
            cmd.arg("--user=nobody");
        } else {
            cmd.arg("--user=");
        }
        for r in records {
            cmd.arg(format!(
                "--srv-host={},{},{},{},{}",
                r.name, r.target, r.port, r.priority, r.weight
            ));
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start dnsmasq (Debian package dnsmasq-base; scripts/test.sh installs it)");
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("dnsmasq exited with {status}");
            }
            // dnsmasq answers on TCP as well as UDP, on the same port.
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Dns {
                    child,
                    addr: SocketAddr::from(([127, 0, 0, 1], port)),
                };
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("dnsmasq did not listen on 127.0.0.1:{port} within {READY_TIMEOUT:?}");
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
