//! `POST /api/classes/{class_id}/netcheck`: the device check's test of the school's network.
//!
//! The browser sends an SDP offer with a class token (teacher or invite link); the media plane
//! answers it on a probe leg that closes by itself after a few seconds (`tandem_sfu::router::
//! PROBE_LIFETIME`). The answer carries the same candidates a lesson gets (UDP, and ICE-TCP on
//! the same port number), and the TURN servers come as RFC 9725 `Link` headers with credentials
//! of their own, so the page can try each path on its own and tell the teacher which worked.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::http::AppState;
use crate::protocol::ErrorCode;
use crate::whip::{WhipError, authorise, bearer, require_content_type, sdp_error};

/// Largest offer accepted (a browser's offer with one section is a few KiB).
const MAX_OFFER_BYTES: usize = 16 * 1024;

pub async fn netcheck(
    State(state): State<AppState>,
    Path(class_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer(state, class_id, headers, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn answer(
    state: AppState,
    class_id: String,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WhipError> {
    let hub = &state.hub;
    authorise(hub, &class_id, bearer(&headers)?)?;
    require_content_type(&headers, "application/sdp")?;
    if body.len() > MAX_OFFER_BYTES {
        return Err(WhipError(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::TooLarge,
            format!("an offer is at most {MAX_OFFER_BYTES} bytes"),
        ));
    }
    let offer = std::str::from_utf8(&body)
        .ok()
        .filter(|sdp| sdp.trim_start().starts_with("v=0"))
        .ok_or_else(|| {
            WhipError(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadMessage,
                "the body is not an SDP offer".into(),
            )
        })?
        .to_owned();
    let answer = hub.sfu.probe_offer(offer).await.map_err(|err| match err {
        tandem_sfu::SfuError::NotAllowed(why) => WhipError(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::RateLimited,
            why.into(),
        ),
        other => sdp_error(other),
    })?;
    tracing::debug!(class = %class_id, "network check answered");
    let servers = crate::turn::ice_servers(&hub.config, std::time::SystemTime::now(), "netcheck");
    let mut response = (StatusCode::CREATED, answer).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/sdp"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for link in crate::turn::link_headers(&servers) {
        if let Ok(v) = HeaderValue::from_str(&link) {
            h.append(header::LINK, v);
        }
    }
    Ok(response)
}
