//! The floor of `scripts/bench-load.sh`: the cheapest axum 0.8 route there is, on the same
//! tokio multi-thread runtime (default worker count) as the daemon, with no layers.
//!
//! ```sh
//! cargo build --release --example bare_axum
//! target/release/examples/bare_axum 127.0.0.1:0   # prints "bare_axum listening on http://ADDR"
//! target/release/examples/bare_axum 127.0.0.1:0 --tls CERT.pem KEY.pem
//!                                                 # prints "bare_axum listening on https://ADDR"
//! ```
//!
//! `GET /` and `GET /bare` answer 200 with a short body and an `x-auth-user` header, about
//! the shape of a successful `GET /api/auth/verify`, so a benchmark can compare the
//! daemon's request path with what axum and hyper cost by themselves. With `--tls`, the
//! same route behind the daemon's own rustls configuration (`accesskeyd::http::tls`), so
//! that the daemon over HTTPS has a floor over HTTPS.

use axum::http::HeaderName;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use hyper_util::rt::TokioIo;

async fn bare() -> impl IntoResponse {
    ([(HeaderName::from_static("x-auth-user"), "bench")], "ok\n")
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = args
        .first()
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:0".to_string());
    let app = Router::new()
        .route("/", get(bare))
        .route("/bare", get(bare));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    if args.get(1).map(String::as_str) == Some("--tls") {
        let (Some(cert), Some(key)) = (args.get(2), args.get(3)) else {
            eprintln!("usage: bare_axum ADDR --tls CERT.pem KEY.pem");
            std::process::exit(2);
        };
        let server = accesskeyd::config::ServerConfig {
            tls_cert_file: Some(cert.into()),
            tls_key_file: Some(key.into()),
            ..Default::default()
        };
        let tls = match accesskeyd::http::tls::ServerTls::load(&server) {
            Ok(Some(tls)) => tls,
            Ok(None) => unreachable!("both files given"),
            Err(e) => {
                eprintln!("bare_axum: {e}");
                std::process::exit(2);
            }
        };
        println!("bare_axum listening on https://{}", listener.local_addr()?);
        return serve_tls(listener, tls.acceptor(), app).await;
    }
    // stdout is line-buffered: the line is out as soon as the socket listens.
    println!("bare_axum listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}

/// HTTPS: a handshake per connection, then hyper's HTTP/1.1 connection as axum::serve runs
/// it (what wrk speaks), or HTTP/2 for a client that chose it in ALPN (curl).
async fn serve_tls(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    app: Router,
) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            let h2 = tls.get_ref().1.alpn_protocol() == Some(accesskeyd::http::tls::ALPN_H2);
            let service =
                hyper::service::service_fn(move |req| tower::ServiceExt::oneshot(app.clone(), req));
            let io = TokioIo::new(tls);
            let _ = if h2 {
                hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(io, service)
                    .await
            } else {
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await
            };
        });
    }
}
