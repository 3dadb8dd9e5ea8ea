//! WHIP (RFC 9725): WebRTC publishers post their SDP offer to
//! `/whip/{stream}` with the stream key as the bearer token and get the
//! SDP answer and the session's URL; `PATCH` on that URL trickles ICE
//! candidates, `DELETE` ends the publish. The sessions themselves are
//! `streamforge_actors::live::whip`'s.

use std::net::{IpAddr, SocketAddr};

use axum::Extension;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use streamforge_actors::live::PublishError;
use streamforge_actors::live::whip::WhipError;
use streamforge_protocols::rtmp::PublishRejection;

use super::AppState;
use super::api_doc::ErrorEnvelope;
use super::error::ApiError;

const SDP: &str = "application/sdp";
const SDP_FRAGMENT: &str = "application/trickle-ice-sdpfrag";

fn whip_error(err: WhipError) -> Response {
    let message = err.to_string();
    let (status, code) = match &err {
        WhipError::BadOffer(_) => (StatusCode::BAD_REQUEST, "bad_offer"),
        WhipError::NoUsableMedia | WhipError::Negotiation(_) => {
            (StatusCode::BAD_REQUEST, "unsupported_media")
        }
        WhipError::Publish(PublishError::Rejected(_, PublishRejection::BadName)) => {
            let mut response =
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"streamforge-whip\""),
            );
            return response;
        }
        WhipError::Publish(PublishError::Rejected(..)) => (StatusCode::CONFLICT, "stream_busy"),
        WhipError::Publish(PublishError::Db(err)) => {
            return ApiError::database("decide on a WHIP publish", err).into_response();
        }
        WhipError::Publish(PublishError::Unavailable(_)) | WhipError::Full(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        }
        WhipError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        WhipError::BadFragment(_) => (StatusCode::BAD_REQUEST, "bad_fragment"),
        WhipError::IceRestart => (StatusCode::UNPROCESSABLE_ENTITY, "ice_restart_unsupported"),
        WhipError::NoCandidate | WhipError::Start(_) => {
            tracing::error!(%err, "whip");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal")
        }
    };
    ApiError::new(status, code, message).into_response()
}

/// The request's body type must be `expected`.
fn content_type_refusal(headers: &HeaderMap, expected: &str) -> Option<Response> {
    let given = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    if given.is_some_and(|g| g.eq_ignore_ascii_case(expected)) {
        return None;
    }
    Some(
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("send the body as {expected}"),
        )
        .into_response(),
    )
}

/// The address the client reached this server at, from `Host` (HTTP/1.1)
/// or the URI's authority (HTTP/2, HTTP/3): where it can send WebRTC media
/// too, unless `live.webrtc_candidates` says. Only asked when the WebRTC
/// port listens on an unspecified address.
async fn reached(headers: &HeaderMap, uri: &axum::http::Uri) -> Option<IpAddr> {
    let host = match headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
        Some(host) => host,
        None => uri.authority()?.as_str(),
    };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Some(ip);
    }
    let lookup = tokio::net::lookup_host((name, 0));
    tokio::time::timeout(std::time::Duration::from_secs(2), lookup)
        .await
        .ok()?
        .ok()?
        .next()
        .map(|a| a.ip())
}

/// Publishes `stream` over WebRTC: the body is the publisher's SDP offer
/// (H.264 video and/or Opus audio, `sendonly`); the answer comes back with
/// the session's URL in `Location`. The stream key is the bearer token
/// (or `stream` is the key itself; with `live.open_publish`, no key).
#[utoipa::path(post, path = "/whip/{stream}", tag = "live",
    params(("stream" = String, Path, description = "The stream to publish")),
    request_body(content = String, content_type = "application/sdp", description = "The SDP offer"),
    security((), ("bearer" = [])),
    responses(
        (status = 201, description = "The SDP answer; `Location` is the session's URL",
            content_type = "application/sdp", body = String,
            headers(
                ("Location" = String, description = "The session: PATCH to trickle, DELETE to end"),
                ("ETag" = String, description = "The ICE session's entity tag"),
            )),
        (status = 400, description = "bad_offer, unsupported_media: an offer the server cannot take", body = ErrorEnvelope),
        (status = 401, description = "unauthorized: a missing or wrong stream key", body = ErrorEnvelope),
        (status = 409, description = "stream_busy: another publisher is live", body = ErrorEnvelope),
        (status = 415, description = "unsupported_media_type: not application/sdp", body = ErrorEnvelope),
        (status = 503, description = "whip_off, unavailable: WHIP is off on this node, or full", body = ErrorEnvelope),
    )
)]
pub async fn publish(
    State(state): State<AppState>,
    Path(stream): Path<String>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: String,
) -> Response {
    let Some(whip) = state.whip.as_ref() else {
        return ApiError::unavailable(
            "whip_off",
            "WHIP is off on this node (live.webrtc, or no ingest role in node.roles)",
        )
        .into_response();
    };
    if let Some(refusal) = content_type_refusal(&headers, SDP) {
        return refusal;
    }
    // The scheme is case-insensitive (RFC 9110 §11.1).
    let key = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim())
        .filter(|k| !k.is_empty());
    let name = match key {
        Some(key) => format!("{stream}?key={key}"),
        None => stream.clone(),
    };
    let stream = match state.live.authorize("live", &name).await {
        Ok(stream) => stream,
        Err(err) => return whip_error(err.into()),
    };
    let remote = connect.map_or_else(
        || SocketAddr::from(([0, 0, 0, 0], 0)),
        |Extension(ConnectInfo(peer))| peer,
    );
    let reached = match whip.local_addr().ip().is_unspecified() {
        true => reached(&headers, &uri).await,
        false => None,
    };
    match whip
        .offer(&state.live, &stream, &body, remote, reached)
        .await
    {
        Ok(answer) => {
            let location = format!("/whip/{stream}/{}", answer.id);
            (
                StatusCode::CREATED,
                [
                    (header::CONTENT_TYPE, SDP.to_owned()),
                    (header::LOCATION, location),
                    // The ICE session's tag (RFC 9725 §4.3.1): one per
                    // session, as restarts are not supported.
                    (header::ETAG, etag(&answer.id)),
                ],
                answer.sdp,
            )
                .into_response()
        }
        Err(err) => whip_error(err),
    }
}

fn etag(id: &str) -> String {
    format!("\"{id}\"")
}

/// Trickles the publisher's ICE candidates into its session (RFC 8840
/// fragment). An ICE restart (new credentials) is not supported.
#[utoipa::path(patch, path = "/whip/{stream}/{session}", tag = "live",
    params(
        ("stream" = String, Path, description = "The published stream"),
        ("session" = String, Path, description = "The session, from the publish's Location"),
    ),
    request_body(content = String, content_type = "application/trickle-ice-sdpfrag"),
    responses(
        (status = 204, description = "The candidates were taken"),
        (status = 400, description = "bad_fragment: a candidate that cannot be read", body = ErrorEnvelope),
        (status = 404, description = "not_found: no such session", body = ErrorEnvelope),
        (status = 412, description = "precondition_failed: If-Match names another ICE session", body = ErrorEnvelope),
        (status = 415, description = "unsupported_media_type", body = ErrorEnvelope),
        (status = 422, description = "ice_restart_unsupported", body = ErrorEnvelope),
        (status = 503, description = "whip_off", body = ErrorEnvelope),
    )
)]
pub async fn patch(
    State(state): State<AppState>,
    Path((stream, session)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let Some(whip) = state.whip.as_ref() else {
        return ApiError::unavailable("whip_off", "WHIP is off on this node").into_response();
    };
    if let Some(refusal) = content_type_refusal(&headers, SDP_FRAGMENT) {
        return refusal;
    }
    // A PATCH names the ICE session it is for; another one's is stale.
    if let Some(tag) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok())
        && tag.trim() != "*"
        && tag.trim() != etag(&session)
    {
        return ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
            "If-Match names another ICE session",
        )
        .into_response();
    }
    match whip.patch(&stream, &session, &body).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(err) => whip_error(err),
    }
}

/// Ends the publish (the session's URL, from `Location`).
#[utoipa::path(delete, path = "/whip/{stream}/{session}", tag = "live",
    params(
        ("stream" = String, Path, description = "The published stream"),
        ("session" = String, Path, description = "The session, from the publish's Location"),
    ),
    responses(
        (status = 200, description = "The session ends"),
        (status = 404, description = "not_found: no such session", body = ErrorEnvelope),
        (status = 503, description = "whip_off", body = ErrorEnvelope),
    )
)]
pub async fn end(
    State(state): State<AppState>,
    Path((stream, session)): Path<(String, String)>,
) -> Response {
    let Some(whip) = state.whip.as_ref() else {
        return ApiError::unavailable("whip_off", "WHIP is off on this node").into_response();
    };
    match whip.end(&stream, &session).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(err) => whip_error(err),
    }
}
