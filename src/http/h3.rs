//! HTTP/3 over QUIC (quinn + h3), serving the same router as HTTP/1.1 and
//! HTTP/2.
//!
//! Endpoint → one task per QUIC connection → one task per request stream.
//! Each request becomes an `http::Request<Body>` for the router; the
//! response body is sent frame by frame as the router produces it, so large
//! files stream. An error ends its stream or connection and nothing else;
//! undecodable datagrams are dropped by quinn before they reach us.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use bytes::{Buf, Bytes};
use h3::server::RequestStream;
use http_body_util::BodyExt;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::config::HttpConfig;
use crate::metrics::Metrics;

/// Why the QUIC endpoint cannot be configured.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error(transparent)]
    Tls(#[from] super::tls::TlsError),
    #[error("TLS configuration unusable for QUIC: {0}")]
    Quic(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
    #[error("http.idle_timeout too large for QUIC: {0}")]
    IdleTimeout(#[from] quinn::VarIntBoundsExceeded),
}

/// The QUIC endpoint configuration: TLS with ALPN `h3`, our idle timeout and
/// stream limits.
pub fn endpoint_config(
    tls: &super::tls::Identity,
    http: &HttpConfig,
) -> Result<quinn::ServerConfig, EndpointError> {
    let rustls = super::tls::server_config(tls, &[b"h3"])?;
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(rustls)?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_idle_timeout(Some(quinn::IdleTimeout::try_from(http.idle_timeout)?))
        .max_concurrent_bidi_streams(256u32.into())
        // Only the peer's control and QPACK streams are unidirectional.
        .max_concurrent_uni_streams(8u32.into());
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// Serves `app` over HTTP/3 on `endpoint` until `shutdown` is cancelled,
/// then sends GOAWAY, lets requests finish for the grace period, and closes.
pub async fn serve(
    endpoint: quinn::Endpoint,
    app: Router,
    http: HttpConfig,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let mut connections = JoinSet::new();
    loop {
        let incoming = tokio::select! {
            () = shutdown.cancelled() => break,
            incoming = endpoint.accept() => match incoming {
                Some(incoming) => incoming,
                None => break,
            },
        };
        while connections.try_join_next().is_some() {}
        let app = app.clone();
        let guard = metrics.connection_opened("quic");
        let shutdown = shutdown.clone();
        let http = http.clone();
        connections.spawn(async move {
            let _guard = guard;
            let peer = incoming.remote_address();
            let connection = match tokio::time::timeout(http.header_timeout, incoming).await {
                Ok(Ok(connection)) => connection,
                Ok(Err(err)) => {
                    tracing::debug!(%peer, %err, "QUIC handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "QUIC handshake timed out");
                    return;
                }
            };
            if let Err(err) = serve_connection(connection, peer, app, &http, shutdown).await {
                tracing::debug!(%peer, %err, "HTTP/3 connection ended with an error");
            }
        });
    }
    endpoint.set_server_config(None);
    tokio::select! {
        () = async { while connections.join_next().await.is_some() {} } => {}
        () = tokio::time::sleep(http.shutdown_grace) => {
            tracing::warn!(open = connections.len(), "HTTP/3 grace period over; closing remaining connections");
        }
    }
    endpoint.close(quinn::VarInt::from_u32(0), b"server shutting down");
    connections.shutdown().await;
    endpoint.wait_idle().await;
}

async fn serve_connection(
    connection: quinn::Connection,
    peer: SocketAddr,
    app: Router,
    http: &HttpConfig,
    shutdown: CancellationToken,
) -> Result<(), h3::error::ConnectionError> {
    let mut h3 = h3::server::builder()
        .max_field_section_size(http.max_header_bytes as u64)
        .build::<_, Bytes>(h3_quinn::Connection::new(connection))
        .await?;
    let mut requests = JoinSet::new();
    loop {
        let resolver = tokio::select! {
            () = shutdown.cancelled() => {
                // GOAWAY: no new requests; those in flight finish below.
                h3.shutdown(0).await?;
                break;
            }
            accepted = h3.accept() => match accepted? {
                Some(resolver) => resolver,
                None => break,
            },
        };
        while requests.try_join_next().is_some() {}
        let app = app.clone();
        let header_timeout = http.header_timeout;
        requests.spawn(async move {
            let (request, stream) =
                match tokio::time::timeout(header_timeout, resolver.resolve_request()).await {
                    Ok(Ok(resolved)) => resolved,
                    Ok(Err(err)) => {
                        tracing::debug!(%peer, %err, "bad HTTP/3 request");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "HTTP/3 request head timed out");
                        return;
                    }
                };
            if let Err(err) = serve_request(request, stream, peer, app).await {
                tracing::debug!(%peer, %err, "HTTP/3 stream ended with an error");
            }
        });
    }
    while requests.join_next().await.is_some() {}
    Ok(())
}

async fn serve_request<S>(
    request: http::Request<()>,
    stream: RequestStream<S, Bytes>,
    peer: SocketAddr,
    app: Router,
) -> Result<(), h3::error::StreamError>
where
    S: h3::quic::BidiStream<Bytes> + Send + 'static,
    S::RecvStream: Send + 'static,
{
    let (mut send, recv) = stream.split();
    let body = futures::stream::unfold(recv, |mut recv| async move {
        match recv.recv_data().await {
            Ok(Some(mut chunk)) => {
                let bytes = chunk.copy_to_bytes(chunk.remaining());
                Some((Ok::<_, h3::error::StreamError>(bytes), recv))
            }
            Ok(None) => None,
            Err(err) => Some((Err(err), recv)),
        }
    });
    let (parts, ()) = request.into_parts();
    let mut request = http::Request::from_parts(parts, Body::from_stream(body));
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(peer));

    let mut response = match app.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    super::outgoing(&mut response);
    let (parts, mut body) = response.into_parts();
    send.send_response(http::Response::from_parts(parts, ()))
        .await?;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(err) => {
                // The response was already started: reset the stream so the
                // client sees a failure rather than a short body.
                tracing::warn!(%peer, %err, "response body failed mid-stream");
                send.stop_stream(h3::error::Code::H3_INTERNAL_ERROR);
                return Ok(());
            }
        };
        match frame.into_data() {
            Ok(data) if data.is_empty() => {}
            Ok(data) => send.send_data(data).await?,
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    send.send_trailers(trailers).await?;
                }
            }
        }
    }
    send.finish().await
}

/// Binds the QUIC endpoint on `addr` (UDP).
pub fn bind(addr: SocketAddr, config: quinn::ServerConfig) -> std::io::Result<quinn::Endpoint> {
    quinn::Endpoint::server(config, addr)
}
