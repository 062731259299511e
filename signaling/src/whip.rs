//! WHIP (RFC 9725) ingest and WHEP playback: standard encoders and players in a class, HTTP + SDP only.
//!
//! A WHIP session is a classroom that only publishes (OBS as the master classroom's camera, say); a
//! WHEP session is a viewer that receives the master classroom's audio and video (a hall display).
//! Both are ordinary participants of the class, seated through the same [`Hub::join`] as a browser,
//! so the forwarding policy treats them like everyone else.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use dashmap::DashMap;
use rand::distr::{Alphanumeric, SampleString};
use tandem_sfu::{IceCandidateInit, Leg, SfuError, Source};
use tokio::sync::mpsc;

use crate::http::AppState;
use crate::hub::{Hub, HubError, Seat, unix_now};
use crate::protocol::{ErrorCode, ServerMessage};
use crate::token::TokenError;

const SDP: &str = "application/sdp";
const TRICKLE: &str = "application/trickle-ice-sdpfrag";
/// How long a browser may cache a CORS preflight answer, in seconds.
const CORS_MAX_AGE_SECS: &str = "86400";

/// The WHIP and WHEP endpoints and sessions. RFC 9725 §4.2 wants `OPTIONS` answered on both
/// and CORS, so that a player or encoder served from another origin can use them: `OPTIONS`
/// doubles as the CORS preflight answer, and every answer lets the page read `Location`,
/// `Link` and `ETag`. (Tokens travel in `Authorization`, never in cookies, so any origin may ask.)
pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route(
            "/whip/{class_id}",
            post(whip_create).options(endpoint_options),
        )
        .route(
            "/whip/{class_id}/{session}",
            delete(whip_delete)
                .patch(whip_patch)
                .options(session_options),
        )
        .route(
            "/whep/{class_id}",
            post(whep_create).options(endpoint_options),
        )
        .route(
            "/whep/{class_id}/{session}",
            delete(whep_delete)
                .patch(whep_patch)
                .options(session_options),
        )
        .layer(axum::middleware::map_response(cors))
}

/// CORS on every WHIP/WHEP answer.
async fn cors(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Location, Link, ETag, Accept-Post, Accept-Patch"),
    );
    response
}

/// What a CORS preflight needs to hear, with the methods of the resource asked about.
fn preflight(allow: &'static str) -> [(HeaderName, &'static str); 4] {
    [
        (header::ALLOW, allow),
        (header::ACCESS_CONTROL_ALLOW_METHODS, allow),
        (
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            "Authorization, Content-Type, If-Match",
        ),
        (header::ACCESS_CONTROL_MAX_AGE, CORS_MAX_AGE_SECS),
    ]
}

/// `OPTIONS` on an endpoint: what it takes (RFC 9725 §4.2: `Accept-Post: application/sdp`).
async fn endpoint_options() -> Response {
    (
        StatusCode::NO_CONTENT,
        preflight("POST, OPTIONS"),
        [(HeaderName::from_static("accept-post"), SDP)],
    )
        .into_response()
}

/// `OPTIONS` on a session: trickle ICE and ICE restarts go by `PATCH` with an SDP fragment.
async fn session_options() -> Response {
    (
        StatusCode::NO_CONTENT,
        preflight("PATCH, DELETE, OPTIONS"),
        [(HeaderName::from_static("accept-patch"), TRICKLE)],
    )
        .into_response()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// WHIP: the client publishes.
    Ingest,
    /// WHEP: the client receives.
    Playback,
}

impl Direction {
    fn path(self) -> &'static str {
        match self {
            Direction::Ingest => "whip",
            Direction::Playback => "whep",
        }
    }

    fn leg(self) -> Leg {
        match self {
            Direction::Ingest => Leg::Publish,
            Direction::Playback => Leg::Subscribe,
        }
    }
}

struct Session {
    seat: Seat,
    direction: Direction,
    /// The client's ICE ufrag, as its ETag: a PATCH with another one is an ICE restart.
    ice_ufrag: String,
}

/// Live WHIP/WHEP sessions, by the id in their `Location`.
#[derive(Default)]
pub struct Sessions(DashMap<String, Session>);

/// An HTTP error in the shape every Tandem API error has.
pub(crate) struct WhipError(
    pub(crate) StatusCode,
    pub(crate) ErrorCode,
    pub(crate) String,
);

impl IntoResponse for WhipError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.1, "message": self.2}});
        (self.0, axum::Json(body)).into_response()
    }
}

impl From<HubError> for WhipError {
    fn from(err: HubError) -> Self {
        let status = match err.code {
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::ClassEnded => StatusCode::GONE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        WhipError(status, err.code, err.message)
    }
}

pub(crate) fn sdp_error(err: SfuError) -> WhipError {
    match err {
        SfuError::NothingToView => WhipError(
            StatusCode::CONFLICT,
            ErrorCode::NotFound,
            "the master classroom is not publishing yet; try again when the lesson has started"
                .into(),
        ),
        SfuError::Stopped => WhipError(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal,
            err.to_string(),
        ),
        other => WhipError(
            StatusCode::BAD_REQUEST,
            ErrorCode::NegotiationFailed,
            format!("the SDP offer cannot be used: {other}"),
        ),
    }
}

/// The token of an `Authorization: Bearer <token>` header. The scheme name is case-insensitive
/// (RFC 9110 §11.1), so `bearer` and `BEARER` are as good as `Bearer`.
pub(crate) fn bearer(headers: &HeaderMap) -> Result<&str, WhipError> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|token| !token.is_empty())
        .ok_or_else(|| {
            WhipError(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthorized,
                "send `Authorization: Bearer <token>` with a teacher or invite token".into(),
            )
        })
}

pub(crate) fn require_content_type(headers: &HeaderMap, want: &str) -> Result<(), WhipError> {
    let got = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if got.split(';').next().map(str::trim) == Some(want) {
        Ok(())
    } else {
        Err(WhipError(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::BadMessage,
            format!("expected Content-Type: {want}"),
        ))
    }
}

/// Whether an `If-Match` header value (RFC 9110 §13.1.1) lets a request on the resource whose
/// current entity tag is `etag` (quoted) through: `*`, or a list of entity tags one of which is
/// `etag` by strong comparison (a weak tag `W/"…"` never matches).
fn if_match_allows(if_match: &str, etag: &str) -> bool {
    let if_match = if_match.trim();
    if if_match == "*" {
        return true;
    }
    if_match.split(',').map(str::trim).any(|tag| tag == etag)
}

/// The value of the first `a=<name>:` line of an SDP (or SDP fragment).
fn attribute<'a>(sdp: &'a str, name: &str) -> Option<&'a str> {
    sdp.lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("a=")?
                .strip_prefix(name)?
                .strip_prefix(':')
        })
        .map(str::trim)
}

/// Check the class and token the way RFC 9725 wants the answers: 404, 401, 403.
pub(crate) fn authorise(hub: &Hub, class_id: &str, token: &str) -> Result<(), WhipError> {
    hub.class_for_token(class_id, token)
        .map(|_| ())
        .map_err(|err| -> WhipError {
            if err.code == ErrorCode::Unauthorized
                && hub.tokens.verify(token, class_id, unix_now()) == Err(TokenError::OtherClass)
            {
                WhipError(
                    StatusCode::FORBIDDEN,
                    ErrorCode::Forbidden,
                    "the token is for another class".into(),
                )
            } else {
                err.into()
            }
        })?;
    // A pupil's voting link carries no media, in either direction.
    match hub.tokens.verify(token, class_id, unix_now()) {
        Ok(claims) if claims.role == crate::protocol::ParticipantRole::Pupil => Err(WhipError(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "a pupil voting link cannot publish or watch media".into(),
        )),
        _ => Ok(()),
    }
}

async fn create(
    state: AppState,
    direction: Direction,
    class_id: String,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WhipError> {
    let hub = &state.hub;
    forget_ended(&state.sessions, hub);
    let token = bearer(&headers)?;
    authorise(hub, &class_id, token)?;
    require_content_type(&headers, SDP)?;
    let offer = String::from_utf8(body.to_vec()).map_err(|_| {
        WhipError(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadMessage,
            "the offer is not UTF-8".into(),
        )
    })?;
    if !offer.trim_start().starts_with("v=0") {
        return Err(WhipError(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadMessage,
            "the body is not an SDP offer".into(),
        ));
    }
    let ice_ufrag = attribute(&offer, "ice-ufrag")
        .unwrap_or_default()
        .to_owned();

    // The session's participant has no WebSocket: its class messages are read and dropped.
    let (outbox, mut discard) = mpsc::channel::<ServerMessage>(hub.config.ws_outbox);
    tokio::spawn(async move { while discard.recv().await.is_some() {} });
    let name = match direction {
        Direction::Ingest => "WHIP encoder",
        Direction::Playback => "WHEP viewer",
    };
    let seat = hub
        .join(
            token,
            name,
            None,
            false,
            outbox,
            direction == Direction::Playback,
        )
        .await?;
    hub.mark_http_session(&seat);

    let answered = match direction {
        Direction::Ingest => {
            // An encoder only sends: no subscribe leg (the command queue keeps this before the
            // offer).
            let _ = hub.sfu.set_publish_only(seat.classroom_id.clone());
            let sources = declared_sources(&offer);
            hub.sfu
                .publish_offer(seat.classroom_id.clone(), offer, sources)
                .await
        }
        Direction::Playback => hub.sfu.view_offer(seat.classroom_id.clone(), offer).await,
    };
    let answer = match answered {
        Ok(answer) => answer,
        Err(err) => {
            // The class goes on without the failed session.
            hub.leave(&seat);
            return Err(sdp_error(err));
        }
    };

    let ice_servers = crate::turn::ice_servers(
        &hub.config,
        std::time::SystemTime::now(),
        seat.classroom_id.as_str(),
    );
    let id = Alphanumeric.sample_string(&mut rand::rng(), 20);
    let location = format!("/{}/{class_id}/{id}", direction.path());
    tracing::info!(class = %class_id, classroom = %seat.classroom_id, ?direction, "WHIP/WHEP session opened");
    state.sessions.0.insert(
        id,
        Session {
            seat,
            direction,
            ice_ufrag: ice_ufrag.clone(),
        },
    );
    let mut response = (StatusCode::CREATED, answer).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(SDP));
    if let Ok(v) = HeaderValue::from_str(&location) {
        h.insert(header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{ice_ufrag}\"")) {
        h.insert(header::ETAG, v);
    }
    // RFC 9725 §4.6: the TURN servers (with this session's credentials) the client may use.
    for link in crate::turn::link_headers(&ice_servers) {
        if let Ok(v) = HeaderValue::from_str(&link) {
            h.append(header::LINK, v);
        }
    }
    Ok(response)
}

/// A WHIP publisher's tracks: camera and microphone by kind (encoders send one of each).
fn declared_sources(offer: &str) -> Vec<(String, Source)> {
    let mut sources = Vec::new();
    let mut kind = "";
    for line in offer.lines() {
        if let Some(media) = line.strip_prefix("m=") {
            kind = media.split(' ').next().unwrap_or("");
        } else if let Some(msid) = line.trim().strip_prefix("a=msid:")
            && let Some(track) = msid.split_whitespace().nth(1)
        {
            {
                let source = if kind == "audio" {
                    Source::Microphone
                } else {
                    Source::Camera
                };
                sources.push((track.to_owned(), source));
            }
        }
    }
    sources
}

async fn end(
    state: AppState,
    direction: Direction,
    class_id: String,
    id: String,
    headers: HeaderMap,
) -> Result<Response, WhipError> {
    let session = find(&state, direction, &class_id, &id, &headers)?;
    drop(session);
    if let Some((_, session)) = state.sessions.0.remove(&id) {
        state.hub.leave(&session.seat);
        tracing::info!(classroom = %session.seat.classroom_id, "WHIP/WHEP session ended");
    }
    Ok(StatusCode::OK.into_response())
}

/// The session at `/<direction>/<class_id>/<id>`, if the caller holds a token of its class. A
/// session id under another class's path is no resource at all (404), as for a mistyped id.
fn find<'a>(
    state: &'a AppState,
    direction: Direction,
    class_id: &str,
    id: &str,
    headers: &HeaderMap,
) -> Result<dashmap::mapref::one::Ref<'a, String, Session>, WhipError> {
    let token = bearer(headers)?;
    let session = state
        .sessions
        .0
        .get(id)
        .filter(|s| s.direction == direction && s.seat.class_id.as_str() == class_id)
        // A session removed by the hub (its media leg was lost) is gone for HTTP too.
        .filter(|s| state.hub.is_seated(&s.seat))
        .ok_or_else(|| {
            WhipError(
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                "no such session".into(),
            )
        })?;
    authorise(&state.hub, session.seat.class_id.as_str(), token)?;
    Ok(session)
}

/// Trickle ICE (RFC 9725 §4.3.1) and ICE restart (§4.3.2) by `PATCH` with an SDP fragment.
async fn patch(
    state: AppState,
    direction: Direction,
    class_id: String,
    id: String,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WhipError> {
    let session = find(&state, direction, &class_id, &id, &headers)?;
    require_content_type(&headers, TRICKLE)?;
    let etag = format!("\"{}\"", session.ice_ufrag);
    if let Some(if_match) = headers.get(header::IF_MATCH)
        && !if_match
            .to_str()
            .is_ok_and(|if_match| if_match_allows(if_match, &etag))
    {
        return Err(WhipError(
            StatusCode::PRECONDITION_FAILED,
            ErrorCode::BadMessage,
            "If-Match does not name this ICE session".into(),
        ));
    }
    let fragment = String::from_utf8_lossy(&body).into_owned();
    let classroom = session.seat.classroom_id.clone();
    let restart = attribute(&fragment, "ice-ufrag")
        .filter(|ufrag| *ufrag != session.ice_ufrag)
        .map(str::to_owned);
    drop(session);
    if let Some(ufrag) = restart {
        // An ICE restart (RFC 9725 §4.3.2): the client's new credentials, the server's fragment back.
        let pwd = attribute(&fragment, "ice-pwd")
            .ok_or_else(|| {
                WhipError(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::BadMessage,
                    "an ICE restart needs a=ice-pwd too".into(),
                )
            })?
            .to_owned();
        let answer = state
            .hub
            .sfu
            .restart_ice(classroom, direction.leg(), ufrag.clone(), pwd)
            .await
            .map_err(sdp_error)?;
        if let Some(mut session) = state.sessions.0.get_mut(&id) {
            session.ice_ufrag = ufrag.clone();
        }
        let mut response = (StatusCode::OK, answer).into_response();
        let h = response.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(TRICKLE));
        if let Ok(v) = HeaderValue::from_str(&format!("\"{ufrag}\"")) {
            h.insert(header::ETAG, v);
        }
        return Ok(response);
    }
    let mut mid = None;
    let mut candidates = Vec::new();
    for line in fragment.lines().map(str::trim) {
        if let Some(m) = line.strip_prefix("a=mid:") {
            mid = Some(m.to_owned());
        } else if let Some(c) = line.strip_prefix("a=")
            && c.starts_with("candidate:")
        {
            candidates.push(IceCandidateInit {
                candidate: c.to_owned(),
                sdp_mid: mid.clone(),
                ..Default::default()
            });
        }
    }
    for candidate in candidates {
        state
            .hub
            .sfu
            .add_remote_candidate(classroom.clone(), direction.leg(), candidate)
            .await
            .map_err(sdp_error)?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn whip_create(
    State(state): State<AppState>,
    Path(class_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    create(state, Direction::Ingest, class_id, headers, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

pub async fn whep_create(
    State(state): State<AppState>,
    Path(class_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    create(state, Direction::Playback, class_id, headers, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

pub async fn whip_delete(
    State(state): State<AppState>,
    Path((class_id, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    end(state, Direction::Ingest, class_id, id, headers)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

pub async fn whep_delete(
    State(state): State<AppState>,
    Path((class_id, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    end(state, Direction::Playback, class_id, id, headers)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

pub async fn whip_patch(
    State(state): State<AppState>,
    Path((class_id, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    patch(state, Direction::Ingest, class_id, id, headers, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

pub async fn whep_patch(
    State(state): State<AppState>,
    Path((class_id, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    patch(state, Direction::Playback, class_id, id, headers, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// Sessions end with their class: forget the ones whose participant is gone.
fn forget_ended(sessions: &Sessions, hub: &Hub) {
    sessions.0.retain(|_, s| hub.is_seated(&s.seat));
}
