//! Operational routes: liveness, readiness, metrics and server information.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde::Serialize;
use streamforge_actors::assets::keys;
use streamforge_actors::supervision::BranchKind;

use bytes::Bytes;
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::api_doc::{self, ApiDoc, ErrorEnvelope};
use super::error::ApiError;
use super::{assets, delivery, events, imports, live, uploads, webhooks, whip};

/// How long a readiness dependency may take before it counts as down.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Every route, with its OpenAPI description; `/api/openapi.json` serves
/// the description of the routes it was built from.
pub fn routes() -> Router<AppState> {
    let (router, mut api) = documented().split_for_parts();
    api_doc::add_common_answers(&mut api);
    let spec = Bytes::from(api.to_json().unwrap_or_default());
    router
        // Wildcard paths have no OpenAPI template: `/vod/{asset}/{path}`
        // describes this one (see `vod_file_doc`).
        .route(super::fast::VOD_FILE_ROUTE, get(vod_file))
        .route(
            "/api/openapi.json",
            get(move || {
                let spec = spec.clone();
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("application/json"),
                        )],
                        spec,
                    )
                }
            }),
        )
}

/// The OpenAPI description of the API, as `/api/openapi.json` serves it.
pub fn openapi_json() -> String {
    let mut api = documented().split_for_parts().1;
    api_doc::add_common_answers(&mut api);
    api.to_pretty_json().unwrap_or_default()
}

/// The routes and their descriptions, from one list.
fn documented() -> OpenApiRouter<AppState> {
    let mut api = ApiDoc::openapi();
    api.merge(VodDoc::openapi());
    OpenApiRouter::with_openapi(api)
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(server_info))
        .routes(routes!(nodes))
        .routes(routes!(uploads::create, uploads::options_root))
        .routes(routes!(
            uploads::head,
            uploads::patch,
            uploads::terminate,
            uploads::options
        ))
        // Uploads stream past the API body limit (uploads.max_size applies).
        .merge(
            OpenApiRouter::new()
                .routes(routes!(uploads::one_shot))
                .layer(DefaultBodyLimit::disable()),
        )
        .routes(routes!(imports::create))
        .routes(routes!(imports::get, imports::cancel))
        .routes(routes!(assets::list))
        .routes(routes!(assets::get, assets::delete))
        .routes(routes!(assets::original))
        .routes(routes!(events::asset_events))
        .routes(routes!(events::all_events))
        .routes(routes!(live::list))
        .routes(routes!(live::sign))
        .routes(routes!(live::keys, live::create_key))
        .routes(routes!(live::revoke_key))
        .routes(routes!(live::get))
        .routes(routes!(live::viewers))
        .routes(routes!(live::top))
        .routes(routes!(live::rendition_file))
        .routes(routes!(live::time))
        .routes(routes!(whip::publish))
        .routes(routes!(whip::patch, whip::end))
        .routes(routes!(webhooks::list, webhooks::create))
        .routes(routes!(webhooks::get, webhooks::delete))
        .routes(routes!(webhooks::enable))
        .routes(routes!(webhooks::deliveries))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(vod_file_doc, openapi_doc))]
struct VodDoc;

/// This description, OpenAPI 3.1 (also `streamforge openapi`).
#[utoipa::path(get, path = "/api/openapi.json", tag = "operations", responses(
    (status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object),
))]
#[allow(dead_code)]
fn openapi_doc() {}

/// A file of an asset's packaged output (`master.m3u8`, `manifest.mpd`,
/// a rendition's playlist, init and media segments, `poster.webp`,
/// `storyboard.vtt`, …): ranges, conditional requests, `Cache-Control`
/// by kind. `path` may contain `/`.
#[utoipa::path(
    get,
    path = "/vod/{asset}/{path}",
    tag = "playback",
    params(
        ("asset" = String, Path, description = "The asset's id"),
        ("path" = String, Path, description = "The file, relative to the asset (may contain /)"),
    ),
    security((), ("signed" = [])),
    responses(
        (status = 200, description = "The file", content(
            ("application/vnd.apple.mpegurl"), ("application/dash+xml"), ("video/mp4"),
            ("audio/mp4"), ("image/webp"), ("image/avif"), ("text/vtt"), ("*/*"),
        )),
        (status = 206, description = "A byte range of the file"),
        (status = 304, description = "Not modified"),
        (status = 400, description = "bad_path: a path outside the asset", body = ErrorEnvelope),
        (status = 403, description = "forbidden: a missing or expired signature", body = ErrorEnvelope),
        (status = 404, description = "not_found", body = ErrorEnvelope),
        (status = 416, description = "range_not_satisfiable", body = ErrorEnvelope),
    )
)]
#[allow(dead_code)]
fn vod_file_doc() {}

/// A file of an asset's packaged output: playlists, manifests, init and
/// media segments, posters, storyboards.
async fn vod_file(
    State(state): State<AppState>,
    Path((asset, path)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = keys::media(&asset, &path)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_path", e.to_string()))?;
    delivery::serve(&state.storage, &state.cache, &key, &method, &headers).await
}

#[derive(Serialize, ToSchema)]
struct Status {
    /// `ok`, or `ready`.
    status: &'static str,
}

/// Liveness: the process is up and answering.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Up", body = Status)))]
async fn healthz() -> Json<Status> {
    Json(Status { status: "ok" })
}

/// Readiness: the database and storage answer, the actor tree runs, and the
/// server is not draining for shutdown.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "Ready", body = Status),
    (status = 503, description = "not_ready: what is not (draining, database, storage, actors)", body = ErrorEnvelope),
))]
async fn readyz(State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    let mut problems = Vec::new();
    if state.draining.load(Ordering::Relaxed) {
        problems.push("shutting down".to_owned());
    }
    if !state.supervision.is_running() {
        problems.push("actor tree stopped".to_owned());
    }
    match tokio::time::timeout(CHECK_TIMEOUT, state.db.ping()).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => problems.push(format!("database: {err}")),
        Err(_) => problems.push("database: no answer within 2s".to_owned()),
    }
    match tokio::time::timeout(CHECK_TIMEOUT, state.storage.ping()).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => problems.push(format!("storage: {err}")),
        Err(_) => problems.push("storage: no answer within 2s".to_owned()),
    }
    if problems.is_empty() {
        Ok(Json(Status { status: "ready" }))
    } else {
        Err(ApiError::unavailable("not_ready", problems.join("; ")))
    }
}

/// Prometheus metrics (OpenMetrics text).
#[utoipa::path(get, path = "/metrics", tag = "operations", responses(
    (status = 200, description = "The metrics", content_type = "application/openmetrics-text", body = String),
))]
async fn metrics(State(state): State<AppState>) -> Response {
    let body = state
        .metrics
        .render(&state.supervision, &state.live, state.whip.as_ref());
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

#[derive(Serialize, ToSchema)]
struct ServerInfo {
    name: &'static str,
    version: &'static str,
    /// This node's id in the node registry (`GET /api/nodes`).
    node: String,
    uptime_seconds: u64,
    storage: String,
    actors: Vec<BranchCount>,
    child_processes: usize,
}

#[derive(Serialize, ToSchema)]
struct BranchCount {
    branch: &'static str,
    actors: i64,
}

#[derive(Serialize, ToSchema)]
struct NodeList {
    /// This node's id.
    node: String,
    nodes: Vec<streamforge_actors::cluster::nodes::NodeRecord>,
}

/// `GET /api/nodes`: every node of the database's registry (this one
/// alone on SQLite), with its state (`up`, `stopped`, `lost`), load and
/// last heartbeat.
#[utoipa::path(get, path = "/api/nodes", tag = "operations", responses(
    (status = 200, description = "The nodes", body = NodeList),
    (status = 503, description = "database_unavailable", body = ErrorEnvelope),
))]
async fn nodes(State(state): State<AppState>) -> Result<Response, ApiError> {
    let nodes = state
        .db
        .nodes()
        .await
        .map_err(|e| ApiError::database("listing the nodes", &e))?;
    Ok(Json(NodeList {
        node: state.node.id.clone(),
        nodes,
    })
    .into_response())
}

/// What this server is and what it is doing, for operators and the web UI.
#[utoipa::path(get, path = "/api/server", tag = "operations", responses(
    (status = 200, description = "This server", body = ServerInfo),
))]
async fn server_info(State(state): State<AppState>) -> Json<ServerInfo> {
    Json(ServerInfo {
        name: env!("CARGO_PKG_NAME"),
        version: env!("CARGO_PKG_VERSION"),
        node: state.node.id.clone(),
        uptime_seconds: state.started.elapsed().as_secs(),
        storage: state.storage.backend().to_string(),
        actors: BranchKind::ALL
            .iter()
            .map(|kind| BranchCount {
                branch: kind.as_str(),
                actors: state.supervision.counts().get(*kind),
            })
            .collect(),
        child_processes: state.supervision.processes().len(),
    })
}
