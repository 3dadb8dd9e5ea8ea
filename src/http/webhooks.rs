//! `/api/webhooks`: the endpoints events are POSTed to (Standard
//! Webhooks), and the log of their deliveries.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use streamforge_actors::imports::guard::Refusal;
use streamforge_actors::webhooks::endpoints::MAX_DELIVERIES_LISTED;
use streamforge_actors::webhooks::{DeliveryState, Endpoint, EndpointError, NewEndpoint};

use super::AppState;
use super::api_doc::ErrorEnvelope;
use super::error::ApiError;

fn endpoint_error(err: EndpointError) -> ApiError {
    match err {
        EndpointError::Invalid(invalid) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_webhook",
            invalid.to_string(),
        ),
        EndpointError::NotFound(_) => ApiError::not_found(err.to_string()),
        EndpointError::FromConfig(_) => {
            ApiError::new(StatusCode::CONFLICT, "defined_in_config", err.to_string())
        }
        EndpointError::Db(err) => ApiError::database("webhook endpoints", &err),
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Created {
    #[serde(flatten)]
    endpoint: Endpoint,
    /// The signing secret (`whsec_…`): shown once, at creation.
    secret: String,
}

/// `POST /api/webhooks {"url", "events", "secret"?, "description"?}`:
/// 201 with the endpoint and its secret.
#[utoipa::path(post, path = "/api/webhooks", tag = "webhooks",
    request_body = NewEndpoint,
    security((), ("bearer" = [])),
    responses(
        (status = 201, description = "Created; its secret is shown this once", body = Created),
        (status = 400, description = "invalid_webhook: the URL, an event type or the secret; address_not_allowed: a loopback, private or link-local address (webhook_delivery.allow_private)", body = ErrorEnvelope),
        (status = 503, description = "database_unavailable", body = ErrorEnvelope),
    ))]
pub async fn create(
    State(state): State<AppState>,
    Json(new): Json<NewEndpoint>,
) -> Result<Response, ApiError> {
    // An address in the URL is checked here; a name, at each delivery.
    // (A scheme other than http(s) is the endpoint check's to refuse.)
    if let Err(refusal) = state.webhook_guard.check_text(&new.url)
        && !matches!(refusal, Refusal::Scheme(_))
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "address_not_allowed",
            refusal.to_string(),
        ));
    }
    let (endpoint, secret) = state
        .db
        .create_webhook_endpoint(new)
        .await
        .map_err(endpoint_error)?;
    let location = HeaderValue::from_str(&format!("/api/webhooks/{}", endpoint.id))
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(Created { endpoint, secret }),
    )
        .into_response())
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct List {
    webhooks: Vec<Endpoint>,
}

/// `GET /api/webhooks`: every endpoint, configured or made through the
/// API, oldest first.
#[utoipa::path(get, path = "/api/webhooks", tag = "webhooks",
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The endpoints", body = List),
        (status = 503, description = "database_unavailable", body = ErrorEnvelope),
    ))]
pub async fn list(State(state): State<AppState>) -> Result<Json<List>, ApiError> {
    let webhooks = state
        .db
        .webhook_endpoints()
        .await
        .map_err(|e| ApiError::database("listing webhook endpoints", &e))?;
    Ok(Json(List { webhooks }))
}

/// `GET /api/webhooks/{id}`.
#[utoipa::path(get, path = "/api/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The endpoint", body = Endpoint),
        (status = 404, description = "not_found", body = ErrorEnvelope),
    ))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Endpoint>, ApiError> {
    state
        .db
        .webhook_endpoint(&id)
        .await
        .map_err(|e| ApiError::database("reading a webhook endpoint", &e))?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no webhook endpoint {id}")))
}

/// `DELETE /api/webhooks/{id}`: 204; its pending deliveries are dropped.
/// A configured endpoint is removed from the file instead (409).
#[utoipa::path(delete, path = "/api/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id")),
    security((), ("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "not_found", body = ErrorEnvelope),
        (status = 409, description = "defined_in_config", body = ErrorEnvelope),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .db
        .delete_webhook_endpoint(&id)
        .await
        .map_err(endpoint_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/webhooks/{id}/enable`: a disabled endpoint receives events
/// again, starting with the deliveries that waited.
#[utoipa::path(post, path = "/api/webhooks/{id}/enable", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Enabled", body = Endpoint),
        (status = 404, description = "not_found", body = ErrorEnvelope),
    ))]
pub async fn enable(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Endpoint>, ApiError> {
    state
        .db
        .enable_webhook_endpoint(&id)
        .await
        .map(Json)
        .map_err(endpoint_error)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    /// `pending`, `delivered` or `failed`.
    state: Option<String>,
    /// 1 to 100; 50 by default.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Deliveries {
    deliveries: Vec<streamforge_actors::webhooks::Delivery>,
}

/// `GET /api/webhooks/{id}/deliveries?state=&limit=`: the newest
/// deliveries first, each with every attempt (time, node, status, error,
/// the start of the answer).
#[utoipa::path(get, path = "/api/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id"), DeliveriesQuery),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Deliveries, newest first", body = Deliveries),
        (status = 400, description = "bad_request: an unknown state or a limit out of range", body = ErrorEnvelope),
        (status = 404, description = "not_found", body = ErrorEnvelope),
    ))]
pub async fn deliveries(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<DeliveriesQuery>,
) -> Result<Json<Deliveries>, ApiError> {
    let wanted = match query.state.as_deref() {
        None => None,
        Some(text) => Some(DeliveryState::parse(text).ok_or_else(|| {
            ApiError::bad_request(format!(
                "state is pending, delivered or failed, not {text:?}"
            ))
        })?),
    };
    let limit = query.limit.unwrap_or(50);
    if limit == 0 || limit > MAX_DELIVERIES_LISTED {
        return Err(ApiError::bad_request(format!(
            "limit is 1 to {MAX_DELIVERIES_LISTED}"
        )));
    }
    let deliveries = state
        .db
        .webhook_deliveries(&id, wanted, limit)
        .await
        .map_err(endpoint_error)?;
    Ok(Json(Deliveries { deliveries }))
}
