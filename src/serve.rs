//! Every listener of the process (the main one, the metrics one, the demo's Clari sandbox)
//! serves HTTP/1.1 through this loop, so none of them holds a connection for a client that is
//! slow on purpose:
//!
//! - a request head must arrive within the header read timeout (hyper's `header_read_timeout`,
//!   which also ends a keep-alive connection idle for as long);
//! - a request body must arrive within the body read timeout of the request's start
//!   ([`with_body_deadline`]): reading it then fails, the handler answers, the connection closes;
//! - one address holds at most so many connections at once; a connection over the limit is
//!   closed as soon as it is accepted, before a byte is read.
//!
//! The address is the TCP peer's: behind a load balancer every connection comes from it, so the
//! per-address limit is off by default there (`CLARI_MCP_TRUSTED_PROXIES`), and the balancer
//! enforces its own.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How long the listeners wait for slow clients, and how many connections one address holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLimits {
    /// The whole request head (`CLARI_MCP_HEADER_READ_TIMEOUT`, 10s); also the keep-alive idle.
    pub header_read_timeout: Duration,
    /// The whole request body, from the request's start (`CLARI_MCP_BODY_READ_TIMEOUT`, 30s).
    pub body_read_timeout: Duration,
    /// Open connections per client address (`CLARI_MCP_MAX_CONNECTIONS_PER_ADDRESS`; 64, or 0
    /// for no limit, the default behind trusted proxies).
    pub max_connections_per_address: usize,
    /// How long requests in flight may take to finish once a shutdown begins
    /// (`CLARI_MCP_SHUTDOWN_GRACE`, 20s: inside Kubernetes' default 30 s grace period).
    pub shutdown_grace: Duration,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            max_connections_per_address: 64,
            shutdown_grace: Duration::from_secs(20),
        }
    }
}

/// The open connections per address, and a guard that gives one back when dropped.
#[derive(Default)]
struct Connections {
    open: Mutex<HashMap<IpAddr, usize>>,
}

struct Held {
    connections: Arc<Connections>,
    address: IpAddr,
}

impl Connections {
    fn take(self: &Arc<Self>, address: IpAddr, limit: usize) -> Option<Held> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(address).or_insert(0);
        if limit > 0 && *n >= limit {
            return None;
        }
        *n += 1;
        Some(Held {
            connections: self.clone(),
            address,
        })
    }

    fn total(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .sum()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut open = self
            .connections
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.address);
            }
        }
    }
}

/// IPv4 addresses count alone; IPv6 ones by their /64, which one host usually holds whole.
fn address_of(peer: SocketAddr) -> IpAddr {
    match peer.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

/// Serves `router` on `listener` until `shutdown` completes; then stops accepting, asks every
/// connection to close after its current answer, and waits for them at most
/// `limits.shutdown_grace`. Connections still open at the deadline are left to be cut when the
/// process exits.
/// Handlers see the peer as `ConnectInfo<SocketAddr>`; refused connections are counted in
/// `metrics` when given.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ListenerLimits,
    metrics: Option<Arc<crate::metrics::Metrics>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let connections = Arc::new(Connections::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(held) = connections.take(address_of(peer), limits.max_connections_per_address)
        else {
            if let Some(m) = &metrics {
                m.connections_refused.inc();
            }
            drop(stream);
            continue;
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let router = router.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _held = held;
            let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                let router = router.clone();
                async move {
                    Ok::<_, Infallible>(
                        tower::ServiceExt::oneshot(router, req.map(Body::new))
                            .await
                            .unwrap_or_else(|never| match never {}),
                    )
                }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            let conn = builder
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "connection ended");
                    }
                }
                () = async { let _ = stop.wait_for(|s| *s).await; } => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Open requests finish (each connection closes after its current answer), within the grace.
    let deadline = tokio::time::Instant::now() + limits.shutdown_grace;
    while connections.total() > 0 {
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(
                open = connections.total(),
                grace_seconds = limits.shutdown_grace.as_secs(),
                "requests still in flight at the end of the shutdown grace; closing them"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Why a request body stopped: the client did not send it within the body read timeout.
#[derive(Debug)]
pub struct BodyTimedOut;

impl std::fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body did not arrive in time")
    }
}

impl std::error::Error for BodyTimedOut {}

/// A request body that fails with [`BodyTimedOut`] once its deadline passes.
struct Deadline {
    inner: Body,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl HttpBody for Deadline {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimedOut)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The request's body must arrive within `timeout` of the request's start: reading it later
/// fails with [`BodyTimedOut`].
pub fn with_body_deadline(timeout: Duration, req: Request) -> Request {
    let (parts, body) = req.into_parts();
    let body = if body.is_end_stream() {
        body
    } else {
        Body::new(Deadline {
            inner: body,
            sleep: Box::pin(tokio::time::sleep(timeout)),
        })
    };
    Request::from_parts(parts, body)
}

/// Whether a body-read error is [`BodyTimedOut`] (somewhere in its chain).
pub fn timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut e: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(x) = e {
        if x.is::<BodyTimedOut>() {
            return true;
        }
        e = x.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        let a: SocketAddr = "[2001:db8:1:2:3:4:5:6]:1".parse().unwrap();
        let b: SocketAddr = "[2001:db8:1:2:ffff::1]:2".parse().unwrap();
        assert_eq!(address_of(a), address_of(b));
        let m: SocketAddr = "[::ffff:10.0.0.1]:3".parse().unwrap();
        assert_eq!(address_of(m), "10.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn a_connection_over_the_limit_is_refused_until_one_closes() {
        let c = Arc::new(Connections::default());
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let one = c.take(ip, 2).unwrap();
        let _two = c.take(ip, 2).unwrap();
        assert!(c.take(ip, 2).is_none());
        assert!(c.take("10.0.0.2".parse().unwrap(), 2).is_some());
        drop(one);
        assert!(c.take(ip, 2).is_some());
        assert!(c.take(ip, 0).is_some(), "0 is no limit");
    }
}
