//! HTTP routes. Handlers parse, authorise, call one hub function and map its error.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, Query, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Deserialize;

use crate::hub::{Hub, HubError};
use crate::metrics::Metrics;
use crate::protocol::ErrorCode;
use crate::whip;

/// Largest JSON body the API reads.
const MAX_API_BODY_BYTES: usize = 16 * 1024;
/// Hard cap on one WebSocket message; above `ws_max_message_bytes` and below this the client gets
/// `too_large` and stays connected, above this the connection is closed.
const WS_HARD_MAX_MESSAGE_BYTES: usize = 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub hub: Arc<Hub>,
    pub metrics: Arc<Metrics>,
    pub sessions: Arc<crate::whip::Sessions>,
}

pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/api/classes", post(create_class))
        .route("/api/classes/{class_id}", get(class_info))
        .route("/api/classes/{class_id}/report", get(report_html))
        .route("/api/classes/{class_id}/report.csv", get(report_csv))
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/ws", get(websocket))
        .route(
            "/api/classes/{class_id}/netcheck",
            post(crate::netcheck::netcheck),
        )
        .route("/whip/{class_id}", post(whip::whip_create))
        .route(
            "/whip/{class_id}/{session}",
            delete(whip::whip_delete).patch(whip::whip_patch),
        )
        .route("/whep/{class_id}", post(whip::whep_create))
        .route(
            "/whep/{class_id}/{session}",
            delete(whip::whep_delete).patch(whip::whep_patch),
        )
        .fallback(get(|uri: Uri| async move { crate::web::asset(uri.path()) }))
        .layer(DefaultBodyLimit::max(MAX_API_BODY_BYTES))
        .with_state(state)
}

pub struct ApiError(HubError);

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
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let new: NewClass = serde_json::from_slice(&body).map_err(|err| {
        HubError::new(
            ErrorCode::BadMessage,
            format!("expected {{\"title\", \"teacher_name\"}}: {err}"),
        )
    })?;
    let created = state.hub.create_class(&new.title, &new.teacher_name)?;
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

#[derive(Deserialize)]
struct ReportQuery {
    token: String,
    /// The teacher's time zone, minutes east of UTC (times in the report are shown there).
    #[serde(default)]
    utc_offset_minutes: i32,
}

async fn report_html(
    State(state): State<AppState>,
    Path(class_id): Path<String>,
    Query(query): Query<ReportQuery>,
) -> Result<Response, ApiError> {
    let report = state
        .hub
        .report(&class_id, &query.token, query.utc_offset_minutes)?;
    let html = crate::classboard::report::report_html(&report);
    Ok(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response())
}

async fn report_csv(
    State(state): State<AppState>,
    Path(class_id): Path<String>,
    Query(query): Query<ReportQuery>,
) -> Result<Response, ApiError> {
    let report = state
        .hub
        .report(&class_id, &query.token, query.utc_offset_minutes)?;
    let csv = crate::classboard::report::report_csv(&report);
    let disposition = format!("attachment; filename=\"report-{}.csv\"", report.class_id);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        csv,
    )
        .into_response())
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

async fn websocket(State(state): State<AppState>, upgrade: WebSocketUpgrade) -> Response {
    upgrade
        .max_message_size(WS_HARD_MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| crate::ws::serve(state.hub, socket))
}
