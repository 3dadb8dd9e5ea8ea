//! The browser UI: `web/dist` (built from `web/` by `scripts/setup`) served
//! at `/`, the API reference at `/api-reference`, their hashed bundles
//! under `/static/` cached for good.

use std::path::Path;

use axum::Router;
use http::{HeaderValue, header};
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeaderLayer;

use super::AppState;

/// Routes for the UI in `dir`. A missing build is logged once; its routes
/// then answer 404 like any other missing file.
pub fn routes(dir: &Path) -> Router<AppState> {
    let index = dir.join("index.html");
    if !index.is_file() {
        tracing::warn!(
            dir = %dir.display(),
            "the web UI is not built (run scripts/setup, or set http.web_dir); / will answer 404"
        );
    }
    let page = |file: std::path::PathBuf| {
        tower::ServiceBuilder::new()
            .layer(SetResponseHeaderLayer::overriding(
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-cache"),
            ))
            .service(ServeFile::new(file))
    };
    let bundles = tower::ServiceBuilder::new()
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        ))
        .service(ServeDir::new(dir.join("static")));
    Router::new()
        .route_service("/", page(index))
        // The API reference: Swagger UI over /api/openapi.json.
        .route_service("/api-reference", page(dir.join("api.html")))
        .nest_service("/static", bundles)
}
