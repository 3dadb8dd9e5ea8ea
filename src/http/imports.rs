//! `/api/imports`: files fetched from a URL by the server, processed while
//! they download as an upload still arriving is.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Deserialize;
use streamforge_actors::imports::guard::Refusal;
use streamforge_actors::imports::{ImportError, ImportView};

use super::AppState;
use super::api_doc::ErrorEnvelope;
use super::error::ApiError;

fn import_error(err: ImportError) -> ApiError {
    let message = err.to_string();
    match err {
        ImportError::Invalid(_) => ApiError::bad_request(message),
        ImportError::Refused(Refusal::Scheme(_)) => {
            ApiError::new(StatusCode::BAD_REQUEST, "scheme_not_allowed", message)
        }
        ImportError::Refused(_) => {
            ApiError::new(StatusCode::BAD_REQUEST, "address_not_allowed", message)
        }
        ImportError::Source { .. } => {
            ApiError::new(StatusCode::BAD_GATEWAY, "source_failed", message)
        }
        ImportError::Unreachable(_) => {
            ApiError::new(StatusCode::BAD_GATEWAY, "source_unreachable", message)
        }
        ImportError::TooLarge { .. } => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
        }
        ImportError::NotFound(_) => ApiError::not_found(message),
        ImportError::Busy => ApiError::unavailable("busy", message),
        ImportError::NotMedia | ImportError::Page(_) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "not_media", message)
        }
        ImportError::Upload(err) => {
            tracing::error!(%err, "import: the upload failed");
            ApiError::unavailable("upload_failed", message)
        }
        ImportError::Db(err) => ApiError::database("imports", &err),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewImport {
    /// The http(s) URL of the file.
    url: String,
    /// The asset's file name; from the source when absent.
    #[serde(default)]
    filename: Option<String>,
}

/// `POST /api/imports {"url", "filename"?}`: 202 once the source answered,
/// with the import (its id is also its upload's: follow it at
/// `/api/assets/{id}/events`). A refused address, a failing source or a
/// file too large answers here.
#[utoipa::path(post, path = "/api/imports", tag = "imports",
    request_body = NewImport,
    security((), ("bearer" = [])),
    responses(
        (status = 202, description = "Downloading; Location is the import", body = ImportView),
        (status = 400, description = "bad_request (an invalid URL), address_not_allowed (a loopback, private or link-local address, directly, after DNS or after a redirect), scheme_not_allowed", body = ErrorEnvelope),
        (status = 413, description = "too_large: over imports.max_size", body = ErrorEnvelope),
        (status = 422, description = "not_media: an HTML page without yt-dlp, or one yt-dlp finds no single-file media on", body = ErrorEnvelope),
        (status = 502, description = "source_failed (a non-2xx answer), source_unreachable", body = ErrorEnvelope),
        (status = 503, description = "upload_failed, database_unavailable", body = ErrorEnvelope),
    ))]
pub async fn create(
    State(state): State<AppState>,
    Json(new): Json<NewImport>,
) -> Result<Response, ApiError> {
    let view = state
        .imports
        .start(&new.url, new.filename)
        .await
        .map_err(import_error)?;
    let location = HeaderValue::from_str(&format!("/api/imports/{}", view.id))
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(view),
    )
        .into_response())
}

/// `GET /api/imports/{id}`: its state, bytes so far, and its asset.
#[utoipa::path(get, path = "/api/imports/{id}", tag = "imports",
    params(("id" = String, Path, description = "The import's id (also its upload's)")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The import", body = ImportView),
        (status = 404, description = "not_found", body = ErrorEnvelope),
    ))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ImportView>, ApiError> {
    state
        .imports
        .view(&id)
        .await
        .map(Json)
        .map_err(import_error)
}

/// `DELETE /api/imports/{id}`: stops a download in progress and removes
/// what it brought (204); 400 when it is not downloading.
#[utoipa::path(delete, path = "/api/imports/{id}", tag = "imports",
    params(("id" = String, Path, description = "The import's id")),
    security((), ("bearer" = [])),
    responses(
        (status = 204, description = "Cancelled"),
        (status = 400, description = "bad_request: it is not downloading", body = ErrorEnvelope),
        (status = 404, description = "not_found", body = ErrorEnvelope),
    ))]
pub async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.imports.cancel(&id).await.map_err(import_error)?;
    Ok(StatusCode::NO_CONTENT)
}
