//! HTTP routes. Handlers parse, authorise, call one hub function and map its error.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, State, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::hub::{Hub, HubError};
use crate::metrics::Metrics;
use crate::protocol::ErrorCode;
use crate::whip;

/// Largest JSON body the API reads.
const MAX_API_BODY_BYTES: usize = 16 * 1024;

/// The header that carries `--create-key` when a server asks for one.
pub const CREATE_KEY_HEADER: &str = "x-tandem-create-key";

/// The Content-Security-Policy of the client's pages: plain ES modules and one style sheet from
/// this server, no inline script or style, media and WebSocket to this origin only. `data:` and
/// `blob:` images are the page icon and the board's PNG/SVG export.
const PAGE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

#[derive(Clone)]
pub struct AppState {
    pub hub: Arc<Hub>,
    pub metrics: Arc<Metrics>,
    pub sessions: Arc<crate::whip::Sessions>,
    /// Class creation per IP address (`--create-per-minute`).
    pub create_rate: Arc<crate::limits::PerIpRate>,
    /// WebSockets per IP address that have not joined (`--ws-max-unjoined-per-ip`).
    pub unjoined: Arc<crate::limits::PerIpCounter>,
    /// Report tickets and the gate on report building.
    pub reports: Arc<crate::reports::Reports>,
}

impl AppState {
    pub fn new(hub: Arc<Hub>, metrics: Arc<Metrics>) -> Self {
        Self {
            create_rate: Arc::new(crate::limits::PerIpRate::per_minute(
                hub.config.create_per_minute,
            )),
            unjoined: crate::limits::PerIpCounter::new(hub.config.ws_max_unjoined_per_ip),
            reports: Arc::default(),
            sessions: Arc::default(),
            hub,
            metrics,
        }
    }
}

pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/api/classes", post(create_class))
        .route("/api/classes/{class_id}", get(class_info))
        .route("/api/classes/{class_id}/report", get(crate::reports::html))
        .route(
            "/api/classes/{class_id}/report.csv",
            get(crate::reports::csv),
        )
        .route(
            "/api/classes/{class_id}/report-ticket",
            post(crate::reports::ticket),
        )
        .route("/api/server", get(server_info))
        .route("/healthz", get(health))
        .route("/metrics", get(metrics))
        .route("/ws", get(websocket))
        .route(
            "/api/classes/{class_id}/netcheck",
            post(crate::netcheck::netcheck),
        )
        .merge(whip::routes())
        .fallback(get(|uri: Uri| async move { crate::web::asset(uri.path()) }))
        .layer(DefaultBodyLimit::max(MAX_API_BODY_BYTES))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// Headers every answer carries: no MIME sniffing, no referrer (links carry tokens in their
/// fragment, but a page's own URL should not travel either), and the page CSP unless the answer
/// set a stricter one of its own (the report).
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(PAGE_CSP),
        );
    }
    response
}

/// `GET /api/server`: what the home page needs to know before it creates a class.
async fn server_info(State(state): State<AppState>) -> Response {
    Json(serde_json::json!({
        "create_key_required": state.hub.config.create_key.is_some(),
    }))
    .into_response()
}

fn same_key(given: &str, expected: &str) -> bool {
    // Digests compared, so the time taken says nothing about how much of the key matched.
    let digest = |s: &str| ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    digest(given).as_ref() == digest(expected).as_ref()
}

/// Creation's gates, in order: a JSON body (a form or `text/plain` from another site's page is
/// refused before anything else), the per-IP rate, then the key. `Some` is the refusal.
fn creation_refused(state: &AppState, peer: SocketAddr, headers: &HeaderMap) -> Option<Response> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        let body = serde_json::json!({"error": {"code": ErrorCode::BadMessage,
            "message": "send the class as JSON (Content-Type: application/json)"}});
        return Some((StatusCode::UNSUPPORTED_MEDIA_TYPE, Json(body)).into_response());
    }
    if state.hub.config.create_per_minute > 0
        && !state
            .create_rate
            .allow(peer.ip(), std::time::Instant::now())
    {
        tracing::warn!(%peer, "class creation rate limited");
        let err = HubError::new(
            ErrorCode::RateLimited,
            "too many classes created from this address; try again in a minute",
        );
        return Some(ApiError(err).into_response());
    }
    if let Some(expected) = &state.hub.config.create_key {
        let given = headers
            .get(CREATE_KEY_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !same_key(given, expected) {
            let err = HubError::new(
                ErrorCode::Unauthorized,
                "this server needs the key for starting classes",
            );
            return Some(ApiError(err).into_response());
        }
    }
    None
}

pub struct ApiError(pub HubError);

impl From<HubError> for ApiError {
    fn from(err: HubError) -> Self {
        Self(err)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self.0.code {
            ErrorCode::BadMessage | ErrorCode::NegotiationFailed => StatusCode::BAD_REQUEST,
            ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden | ErrorCode::NotJoined => StatusCode::FORBIDDEN,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::ClassEnded => StatusCode::GONE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::LimitExceeded => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::PollClosed | ErrorCode::PollAlreadyOpen => StatusCode::CONFLICT,
        };
        let body = serde_json::json!({"error": {"code": self.0.code, "message": self.0.message}});
        (status, Json(body)).into_response()
    }
}

#[derive(Deserialize)]
struct NewClass {
    title: String,
    teacher_name: String,
}

async fn create_class(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    if let Some(refused) = creation_refused(&state, peer, &headers) {
        return Ok(refused);
    }
    let new: NewClass = serde_json::from_slice(&body).map_err(|err| {
        HubError::new(
            ErrorCode::BadMessage,
            format!("expected {{\"title\", \"teacher_name\"}}: {err}"),
        )
    })?;
    let created = state
        .hub
        .create_class(&new.title, &new.teacher_name)
        .await?;
    let base = base_url(&state.hub, &headers);
    let body = serde_json::json!({
        "class_id": created.class_id,
        "title": created.title,
        "teacher_name": created.teacher_name,
        "teacher_token": created.teacher_token,
        "invite_token": created.invite_token,
        "pupil_token": created.pupil_token,
        "pupil_url": format!("{base}/vote/{}#token={}", created.class_id, created.pupil_token),
        "teacher_url": format!("{base}/teach/{}#token={}", created.class_id, created.teacher_token),
        "invite_url": format!("{base}/join/{}#token={}", created.class_id, created.invite_token),
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

fn base_url(hub: &Hub, headers: &HeaderMap) -> String {
    if let Some(url) = &hub.config.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| hub.config.listen.to_string());
    let scheme = if hub.config.https() { "https" } else { "http" };
    format!("{scheme}://{host}")
}

#[derive(Deserialize)]
struct TokenQuery {
    token: String,
}

async fn class_info(
    State(state): State<AppState>,
    Path(class_id): Path<String>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let record = state.hub.class_for_token(&class_id, &query.token)?;
    let mut body = serde_json::json!({
        "class_id": record.class_id,
        "title": record.title,
        "teacher_name": record.teacher_name,
        "state": "live",
    });
    // The teacher gets the class's links again, whichever device the class was started on.
    if let Some((invite, pupil)) = state.hub.links_for_teacher(&class_id, &query.token) {
        let base = base_url(&state.hub, &headers);
        body["invite_url"] = format!("{base}/join/{class_id}#token={invite}").into();
        body["pupil_url"] = format!("{base}/vote/{class_id}#token={pupil}").into();
    }
    Ok(Json(body).into_response())
}

/// `ok` while the server can hold a lesson; 503 once the media plane has stopped (a panic in its
/// loop), so a load balancer or service manager stops sending classes here.
async fn health(State(state): State<AppState>) -> Response {
    if state.hub.sfu.is_running() {
        "ok".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "media plane stopped").into_response()
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let (classes, participants) = state.hub.census();
    state.metrics.set_pupils(state.hub.pupil_census());
    let text = state.metrics.render(classes, participants);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn websocket(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(unjoined) = state.unjoined.acquire(peer.ip()) else {
        tracing::warn!(%peer, "too many unjoined WebSockets from one address");
        let err = HubError::new(
            ErrorCode::RateLimited,
            "too many connections from this address are waiting to join",
        );
        return ApiError(err).into_response();
    };
    // The limit applies to each frame as it arrives and to the whole message, so an oversized
    // message is refused before it is buffered.
    let max = state.hub.config.ws_max_message_bytes;
    upgrade
        .max_frame_size(max)
        .max_message_size(max)
        .on_upgrade(move |socket| crate::ws::serve(state.hub, socket, unjoined))
}
