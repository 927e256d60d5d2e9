//! The trivial upstream of the gateway comparison (`perf/gateway.sh`): every request gets the same
//! small body at once, so what a run measures is the proxy in front of it, not the service.
//!
//! It lives in keel-perf rather than being an nginx `return 200` or a service of the platform so
//! the direct, nginx and gateway figures all hit the very same server, with hyper's HTTP/1.1
//! keep-alive, in a release binary the harness builds anyway.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, header};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use tokio::net::TcpListener;

/// What the upstream answers with when no size is given: 13 bytes.
pub(crate) const DEFAULT_BODY: &[u8] = b"Hello, Keel!\n";

/// A body of exactly `size` bytes, the default text repeated (and cut) to that length.
pub(crate) fn body_of_size(size: usize) -> Bytes {
    DEFAULT_BODY.iter().copied().cycle().take(size).collect()
}

/// Binds `listen` and serves until Ctrl-C (the harness stops it with SIGTERM, which ends the process).
pub(crate) async fn run(listen: SocketAddr, body: Bytes) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    eprintln!(
        "keel-perf upstream: listening on {}, {} byte body",
        listener.local_addr()?,
        body.len()
    );
    tokio::select! {
        () = serve(listener, body) => Ok(()),
        signal = tokio::signal::ctrl_c() => signal.map_err(anyhow::Error::from),
    }
}

/// Accepts connections on `listener` for ever, each served on its own task (HTTP/1.1 keep-alive,
/// or HTTP/2 when the client speaks it).
pub(crate) async fn serve(listener: TcpListener, body: Bytes) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of file descriptors and the like: report, let connections drain, go on.
                eprintln!("keel-perf upstream: accept failed: {error}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // Small answers on a keep-alive connection: Nagle would hold each one back.
        if let Err(error) = stream.set_nodelay(true) {
            eprintln!("keel-perf upstream: TCP_NODELAY: {error}");
        }
        let body = body.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| answer(body.clone(), request));
            // A client closing its connection mid-request is routine under load: not reported.
            let _ = Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// `200 OK` with the fixed body, whatever was asked.
async fn answer(body: Bytes, _request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_has_exactly_the_requested_size() {
        assert_eq!(body_of_size(13), Bytes::from_static(DEFAULT_BODY));
        assert_eq!(body_of_size(0).len(), 0);
        let long = body_of_size(100);
        assert_eq!(long.len(), 100);
        assert!(long.starts_with(DEFAULT_BODY));
        assert_eq!(&long[13..26], DEFAULT_BODY);
    }

    #[tokio::test]
    async fn every_path_gets_the_fixed_body() -> anyhow::Result<()> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let server = tokio::spawn(serve(listener, body_of_size(13)));
        let client = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(1)
            .build()?;
        for path in ["/", "/perf/hello", "/any/thing?x=1"] {
            let response = client.get(format!("http://{address}{path}")).send().await?;
            assert_eq!(response.status(), reqwest::StatusCode::OK);
            assert_eq!(response.text().await?, "Hello, Keel!\n");
        }
        server.abort();
        Ok(())
    }
}
