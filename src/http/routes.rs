//! Operational routes: liveness, readiness, metrics and server information.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, head, post};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde::Serialize;
use streamforge_actors::assets::keys;
use streamforge_actors::supervision::BranchKind;

use super::AppState;
use super::error::ApiError;
use super::{assets, delivery, events, imports, live, uploads, webhooks};

/// How long a readiness dependency may take before it counts as down.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/server", get(server_info))
        .route("/api/nodes", get(nodes))
        .route("/vod/{asset}/{*path}", get(vod_file))
        .route("/files/", post(uploads::create).options(uploads::options))
        .route(
            "/files/{id}",
            head(uploads::head)
                .patch(uploads::patch)
                .delete(uploads::terminate)
                .options(uploads::options),
        )
        // Uploads stream past the API body limit (uploads.max_size applies).
        .route(
            "/api/uploads",
            post(uploads::one_shot).layer(DefaultBodyLimit::disable()),
        )
        .route("/api/assets", get(assets::list))
        .route("/api/assets/{id}", get(assets::get).delete(assets::delete))
        .route("/api/assets/{id}/original", get(assets::original))
        .route("/api/assets/{id}/events", get(events::asset_events))
        .route("/api/events", get(events::all_events))
        .route("/api/live", get(live::list))
        .route("/api/playback/sign", post(live::sign))
        .route("/api/live/keys", get(live::keys).post(live::create_key))
        .route(
            "/api/live/keys/{stream}",
            axum::routing::delete(live::revoke_key),
        )
        .route("/api/live/{stream}", get(live::get))
        .route("/api/live/{stream}/viewers", get(live::viewers))
        .route("/live/{stream}/{file}", get(live::top))
        .route(
            "/live/{stream}/{rendition}/{file}",
            get(live::rendition_file),
        )
        .route("/time", get(live::time))
        .route("/api/imports", post(imports::create))
        .route(
            "/api/imports/{id}",
            get(imports::get).delete(imports::cancel),
        )
        .route("/api/webhooks", get(webhooks::list).post(webhooks::create))
        .route(
            "/api/webhooks/{id}",
            get(webhooks::get).delete(webhooks::delete),
        )
        .route("/api/webhooks/{id}/enable", post(webhooks::enable))
        .route("/api/webhooks/{id}/deliveries", get(webhooks::deliveries))
}

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

#[derive(Serialize)]
struct Status {
    status: &'static str,
}

/// Liveness: the process is up and answering.
async fn healthz() -> Json<Status> {
    Json(Status { status: "ok" })
}

/// Readiness: the database and storage answer, the actor tree runs, and the
/// server is not draining for shutdown.
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

async fn metrics(State(state): State<AppState>) -> Response {
    let body = state.metrics.render(&state.supervision, &state.live);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

#[derive(Serialize)]
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

#[derive(Serialize)]
struct BranchCount {
    branch: &'static str,
    actors: i64,
}

/// `GET /api/nodes`: every node of the database's registry (this one
/// alone on SQLite), with its state (`up`, `stopped`, `lost`), load and
/// last heartbeat.
async fn nodes(State(state): State<AppState>) -> Result<Response, ApiError> {
    let nodes = state
        .db
        .nodes()
        .await
        .map_err(|e| ApiError::database("listing the nodes", &e))?;
    Ok(Json(serde_json::json!({
        "node": state.node.id,
        "nodes": nodes,
    }))
    .into_response())
}

/// What this server is and what it is doing, for operators and the web UI.
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
