//! The connection layer under abuse: connections that send nothing or half a request are
//! closed on time, idle keep-alive connections last until their own deadline, the
//! connection cap makes new clients wait rather than fail, and a stalled body gets 503.

use crate::harness::daemon::Daemon;
use reqwest::StatusCode;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";

fn addr(d: &Daemon) -> SocketAddr {
    d.url
        .trim_start_matches("http://")
        .parse()
        .expect("daemon address")
}

/// A connection from `from` (another loopback address, as if from another client host).
async fn connect_from(to: SocketAddr, from: Ipv4Addr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from((from, 0)))
        .expect("bind a loopback address");
    socket.connect(to).await.expect("connect")
}

/// Reads until the server closes the connection (end of stream or reset); panics if it is
/// still open after `bound`. Returns how long that took.
async fn closed_within(stream: &mut TcpStream, bound: Duration) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(bound, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the server kept the connection open {bound:?}"
    );
    started.elapsed()
}

/// Reads one HTTP/1.1 response (head and Content-Length body) from a plain or TLS
/// connection: (status, body).
pub(crate) async fn read_response<S: AsyncRead + Unpin>(stream: &mut S) -> (u16, String) {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut buf).await.expect("read a response");
        assert!(
            n > 0,
            "closed before a whole response: {:?}",
            String::from_utf8_lossy(&bytes)
        );
        bytes.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&bytes[..head_end]).to_string();
    let status: u16 = head[9..12].parse().expect("status code");
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    while bytes.len() < head_end + length {
        let n = stream.read(&mut buf).await.expect("read a body");
        assert!(n > 0, "closed in the middle of a body");
        bytes.extend_from_slice(&buf[..n]);
    }
    let body = String::from_utf8_lossy(&bytes[head_end..head_end + length]).to_string();
    (status, body)
}

/// The operator sees a port scanner or a broken client open a connection and send
/// nothing: accesskeyd closes it after `header_read_timeout_seconds`, not never.
#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_header_timeout() {
    let d = Daemon::start_with(None, "[server]\nheader_read_timeout_seconds = 1\n", &[]).await;
    let mut silent = TcpStream::connect(addr(&d)).await.expect("connect");
    let took = closed_within(&mut silent, Duration::from_secs(5)).await;
    assert!(
        took >= Duration::from_millis(500),
        "closed at once: {took:?}"
    );
}

/// A slow-loris client sends half a request head and stops: the connection is closed after
/// the header timeout instead of holding a file descriptor forever.
#[tokio::test]
async fn half_a_request_head_is_closed_after_the_header_timeout() {
    let d = Daemon::start_with(None, "[server]\nheader_read_timeout_seconds = 1\n", &[]).await;
    let mut half = TcpStream::connect(addr(&d)).await.expect("connect");
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("send half a head");
    let took = closed_within(&mut half, Duration::from_secs(5)).await;
    assert!(
        took >= Duration::from_millis(500),
        "closed at once: {took:?}"
    );
}

/// A client that keeps its connection between requests (OData refreshes, SDK sessions) may
/// pause longer than the header timeout; only a pause beyond the keep-alive timeout ends it.
#[tokio::test]
async fn an_idle_keep_alive_connection_lasts_until_the_keep_alive_timeout() {
    let d = Daemon::start_with(
        None,
        "[server]\nheader_read_timeout_seconds = 1\nkeep_alive_timeout_seconds = 3\n",
        &[],
    )
    .await;
    let mut conn = TcpStream::connect(addr(&d)).await.expect("connect");
    conn.write_all(HEALTHZ).await.expect("first request");
    assert_eq!(read_response(&mut conn).await.0, 200);

    // A pause longer than the header timeout, then the same connection is used again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    conn.write_all(HEALTHZ).await.expect("second request");
    assert_eq!(read_response(&mut conn).await.0, 200);

    let took = closed_within(&mut conn, Duration::from_secs(10)).await;
    assert!(
        took >= Duration::from_secs(2),
        "closed by the header timeout rather than the keep-alive one: {took:?}"
    );
}

/// At `max_connections`, a new client is not refused: it waits in the kernel's queue and is
/// served once the stalled connections holding the slots are closed by the header timeout.
#[tokio::test]
async fn at_the_connection_cap_new_clients_wait_instead_of_failing() {
    let d = Daemon::start_with(
        None,
        "[server]\nheader_read_timeout_seconds = 2\nmax_connections = 20\n",
        &[],
    )
    .await;
    let to = addr(&d);
    let mut stalled = Vec::new();
    for i in 0..20u8 {
        stalled.push(connect_from(to, Ipv4Addr::new(127, 0, 0, 2 + i % 4)).await);
    }

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let started = Instant::now();
    let answer = http
        .get(format!("{}/healthz", d.url))
        .send()
        .await
        .expect("answered, not refused or timed out");
    assert_eq!(answer.status(), StatusCode::OK);
    // It waited for the stalled connections' slots (they time out after 2 s).
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "answered while all slots were taken: {:?}",
        started.elapsed()
    );
    for conn in &mut stalled {
        closed_within(conn, Duration::from_secs(5)).await;
    }
}

/// Hundreds of stalled connections below the cap (the incident: ~1,100 exhausted the file
/// descriptors) do not keep load-balancer health checks or access-key checks waiting.
#[tokio::test]
async fn stalled_connections_do_not_block_health_checks_or_access_keys() {
    let d = Daemon::start_with(None, "[server]\nheader_read_timeout_seconds = 30\n", &[]).await;
    let (key, password, _) = d.admin().await.create_key("connections").await;
    let to = addr(&d);
    let mut stalled = Vec::new();
    for i in 0..300u16 {
        let from = Ipv4Addr::new(127, 0, 0, 2 + (i % 5) as u8);
        let mut conn = connect_from(to, from).await;
        if i % 2 == 0 {
            conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .await
                .expect("send half a head");
        }
        stalled.push(conn);
    }

    let prompt = Duration::from_secs(5);
    let health = tokio::time::timeout(prompt, d.client().get("/healthz"))
        .await
        .expect("/healthz answered promptly");
    assert_eq!(health.status, StatusCode::OK);
    let verified = tokio::time::timeout(
        prompt,
        d.client()
            .with_basic(&key, &password)
            .get("/api/auth/verify"),
    )
    .await
    .expect("access key checked promptly");
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.body);

    // The stalled connections were all still open (nothing to read, no end of stream).
    let mut buf = [0u8; 16];
    for conn in &stalled {
        assert!(
            matches!(conn.try_read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "a stalled connection was closed early"
        );
    }
}

/// A client that announces a body and stops sending it gets 503 with the API's error body
/// after `request_timeout_seconds`, instead of holding the request open.
#[tokio::test]
async fn a_stalled_request_body_gets_503_after_the_request_timeout() {
    let d = Daemon::start_with(None, "[server]\nrequest_timeout_seconds = 2\n", &[]).await;
    let mut conn = TcpStream::connect(addr(&d)).await.expect("connect");
    conn.write_all(
        b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 1000\r\n\r\n{\"username",
    )
    .await
    .expect("send a head and 10 bytes of body");
    let started = Instant::now();
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), read_response(&mut conn))
        .await
        .expect("an answer within 10 s");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("took too long"), "{body}");
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "answered before the request timeout: {:?}",
        started.elapsed()
    );
}
