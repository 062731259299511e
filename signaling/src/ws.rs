//! One WebSocket connection: parse, rate-limit, authorise, call the hub, write replies.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use tandem_sfu::{Leg, Source};
use tokio::sync::mpsc;

use crate::hub::{Hub, HubError, Seat};
use crate::limits::IpGuard;
use crate::protocol::{ClientMessage, ErrorCode, ServerMessage};

/// A token bucket: `rate` messages per second sustained, `burst` at once.
struct RateLimit {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl RateLimit {
    fn new(rate: u32, burst: u32) -> Self {
        Self {
            rate: rate as f64,
            burst: burst as f64,
            tokens: burst as f64,
            at: Instant::now(),
        }
    }

    fn allow(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Close codes (RFC 6455 §7.4.1) this server sends.
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_POLICY: u16 = 1008;
const CLOSE_TOO_BIG: u16 = 1009;

async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

/// Serve one WebSocket. `unjoined` is this socket's place under the per-IP cap on sockets that
/// have not joined a class: given back at `join` (or when the socket closes).
pub async fn serve(hub: Arc<Hub>, mut socket: WebSocket, unjoined: IpGuard) {
    let mut unjoined = Some(unjoined);
    let join_deadline =
        tokio::time::Instant::now() + Duration::from_secs(hub.config.ws_join_timeout_secs);
    let mut shutdown = hub.shutdown_signal();
    let config = &hub.config;
    let (outbox, mut outbox_rx) = mpsc::channel::<ServerMessage>(config.ws_outbox);
    // Until joined, this connection holds its own outbox; once joined the class holds it, so the
    // class can close a connection by dropping it.
    let mut own_outbox = Some(outbox);
    let mut seat: Option<Seat> = None;
    let mut limit = RateLimit::new(config.ws_max_messages_per_sec, config.ws_burst);
    let mut ping = tokio::time::interval(Duration::from_secs(config.heartbeat_secs));
    let timeout = Duration::from_secs(config.heartbeat_timeout_secs);
    let mut last_heard = Instant::now();
    let mut left = false;

    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(join_deadline), if seat.is_none() => {
                let message = format!("send `join` within {} s of connecting", config.ws_join_timeout_secs);
                reply(&mut socket, ServerMessage::error(ErrorCode::NotJoined, message, None)).await;
                close(&mut socket, CLOSE_POLICY, "join timeout").await;
                break;
            },
            _ = crate::serve::until_shutdown(&mut shutdown) => {
                // The class goes on after the restart: the client reconnects and resumes. Its
                // attendance is closed by the hub's shutdown, not as a leave.
                reply(&mut socket, ServerMessage::ServerGoingAway).await;
                close(&mut socket, CLOSE_GOING_AWAY, "server shutting down").await;
                return;
            },
            out = outbox_rx.recv() => match out {
                Some(message) => {
                    let ended = matches!(message, ServerMessage::ClassEnded);
                    if send(&mut socket, &message).await.is_err() || ended {
                        left = ended;
                        break;
                    }
                }
                // The class let go of this connection (ended, or it stopped reading).
                None => break,
            },
            _ = ping.tick() => {
                if last_heard.elapsed() > timeout {
                    tracing::info!("client silent past the heartbeat timeout");
                    break;
                }
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
            },
            frame = socket.recv() => {
                let frame = match frame {
                    Some(Ok(frame)) => frame,
                    Some(Err(err)) => {
                        // Over `--ws-max-message-bytes` (checked frame by frame, before the
                        // message is buffered) or not WebSocket at all.
                        tracing::debug!(%err, "WebSocket read failed");
                        if is_too_big(&err) {
                            close(&mut socket, CLOSE_TOO_BIG, "message too big").await;
                        }
                        break;
                    }
                    None => break,
                };
                last_heard = Instant::now();
                // Every data frame counts against the rate, whatever it holds.
                if matches!(frame, Message::Text(_) | Message::Binary(_)) && !limit.allow(Instant::now()) {
                    reply(&mut socket, ServerMessage::error(ErrorCode::RateLimited, "too many messages; slow down", None)).await;
                    continue;
                }
                let text = match frame {
                    Message::Text(text) => text,
                    Message::Binary(_) => {
                        reply(&mut socket, ServerMessage::error(ErrorCode::BadMessage, "binary frames are not part of the protocol", None)).await;
                        continue;
                    }
                    Message::Close(_) => break,
                    _ => continue,
                };
                if text.len() > config.ws_max_message_bytes {
                    let message = format!("messages are limited to {} bytes", config.ws_max_message_bytes);
                    reply(&mut socket, ServerMessage::error(ErrorCode::TooLarge, message, None)).await;
                    continue;
                }
                let message: ClientMessage = match serde_json::from_str(&text) {
                    Ok(message) => message,
                    Err(err) => {
                        reply(&mut socket, ServerMessage::error(ErrorCode::BadMessage, format!("not a protocol message: {err}"), None)).await;
                        continue;
                    }
                };
                let kind = message.kind();
                match handle(&hub, &mut seat, &mut own_outbox, message).await {
                    Ok(Some(answer)) => reply(&mut socket, answer).await,
                    Ok(None) => {}
                    Err(err) => reply(&mut socket, ServerMessage::error(err.code, err.message, Some(kind))).await,
                }
                if seat.is_some() {
                    unjoined.take();
                }
                if seat.is_some() && own_outbox.is_none() && kind == "leave" {
                    left = true;
                    break;
                }
            },
        }
    }
    if let Some(seat) = seat {
        if left {
            hub.leave(&seat);
        } else {
            hub.disconnected(&seat);
        }
    }
}

/// Whether a read failed because a frame or message was over the size limit.
fn is_too_big(err: &axum::Error) -> bool {
    use std::error::Error;
    let mut source: Option<&(dyn Error + 'static)> = err.source();
    while let Some(e) = source {
        if let Some(tungstenite::Error::Capacity(_)) = e.downcast_ref::<tungstenite::Error>() {
            return true;
        }
        source = e.source();
    }
    false
}

async fn send(socket: &mut WebSocket, message: &ServerMessage) -> Result<(), axum::Error> {
    let text = serde_json::to_string(message).unwrap_or_default();
    socket.send(Message::Text(Utf8Bytes::from(text))).await
}

/// Answer the client directly, in order with what it asked.
async fn reply(socket: &mut WebSocket, message: ServerMessage) {
    let _ = send(socket, &message).await;
}

async fn handle(
    hub: &Arc<Hub>,
    seat: &mut Option<Seat>,
    own_outbox: &mut Option<mpsc::Sender<ServerMessage>>,
    message: ClientMessage,
) -> Result<Option<ServerMessage>, HubError> {
    if let ClientMessage::Join {
        v,
        token,
        name,
        resume,
        keep_media,
    } = message
    {
        if seat.is_some() {
            return Err(HubError::new(ErrorCode::BadMessage, "already joined"));
        }
        if v != crate::protocol::PROTOCOL_VERSION {
            return Err(HubError::new(
                ErrorCode::BadMessage,
                format!("protocol version {v} is not spoken here; use 1"),
            ));
        }
        let Some(outbox) = own_outbox.clone() else {
            return Err(HubError::new(
                ErrorCode::Internal,
                "connection has no outbox",
            ));
        };
        // A teacher page that reloaded has no resume key: it takes back its seat if that seat is
        // waiting out its grace period, so the class keeps its teacher's tracks.
        let resume = resume.or_else(|| hub.teacher_seat_to_retake(&token));
        *seat = Some(
            hub.join(&token, &name, resume.as_deref(), keep_media, outbox, false)
                .await?,
        );
        *own_outbox = None;
        return Ok(None);
    }
    let Some(seat) = seat.as_ref() else {
        return Err(HubError::new(
            ErrorCode::NotJoined,
            "send `join` with a token first",
        ));
    };
    // A pupil's device votes, and that is all it does.
    if !matches!(
        message,
        ClientMessage::PollVote { .. } | ClientMessage::Ping | ClientMessage::Leave
    ) && hub.is_pupil(seat)
    {
        return Err(HubError::new(
            ErrorCode::Forbidden,
            "a pupil voting link can only vote",
        ));
    }
    let negotiation =
        |err: tandem_sfu::SfuError| HubError::new(ErrorCode::NegotiationFailed, err.to_string());
    match message {
        ClientMessage::Join { .. } => unreachable!("handled above"),
        ClientMessage::PublishOffer { sdp, tracks } => {
            let sources: Vec<(String, Source)> =
                tracks.into_iter().map(|t| (t.track_id, t.source)).collect();
            let sdp = hub
                .sfu
                .publish_offer(seat.classroom_id.clone(), sdp, sources)
                .await
                .map_err(negotiation)?;
            Ok(Some(ServerMessage::PublishAnswer { sdp }))
        }
        ClientMessage::SubscribeAnswer { sdp } => {
            hub.sfu
                .subscribe_answer(seat.classroom_id.clone(), sdp)
                .await
                .map_err(negotiation)?;
            Ok(None)
        }
        ClientMessage::IceCandidate { target, candidate } => {
            let init = tandem_sfu::IceCandidateInit {
                candidate: candidate.candidate,
                sdp_mid: candidate.sdp_mid,
                sdp_mline_index: candidate.sdp_mline_index,
                username_fragment: candidate.username_fragment,
                ..Default::default()
            };
            let leg: Leg = target;
            hub.sfu
                .add_remote_candidate(seat.classroom_id.clone(), leg, init)
                .await
                .map_err(negotiation)?;
            Ok(None)
        }
        ClientMessage::IceRestart { leg } => match leg {
            Leg::Subscribe => hub
                .sfu
                .restart_subscribe_ice(seat.classroom_id.clone())
                .await
                .map(|()| None)
                .map_err(negotiation),
            Leg::Publish => Err(HubError::new(
                ErrorCode::BadMessage,
                "the publish leg restarts ICE by a publish_offer with new credentials",
            )),
        },
        ClientMessage::RaiseHand => hub.raise_hand(seat).map(|()| None),
        ClientMessage::LowerHand { classroom_id } => {
            hub.lower_hand(seat, classroom_id).map(|()| None)
        }
        ClientMessage::StageAdd { classroom_id } => {
            hub.set_on_stage(seat, classroom_id, true).map(|()| None)
        }
        ClientMessage::StageRemove { classroom_id } => {
            hub.set_on_stage(seat, classroom_id, false).map(|()| None)
        }
        ClientMessage::MuteRequest { classroom_id } => {
            hub.mute_request(seat, classroom_id).map(|()| None)
        }
        ClientMessage::EndClass => hub.end_class(seat).map(|()| None),
        ClientMessage::Ping => Ok(Some(ServerMessage::Pong)),
        ClientMessage::Leave => Ok(None),
        ClientMessage::SubscribePrefs { video } => hub
            .sfu
            .set_receive_video(seat.classroom_id.clone(), video)
            .map(|()| None)
            .map_err(negotiation),
        ClientMessage::BoardOp { op } => hub.board_op(seat, op).await.map(|()| None),
        ClientMessage::BoardSync { since_seq } => hub.board_sync(seat, since_seq).map(|()| None),
        ClientMessage::Laser { page, point } => hub.laser(seat, Some((page, point))).map(|()| None),
        ClientMessage::LaserOff => hub.laser(seat, None).map(|()| None),
        ClientMessage::PollStart { spec } => hub.poll_start(seat, spec).await.map(|()| None),
        ClientMessage::PollVote { poll_id, choices } => {
            hub.poll_vote(seat, poll_id, &choices).await.map(|()| None)
        }
        ClientMessage::PollClose { poll_id } => hub.poll_close(seat, poll_id).await.map(|()| None),
        ClientMessage::PollPublish { poll_id } => {
            hub.poll_publish(seat, poll_id).await.map(|()| None)
        }
    }
}
