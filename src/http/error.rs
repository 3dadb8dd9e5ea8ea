//! One error shape for every response: `{"error": {"code": "...", "message": "..."}}`.
//!
//! Handlers return [`ApiError`]. Responses the framework makes on its own
//! (405 from the router, 413 from a body limit, 400 from an extractor) pass
//! through [`json_errors_of_signed`], which gives them the same shape.

use axum::Json;
use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use http_body_util::BodyExt;
use serde::Serialize;

/// Longest plain-text error message carried over into the JSON body.
const MAX_CARRIED_MESSAGE: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }

    /// The state database failed: logged with `what` was being done, 503.
    pub fn database(what: &str, err: &streamforge_actors::db::DbError) -> Self {
        tracing::error!(%err, "{what}");
        ApiError::unavailable(
            "database_unavailable",
            "the state database did not answer; retry later",
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Envelope {
            error: ErrorBody {
                code: self.code,
                message: &self.message,
            },
        };
        // An error is never kept by a cache: a part not produced yet or a
        // session over its limit is answered differently a moment later.
        (
            self.status,
            [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
            Json(body),
        )
            .into_response()
    }
}

/// The machine-readable code for a status the framework produced.
pub fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::NOT_ACCEPTABLE => "not_acceptable",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::CONFLICT => "conflict",
        StatusCode::GONE => "gone",
        StatusCode::LENGTH_REQUIRED => "length_required",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::URI_TOO_LONG => "uri_too_long",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::RANGE_NOT_SATISFIABLE => "range_not_satisfiable",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable",
        StatusCode::TOO_MANY_REQUESTS => "too_many_requests",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "headers_too_large",
        StatusCode::NOT_IMPLEMENTED => "not_implemented",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        StatusCode::GATEWAY_TIMEOUT => "timeout",
        s if s.is_server_error() => "internal",
        _ => "error",
    }
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// The innermost middleware: gives error responses that are not JSON yet
/// the standard shape ([`as_json`]), around the playback signature check
/// (`playback::require_signature`). One `from_fn` layer for both: each
/// layer costs a boxed service clone and a boxed future per request.
pub async fn json_errors_of_signed(
    state: axum::extract::State<super::AppState>,
    request: Request,
    next: Next,
) -> Response {
    as_json(super::playback::require_signature(state, request, next).await).await
}

/// `response` with the standard JSON error body if it is an error without
/// one, keeping its status, its headers (`Allow` on a 405, say) and any
/// short plain-text message it carried.
async fn as_json(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&response) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let carried = match body.collect().await {
        Ok(collected) => {
            let bytes = collected.to_bytes();
            let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_CARRIED_MESSAGE)]);
            text.trim().to_owned()
        }
        Err(_) => String::new(),
    };
    let message = if carried.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_owned()
    } else {
        carried
    };
    let fresh = ApiError::new(status, code_for(status), message).into_response();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, fresh.into_body())
}

/// The 404 for every path no route matches.
pub async fn not_found(request: Request<Body>) -> ApiError {
    let path: String = request.uri().path().chars().take(200).collect();
    ApiError::not_found(format!("no route for {} {path}", request.method()))
}
