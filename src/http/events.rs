//! Status events without polling: Server-Sent Events for one asset or
//! upload (`/api/assets/{id}/events`), and a WebSocket with every event
//! (`/api/events`). Both end when the server shuts down.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream, StreamExt};
use serde_json::json;
use streamforge_actors::events::Event;
use tokio::sync::broadcast::error::RecvError;

use super::AppState;
use super::api_doc::ErrorEnvelope;
use super::error::ApiError;

/// An SSE event from a bus event.
fn sse(event: &Event) -> SseEvent {
    SseEvent::default()
        .event("status")
        .json_data(event)
        .unwrap_or_else(|_| SseEvent::default().comment("unserialisable event"))
}

/// `GET /api/assets/{id}/events` (`id` an asset or an upload): first the
/// current state as a `snapshot` event, then every event that concerns it.
#[utoipa::path(get, path = "/api/assets/{id}/events", tag = "events",
    params(("id" = String, Path, description = "An asset's or an upload's id")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "An event stream: a `snapshot` event, then `status` events (JSON, with a `type`)", content_type = "text/event-stream", body = String),
        (status = 404, description = "not_found", body = ErrorEnvelope),
    ))]
pub async fn asset_events(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let receiver = state.events.subscribe();
    let snapshot = match state.db.asset(&id).await {
        Ok(Some(asset)) => {
            json!({ "asset_id": asset.id, "status": asset.status, "error": asset.error })
        }
        Ok(None) => match state.uploads.status(&id).await {
            Ok(upload) => json!({
                "upload_id": id,
                "offset": upload.offset,
                "length": upload.length,
                "asset_id": upload.asset_id,
            }),
            Err(_) => return Err(ApiError::not_found(format!("no asset or upload {id}"))),
        },
        Err(err) => {
            tracing::error!(%err, "cannot read an asset for its events");
            return Err(ApiError::unavailable("database_unavailable", "retry later"));
        }
    };
    let first = stream::once(async move {
        Ok(SseEvent::default()
            .event("snapshot")
            .json_data(snapshot)
            .unwrap_or_else(|_| SseEvent::default().comment("no snapshot")))
    });
    let updates = stream::unfold(receiver, move |mut receiver| {
        let id = id.clone();
        async move {
            loop {
                match receiver.recv().await {
                    Ok(event) if event.concerns(&id) => return Some((Ok(sse(&event)), receiver)),
                    Ok(_) => {}
                    // Told, so that the client can fetch the state afresh.
                    Err(RecvError::Lagged(missed)) => {
                        let note = SseEvent::default().event("lagged").data(missed.to_string());
                        return Some((Ok(note), receiver));
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        }
    });
    let shutdown = state.shutdown.clone();
    let events = first
        .chain(updates)
        .take_until(async move { shutdown.cancelled().await });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// `GET /api/events` (WebSocket): every event as a JSON text message.
#[utoipa::path(get, path = "/api/events", tag = "events",
    security((), ("bearer" = [])),
    responses(
        (status = 101, description = "A WebSocket: one JSON text message per event, with a `type`"),
        (status = 400, description = "Not a WebSocket upgrade", body = ErrorEnvelope),
        (status = 426, description = "Upgrade required", body = ErrorEnvelope),
    ))]
pub async fn all_events(State(state): State<AppState>, upgrade: WebSocketUpgrade) -> Response {
    upgrade
        .max_message_size(64 * 1024)
        .on_upgrade(move |socket| forward(socket, state))
        .into_response()
}

async fn forward(mut socket: WebSocket, state: AppState) {
    let mut receiver = state.events.subscribe();
    loop {
        let text = tokio::select! {
            () = state.shutdown.cancelled() => break,
            incoming = socket.recv() => match incoming {
                // Clients only listen; anything but a close is ignored.
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => continue,
            },
            event = receiver.recv() => match event {
                Ok(event) => serde_json::to_string(&event).unwrap_or_default(),
                Err(RecvError::Lagged(missed)) => json!({ "type": "lagged", "missed": missed }).to_string(),
                Err(RecvError::Closed) => break,
            },
        };
        if socket.send(Message::Text(text.into())).await.is_err() {
            break;
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}
