//! A real nginx (Debian's `nginx-light`, which has `auth_request`) on a free 127.0.0.1 port
//! in front of the daemon, as operators put it: it passes requests on with
//! `X-Forwarded-For`, and `/protected/` is an application (a second server block of the same
//! nginx) that nginx guards with `auth_request` to `/api/auth/verify`, forwarding the
//! original method in `X-Original-Method` — the lines docs/api.md tells operators to use. The process is killed on drop, also when a
//! test fails.

#![allow(dead_code)]

use std::fs;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::process::free_port;
use tempfile::TempDir;

const START_ATTEMPTS: usize = 5;
const READY_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Nginx {
    child: Child,
    port: u16,
    _dir: TempDir,
}

impl Nginx {
    /// nginx in front of the daemon at `upstream` (`http://127.0.0.1:PORT`).
    pub fn start(upstream: &str) -> Nginx {
        let upstream = upstream.trim_end_matches('/').to_string();
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            let dir = tempfile::tempdir().expect("temp dir");
            let port = free_port();
            let app_port = free_port();
            let conf = config(
                port,
                app_port,
                &upstream,
                dir.path().to_string_lossy().as_ref(),
            );
            let path = dir.path().join("nginx.conf");
            fs::write(&path, conf).expect("write nginx.conf");
            let mut child = Command::new(binary())
                .arg("-p")
                .arg(dir.path())
                .arg("-c")
                .arg(&path)
                .arg("-e")
                .arg(dir.path().join("error.log"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start nginx (Debian package nginx-light; scripts/test.sh installs it)");
            let deadline = Instant::now() + READY_TIMEOUT;
            while Instant::now() < deadline {
                if let Ok(Some(status)) = child.try_wait() {
                    last_error = format!(
                        "nginx exited with {status}: {}",
                        fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
                    );
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Nginx {
                        child,
                        port,
                        _dir: dir,
                    };
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("nginx did not start: {last_error}");
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary() -> String {
    std::env::var("ACCESSKEYD_TEST_NGINX").unwrap_or_else(|_| "/usr/sbin/nginx".into())
}

fn config(port: u16, app_port: u16, upstream: &str, dir: &str) -> String {
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass {upstream};
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header Host $host;
        }}
        # An application behind accesskeyd's forward authentication.
        location /protected/ {{
            auth_request /_accesskeyd_verify;
            auth_request_set $user $upstream_http_x_auth_user;
            add_header X-App-User $user always;
            proxy_pass http://127.0.0.1:{app_port};
        }}
        location = /_accesskeyd_verify {{
            internal;
            proxy_pass {upstream}/api/auth/verify;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}
    # The application itself (it trusts nginx to have asked accesskeyd).
    server {{
        listen 127.0.0.1:{app_port};
        location / {{
            return 200 "protected $request_method\n";
        }}
    }}
}}
"#
    )
}
