//! Forwarding a request to the node that must answer it: a tus `PATCH` or
//! `DELETE` of an upload whose bytes another node holds (its append file
//! is on that node's disk) goes to that node's `node.advertise` URL, body
//! and answer streamed through, so a client may send each request of an
//! upload to any node. A forwarded request carries
//! `x-streamforge-forwarded-by`; a node never forwards it again.

use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, Method, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::error::ApiError;

/// Marks a forwarded request with the node that forwarded it.
pub const FORWARDED_BY: &str = "x-streamforge-forwarded-by";

/// Headers of one connection, not of the request (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

/// An HTTP/1.1 client to the other nodes.
#[derive(Clone, Debug)]
pub struct Forwarder {
    client: Client<HttpConnector, Body>,
    /// This node's id, sent in [`FORWARDED_BY`].
    node: String,
}

impl Forwarder {
    pub fn new(node: &str) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        connector.set_nodelay(true);
        Self {
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(connector),
            node: node.to_owned(),
        }
    }

    /// Sends `method uri` with `headers` and `body` to the node at
    /// `advertise` (`http://host:port`) and streams its answer back. A
    /// request forwarded to us already is refused instead (503), so two
    /// nodes that disagree on the holder cannot bounce it forever.
    pub async fn forward(
        &self,
        advertise: &str,
        method: Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<Response, ApiError> {
        if let Some(by) = headers.get(FORWARDED_BY) {
            return Err(ApiError::unavailable(
                "forward_loop",
                format!(
                    "node {} forwarded this request here, but another node holds the upload",
                    by.to_str().unwrap_or("?")
                ),
            ));
        }
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let target: Uri = format!("{}{path}", advertise.trim_end_matches('/'))
            .parse()
            .map_err(|e| ApiError::internal(format!("node URL {advertise:?}: {e}")))?;
        if target.scheme_str() != Some("http") {
            return Err(ApiError::unavailable(
                "forward_unsupported",
                format!(
                    "the node holding the upload is at {advertise}; only http:// nodes are forwarded to"
                ),
            ));
        }
        let mut request = http::Request::builder().method(method).uri(target);
        for (name, value) in headers {
            if !HOP_BY_HOP.contains(&name.as_str()) {
                request = request.header(name, value);
            }
        }
        let request = request
            .header(FORWARDED_BY, &self.node)
            .body(body)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let response = self.client.request(request).await.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "node_unreachable",
                format!("the node holding the upload, at {advertise}, did not answer: {e}"),
            )
        })?;
        let (mut parts, body) = response.into_parts();
        for name in HOP_BY_HOP {
            parts.headers.remove(name);
        }
        Ok(Response::from_parts(parts, Body::new(body)))
    }
}
