//! `/api/assets`: the library of uploaded media, and downloads of originals.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde::{Deserialize, Serialize};
use streamforge_actors::assets::keys;
use streamforge_actors::assets::{AssetRecord, AssetStatus};
use streamforge_actors::transcode::image::widths_for;

use super::AppState;
use super::api_doc::ErrorEnvelope;
use super::delivery::{self, Kind};
use super::error::ApiError;

const MAX_PAGE: u32 = 200;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Case-insensitive part of the file name.
    q: Option<String>,
    /// Only assets in this status (uploaded, processing, recording, ready, failed).
    status: Option<String>,
    /// Assets per page, 1 to 200.
    #[serde(default = "default_limit")]
    #[param(default = 50, minimum = 1, maximum = 200)]
    limit: u32,
    #[serde(default)]
    offset: u32,
}

fn default_limit() -> u32 {
    50
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AssetView {
    #[serde(flatten)]
    record: AssetRecord,
    download_url: String,
    /// Present once the asset is playable.
    #[serde(skip_serializing_if = "Option::is_none")]
    hls_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dash_url: Option<String>,
    /// While processing: the preview that plays before the asset is ready
    /// (an HLS multivariant playlist over the renditions made so far).
    #[serde(skip_serializing_if = "Option::is_none")]
    preview_url: Option<String>,
    /// Poster image and seek-preview track (WebVTT into a sprite sheet).
    #[serde(skip_serializing_if = "Option::is_none")]
    poster_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    storyboard_url: Option<String>,
    /// A still image's renditions (WebP and AVIF per width), once ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    images: Option<Vec<ImageRendition>>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ImageRendition {
    width: u32,
    webp_url: String,
    avif_url: String,
}

impl AssetView {
    /// With `auth.playback = "signed"`, every playback URL carries its signature.
    pub fn signed(mut self, signer: Option<&super::playback::Signer>) -> Self {
        let Some(signer) = signer else {
            return self;
        };
        for url in [
            &mut self.hls_url,
            &mut self.dash_url,
            &mut self.preview_url,
            &mut self.poster_url,
            &mut self.storyboard_url,
        ]
        .into_iter()
        .flatten()
        {
            *url = signer.sign_url(url);
        }
        for image in self.images.iter_mut().flatten() {
            image.webp_url = signer.sign_url(&image.webp_url);
            image.avif_url = signer.sign_url(&image.avif_url);
        }
        self
    }
}

impl From<AssetRecord> for AssetView {
    fn from(record: AssetRecord) -> Self {
        let ready = record.status == AssetStatus::Ready;
        let has_video = record
            .probe
            .as_ref()
            .and_then(|p| p["streams"].as_array())
            .is_some_and(|streams| streams.iter().any(|s| s["type"] == "video"));
        let previewing = !ready && record.preview && record.status != AssetStatus::Failed;
        let image = record.probe.as_ref().is_some_and(|p| p["kind"] == "image");
        let images = (ready && image).then(|| {
            let width = record
                .probe
                .as_ref()
                .and_then(|p| p["streams"][0]["width"].as_u64())
                .and_then(|w| u32::try_from(w).ok())
                .unwrap_or(0);
            widths_for(width)
                .into_iter()
                .map(|w| ImageRendition {
                    width: w,
                    webp_url: format!("/vod/{}/image-{w}.webp", record.id),
                    avif_url: format!("/vod/{}/image-{w}.avif", record.id),
                })
                .collect()
        });
        let playable = ready && !image;
        let pictures = ready && has_video;
        AssetView {
            images,
            poster_url: (pictures || (record.poster && record.status != AssetStatus::Failed))
                .then(|| format!("/vod/{}/poster.webp", record.id)),
            preview_url: previewing.then(|| format!("/vod/{}/master.m3u8", record.id)),
            storyboard_url: (pictures && !image)
                .then(|| format!("/vod/{}/storyboard.vtt", record.id)),
            download_url: format!("/api/assets/{}/original", record.id),
            hls_url: playable.then(|| format!("/vod/{}/master.m3u8", record.id)),
            dash_url: playable.then(|| format!("/vod/{}/manifest.mpd", record.id)),
            record,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Page {
    assets: Vec<AssetView>,
    total: u64,
    limit: u32,
    offset: u32,
}

fn db_error(err: streamforge_actors::db::DbError) -> ApiError {
    tracing::error!(%err, "asset query failed");
    ApiError::unavailable(
        "database_unavailable",
        "the library could not be read; retry later",
    )
}

/// `GET /api/assets?q=&status=&limit=&offset=`: newest first.
#[utoipa::path(get, path = "/api/assets", tag = "assets",
    params(ListQuery),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "A page of assets, newest first", body = Page),
        (status = 400, description = "bad_request: a limit out of range or an unknown status", body = ErrorEnvelope),
        (status = 503, description = "database_unavailable", body = ErrorEnvelope),
    ))]
pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Page>, ApiError> {
    if query.limit == 0 || query.limit > MAX_PAGE {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    if query.q.as_ref().is_some_and(|q| q.len() > 200) {
        return Err(ApiError::bad_request("q is limited to 200 bytes"));
    }
    let status = match query.status.as_deref() {
        None => None,
        Some(value) => Some(AssetStatus::parse(value).ok_or_else(|| {
            let known: Vec<&str> = AssetStatus::ALL.iter().map(|s| s.as_str()).collect();
            ApiError::bad_request(format!(
                "status {value:?} is not one of {}",
                known.join(", ")
            ))
        })?),
    };
    let (assets, total) = state
        .db
        .assets(query.q.as_deref(), status, query.limit, query.offset)
        .await
        .map_err(db_error)?;
    Ok(Json(Page {
        assets: assets
            .into_iter()
            .map(|a| AssetView::from(a).signed(state.signer.as_deref()))
            .collect(),
        total,
        limit: query.limit,
        offset: query.offset,
    }))
}

async fn find(state: &AppState, id: &str) -> Result<AssetRecord, ApiError> {
    state
        .db
        .asset(id)
        .await
        .map_err(db_error)?
        .ok_or_else(|| ApiError::not_found(format!("no asset {id}")))
}

/// `GET /api/assets/{id}`.
#[utoipa::path(get, path = "/api/assets/{id}", tag = "assets",
    params(("id" = String, Path, description = "The asset's id")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The asset: status, stage, probe, playback URLs", body = AssetView),
        (status = 404, description = "not_found", body = ErrorEnvelope),
        (status = 503, description = "database_unavailable", body = ErrorEnvelope),
    ))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<AssetView>, ApiError> {
    Ok(Json(
        AssetView::from(find(&state, &id).await?).signed(state.signer.as_deref()),
    ))
}

/// `DELETE /api/assets/{id}`: the original, every rendition, and the record.
#[utoipa::path(delete, path = "/api/assets/{id}", tag = "assets",
    params(("id" = String, Path, description = "The asset's id")),
    security((), ("bearer" = [])),
    responses(
        (status = 204, description = "Deleted: original, renditions and record"),
        (status = 404, description = "not_found", body = ErrorEnvelope),
        (status = 409, description = "The asset is being recorded", body = ErrorEnvelope),
        (status = 503, description = "database_unavailable, storage_unavailable", body = ErrorEnvelope),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let asset = find(&state, &id).await?;
    let prefix = keys::asset(&asset.id).map_err(|e| ApiError::bad_request(e.to_string()))?;
    state.storage.delete_prefix(&prefix).await.map_err(|err| {
        tracing::error!(%err, asset = %asset.id, "cannot delete an asset's files");
        ApiError::unavailable(
            "storage_unavailable",
            "the asset's files could not be deleted; retry",
        )
    })?;
    state.cache.remove_prefix(&format!("{}/", prefix.as_str()));
    state.db.delete_asset(&asset.id).await.map_err(db_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/assets/{id}/original`: the uploaded file byte for byte, as a
/// download, with ranges and validators.
#[utoipa::path(get, path = "/api/assets/{id}/original", tag = "assets",
    params(("id" = String, Path, description = "The asset's id")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The original file, with the content type it was uploaded with", content_type = "*/*", body = Vec<u8>),
        (status = 206, description = "A byte range of it"),
        (status = 304, description = "Not modified"),
        (status = 404, description = "not_found", body = ErrorEnvelope),
        (status = 416, description = "range_not_satisfiable", body = ErrorEnvelope),
    ))]
pub async fn original(
    State(state): State<AppState>,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let asset = find(&state, &id).await?;
    let key = keys::original(&asset.id).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let content_type = HeaderValue::from_str(&asset.filetype)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let mut response = delivery::serve_as(
        &state.storage,
        &state.cache,
        &key,
        content_type,
        Kind::Asset,
        &method,
        &headers,
    )
    .await?;
    if response.status().is_success() {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, attachment(&asset.filename));
    }
    Ok(response.into_response())
}

/// `attachment; filename="…"; filename*=UTF-8''…` (RFC 6266): an ASCII
/// fallback and the exact name percent-encoded.
fn attachment(name: &str) -> HeaderValue {
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    HeaderValue::from_str(&format!(
        "attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"
    ))
    .unwrap_or(HeaderValue::from_static("attachment"))
}

#[cfg(test)]
mod tests {
    use super::attachment;

    #[test]
    fn download_names_survive_any_characters() {
        assert_eq!(
            attachment("clip 1.mp4"),
            "attachment; filename=\"clip 1.mp4\"; filename*=UTF-8''clip%201.mp4"
        );
        assert_eq!(
            attachment("été \"x\".mov"),
            "attachment; filename=\"_t_ _x_.mov\"; filename*=UTF-8''%C3%A9t%C3%A9%20%22x%22.mov"
        );
    }
}
