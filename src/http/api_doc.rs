//! The OpenAPI 3.1 description of the HTTP API, generated from the
//! handlers' `#[utoipa::path]` annotations and the types they take and
//! answer (`utoipa`), collected by the router that serves them
//! ([`super::routes::routes`]), so that a route cannot exist without its
//! description. Served at `/api/openapi.json`.

use serde::Serialize;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

/// The body of every error response.
#[derive(Serialize, ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable machine-readable code (`not_found`, `invalid_webhook`, …;
    /// each operation lists the codes it answers with).
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "StreamForge",
        description = "A media server: resumable uploads (tus 1.0 at /files/) processed while they \
arrive, imports from URLs, live RTMP/RTSP ingest, HLS and DASH from one set of CMAF segments, \
webhooks. With `auth.mode = \"token\"`, /api/ and /files/ need `Authorization: Bearer TOKEN`; with \
`auth.playback = \"signed\"`, /vod/ and /live/ need `exp` and `sig` from POST /api/playback/sign. \
Errors are `{\"error\": {\"code\", \"message\"}}`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    components(schemas(ErrorEnvelope, ErrorDetail)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "uploads", description = "tus 1.0 resumable uploads and one-shot POSTs"),
        (name = "imports", description = "Files fetched from a URL"),
        (name = "assets", description = "The library"),
        (name = "events", description = "Status events (SSE, WebSocket)"),
        (name = "live", description = "Live streams, stream keys, signed playback"),
        (name = "playback", description = "HLS and DASH files of assets and live streams"),
        (name = "webhooks", description = "Signed callbacks (Standard Webhooks)"),
        (name = "operations", description = "Health, readiness, metrics, nodes"),
    )
)]
pub struct ApiDoc;

/// The two ways in: a bearer token for the API, a signature for playback.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token (`streamforge token create`), when auth.mode = \"token\"",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "signed",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "sig",
                "With auth.playback = \"signed\": `exp` and `sig` query parameters from \
                 POST /api/playback/sign",
            ))),
        );
    }
}

/// Adds the answers the middleware gives before a handler runs to every
/// operation they can reach: the token check and the rate limit on /api/
/// and /files/, a node without the `api` role, a path refused for
/// traversal, a JSON body the extractor refuses, a body over the limit.
/// Applied to the document the router collected.
pub fn add_common_answers(openapi: &mut utoipa::openapi::OpenApi) {
    {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let guarded = path.starts_with("/api/") || path.starts_with("/files");
            let templated = path.contains('{');
            let served = !matches!(path.as_str(), "/healthz" | "/readyz" | "/metrics");
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                if guarded {
                    add(
                        operation,
                        401,
                        "unauthorized: no valid API token (auth.mode = \"token\")",
                    );
                    add(
                        operation,
                        429,
                        "too_many_requests: over limits.api_per_second from this address",
                    );
                }
                if served {
                    add(
                        operation,
                        503,
                        "not_served: this node does not have the api role; database_unavailable",
                    );
                }
                if templated {
                    add(
                        operation,
                        400,
                        "bad_path: a percent-encoded '.', '/', '\\' or NUL, or a traversal, in the path",
                    );
                }
                if operation.request_body.is_some() {
                    add(
                        operation,
                        400,
                        "bad_request: a body that is not what the operation takes",
                    );
                    add(
                        operation,
                        413,
                        "payload_too_large: over http.max_body_bytes",
                    );
                    add(
                        operation,
                        415,
                        "unsupported_media_type: a body without its content type",
                    );
                    add(
                        operation,
                        422,
                        "unprocessable: JSON with missing, unknown or mistyped fields",
                    );
                }
            }
        }
    }
}

/// Adds an error answer to `operation` unless it describes that status.
fn add(operation: &mut Operation, status: u16, description: &str) {
    let responses = &mut operation.responses.responses;
    let key = status.to_string();
    if responses.contains_key(&key) {
        return;
    }
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("ErrorEnvelope")))
        .build();
    let response = ResponseBuilder::new()
        .description(description)
        .content("application/json", content)
        .build();
    responses.insert(key, response.into());
}
