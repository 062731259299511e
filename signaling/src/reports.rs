//! The class report over HTTP: who may open it, how it travels, and where it is built.
//!
//! - **No teacher token in a URL.** A script sends the teacher token in an `Authorization: Bearer`
//!   header, either to fetch the report directly (the CSV download) or to get a **report ticket**
//!   (`POST …/report-ticket`): a random, one-use value that opens the report once within
//!   [`TICKET_TTL`]. The teacher page opens `…/report?ticket=…` in a new tab, so what lands in the
//!   browser history or a proxy log is a spent ticket, not a 12-hour teacher token.
//! - **Off the async workers.** Building a report replays the whole board: it runs on the blocking
//!   pool, with a reader connection of its own, rendered there too, and only a few at once
//!   (half the cores): bounded CPU and memory however many are asked for.
//! - **Headers:** `Cache-Control: no-store` and a CSP that allows no script at all.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dashmap::DashMap;
use rand::distr::{Alphanumeric, SampleString};
use serde::Deserialize;
use tokio::sync::Semaphore;

use crate::classboard::report::{ClassReport, report_csp, report_csv, report_html};
use crate::http::{ApiError, AppState};
use crate::hub::HubError;
use crate::protocol::ErrorCode;

/// How long a report ticket stays good.
pub const TICKET_TTL: Duration = Duration::from_secs(60);
/// Report tickets outstanding at once (expired ones are swept before refusing).
const MAX_TICKETS: usize = 10_000;
/// Reports built at once (half the CPU cores, at least one); more wait their turn, so however
/// many are asked for, the other half of the machine keeps serving classes.
fn max_builds() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

/// One-use report tickets and the gate on report building.
pub struct Reports {
    tickets: DashMap<String, (String, Instant)>,
    builds: Semaphore,
}

impl Default for Reports {
    fn default() -> Self {
        Self {
            tickets: DashMap::new(),
            builds: Semaphore::new(max_builds()),
        }
    }
}

impl Reports {
    /// A new ticket for `class_id`'s report.
    fn issue(&self, class_id: &str, now: Instant) -> Result<String, HubError> {
        if self.tickets.len() >= MAX_TICKETS {
            self.tickets.retain(|_, (_, expires)| *expires > now);
            if self.tickets.len() >= MAX_TICKETS {
                return Err(HubError::new(
                    ErrorCode::RateLimited,
                    "too many report tickets outstanding; try again in a minute",
                ));
            }
        }
        let ticket = format!("rt_{}", Alphanumeric.sample_string(&mut rand::rng(), 32));
        self.tickets
            .insert(ticket.clone(), (class_id.to_owned(), now + TICKET_TTL));
        Ok(ticket)
    }

    /// Spend a ticket: whether it was good for `class_id`.
    fn redeem(&self, ticket: &str, class_id: &str, now: Instant) -> bool {
        self.tickets
            .remove(ticket)
            .is_some_and(|(_, (class, expires))| class == class_id && expires > now)
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

fn unauthorized(message: &str) -> ApiError {
    HubError::new(ErrorCode::Unauthorized, message).into()
}

/// `POST /api/classes/{class_id}/report-ticket` with the teacher token as a bearer token.
pub async fn ticket(
    State(state): State<AppState>,
    Path(class_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let token = bearer(&headers)
        .ok_or_else(|| unauthorized("send the teacher token as `Authorization: Bearer <token>`"))?;
    state.hub.authorize_report(&class_id, token)?;
    let ticket = state.reports.issue(&class_id, Instant::now())?;
    let body = serde_json::json!({"ticket": ticket, "expires_in_secs": TICKET_TTL.as_secs()});
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        Json(body),
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct ReportQuery {
    /// A one-use ticket from `report-ticket` (or the teacher token in an `Authorization` header).
    ticket: Option<String>,
    /// The teacher's time zone, minutes east of UTC (times in the report are shown there).
    #[serde(default)]
    utc_offset_minutes: i32,
}

/// Check who asks (a bearer teacher token or a ticket), then build and `render` the report off
/// the async workers.
async fn authorised_report<T: Send + 'static>(
    state: &AppState,
    class_id: &str,
    query: &ReportQuery,
    headers: &HeaderMap,
    render: fn(&ClassReport) -> T,
) -> Result<(ClassReport, T), ApiError> {
    if let Some(token) = bearer(headers) {
        state.hub.authorize_report(class_id, token)?;
    } else if let Some(ticket) = &query.ticket {
        if !state.reports.redeem(ticket, class_id, Instant::now()) {
            return Err(unauthorized(
                "the report ticket is unknown, spent or expired; open the report again from the teacher page",
            ));
        }
    } else {
        return Err(unauthorized(
            "send the teacher token as `Authorization: Bearer <token>` or a `ticket`",
        ));
    }
    let _turn = state
        .reports
        .builds
        .acquire()
        .await
        .map_err(|_| HubError::new(ErrorCode::Internal, "reports are not being built"))?;
    let hub = Arc::clone(&state.hub);
    let (class_id, offset) = (class_id.to_owned(), query.utc_offset_minutes);
    let built = tokio::task::spawn_blocking(move || {
        hub.build_report(&class_id, offset).map(|report| {
            let rendered = render(&report);
            (report, rendered)
        })
    })
    .await
    .map_err(|err| {
        tracing::error!(%err, "report build panicked");
        HubError::new(ErrorCode::Internal, "the report could not be built")
    })??;
    Ok(built)
}

fn no_store(response: &mut Response) {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// `GET /api/classes/{class_id}/report`: the report as a page.
pub async fn html(
    State(state): State<AppState>,
    Path(class_id): Path<String>,
    Query(query): Query<ReportQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (_, page) = authorised_report(&state, &class_id, &query, &headers, report_html).await?;
    let mut response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response();
    no_store(&mut response);
    if let Ok(csp) = HeaderValue::from_str(&report_csp()) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    Ok(response)
}

/// `GET /api/classes/{class_id}/report.csv`: the report as a spreadsheet.
pub async fn csv(
    State(state): State<AppState>,
    Path(class_id): Path<String>,
    Query(query): Query<ReportQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (report, csv) = authorised_report(&state, &class_id, &query, &headers, report_csv).await?;
    let disposition = format!("attachment; filename=\"report-{}.csv\"", report.class_id);
    let mut response = (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        csv,
    )
        .into_response();
    no_store(&mut response);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_opens_its_class_once_and_only_in_time() {
        let reports = Reports::default();
        let t = Instant::now();
        let ticket = reports.issue("c_1", t).unwrap();
        assert!(!reports.redeem(&ticket, "c_2", t), "another class");
        let ticket = reports.issue("c_1", t).unwrap();
        assert!(reports.redeem(&ticket, "c_1", t));
        assert!(!reports.redeem(&ticket, "c_1", t), "spent");
        let late = reports.issue("c_1", t).unwrap();
        assert!(!reports.redeem(&late, "c_1", t + TICKET_TTL), "expired");
    }

    #[test]
    fn bearer_tokens_are_read_from_the_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc.def"),
        );
        assert_eq!(bearer(&headers), Some("abc.def"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&headers), None);
    }
}
