//! The floor of `scripts/bench-load.sh`: the cheapest axum 0.8 route there is, on the same
//! tokio multi-thread runtime (default worker count) as the daemon, with no layers.
//!
//! ```sh
//! cargo build --release --example bare_axum
//! target/release/examples/bare_axum 127.0.0.1:0   # prints "bare_axum listening on http://ADDR"
//! ```
//!
//! `GET /` and `GET /bare` answer 200 with a short body and an `x-auth-user` header, about
//! the shape of a successful `GET /api/auth/verify`, so a benchmark can compare the
//! daemon's request path with what axum and hyper cost by themselves.

use axum::http::HeaderName;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

async fn bare() -> impl IntoResponse {
    ([(HeaderName::from_static("x-auth-user"), "bench")], "ok\n")
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_string());
    let app = Router::new()
        .route("/", get(bare))
        .route("/bare", get(bare));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    // stdout is line-buffered: the line is out as soon as the socket listens.
    println!("bare_axum listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}
