//! A standard WHIP publisher (RFC 9725) and WHEP viewer: HTTP and SDP, no WebSocket. The
//! end-to-end tests use it to check the server against the standards, not only against our own
//! classroom client.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail};
use parking_lot::Mutex;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::peer_connection::{PeerConnection, RTCSessionDescription};

use crate::client::LinkProxy;
use crate::client::{ClientOptions, ReceivedTrack, Shared, local_offer, new_peer};
use crate::media::{
    OpusOptions, PublishSpec, SenderReport, local_track, payload_type, send_tone, send_video,
};

/// A WHIP publisher or WHEP viewer: a standard client that speaks HTTP and SDP, no WebSocket.
pub struct HttpMediaSession {
    pub location: String,
    /// The server's answer, kept to apply an ICE restart's new credentials to.
    answer: String,
    etag: String,
    pc: Arc<dyn PeerConnection>,
    shared: Arc<Mutex<Shared>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The emulated link's proxy, if the session has one.
    proxies: Arc<Mutex<Vec<LinkProxy>>>,
}

/// What a WHIP/WHEP server answered to an offer.
pub enum HttpOfferOutcome {
    Created(HttpMediaSession),
    /// The server refused: status and body.
    Refused(u16, String),
}

/// Offer by `POST` (WHIP/WHEP), apply the answer and wait for the connection. A refusal closes the
/// peer connection and comes back as (status, body); success as (Location, ETag, answer SDP).
/// With `link`, the answer's server candidate is replaced by an emulated link's proxy first.
async fn negotiate_over_http(
    http_base: &str,
    path: &str,
    token: &str,
    pc: &Arc<dyn PeerConnection>,
    gathered: &mut mpsc::UnboundedReceiver<()>,
    connected: &mut mpsc::UnboundedReceiver<bool>,
    link: (&ClientOptions, &Mutex<Vec<LinkProxy>>),
) -> anyhow::Result<Result<(String, String, String), (u16, String)>> {
    let sdp = local_offer(pc, gathered).await?;
    let response = reqwest::Client::new()
        .post(format!("{}{path}", http_base.trim_end_matches('/')))
        .bearer_auth(token)
        .header("content-type", "application/sdp")
        .body(sdp)
        .send()
        .await?;
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let etag = response
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response.text().await?;
    if status != 201 {
        let _ = pc.close().await;
        return Ok(Err((status, body)));
    }
    let (options, proxies) = link;
    let applied = options
        .proxy_for(options.seed, &body, proxies, None)
        .await?;
    pc.set_remote_description(RTCSessionDescription::answer(applied)?)
        .await?;
    match tokio::time::timeout(Duration::from_secs(10), connected.recv()).await {
        Ok(Some(true)) => Ok(Ok((location, etag, body))),
        _ => bail!("the session at {path} did not connect"),
    }
}

impl HttpMediaSession {
    /// WHIP: publish a tone (and synthetic video) into `class_id` with a teacher or invite token.
    pub async fn publish(
        http_base: &str,
        class_id: &str,
        token: &str,
        spec: PublishSpec,
    ) -> anyhow::Result<HttpOfferOutcome> {
        Self::publish_with(http_base, class_id, token, spec, ClientOptions::default()).await
    }

    /// [`publish`](Self::publish) with options: with `options.link` set, media goes through an
    /// emulated link (a proxy in front of the server's media port).
    pub async fn publish_with(
        http_base: &str,
        class_id: &str,
        token: &str,
        spec: PublishSpec,
        options: ClientOptions,
    ) -> anyhow::Result<HttpOfferOutcome> {
        let proxies = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (pc, mut gathered, mut connected, _) = new_peer(
            shared.clone(),
            options.consent_check_interval,
            options.tcp,
            options.red,
        )
        .await?;
        let (audio, audio_ssrc) = local_track(RtpCodecKind::Audio, "audio/opus", 48000, 2);
        pc.add_track(audio.clone() as Arc<dyn TrackLocal>).await?;
        let video = if spec.video.is_some() {
            let (track, ssrc) = local_track(RtpCodecKind::Video, "video/VP8", 90000, 0);
            pc.add_track(track.clone() as Arc<dyn TrackLocal>).await?;
            Some((track, ssrc))
        } else {
            None
        };
        let path = format!("/whip/{class_id}");
        let (location, etag, answer) = match negotiate_over_http(
            http_base,
            &path,
            token,
            &pc,
            &mut gathered,
            &mut connected,
            (&options, &proxies),
        )
        .await?
        {
            Ok(created) => created,
            Err((status, body)) => return Ok(HttpOfferOutcome::Refused(status, body)),
        };
        let mut tasks = Vec::new();
        if let Some(hz) = spec.tone_hz {
            let pt = payload_type(&pc, RtpCodecKind::Audio).await?;
            tasks.push(tokio::spawn(send_tone(
                audio,
                audio_ssrc,
                pt,
                hz,
                OpusOptions::default(),
                SenderReport::default(),
            )));
        }
        if let (Some(v), Some((track, ssrc))) = (spec.video, video) {
            let pt = payload_type(&pc, RtpCodecKind::Video).await?;
            tasks.push(tokio::spawn(send_video(
                track,
                ssrc,
                pt,
                v,
                SenderReport::default(),
            )));
        }
        Ok(HttpOfferOutcome::Created(Self {
            location,
            answer,
            etag,
            pc,
            shared,
            tasks,
            proxies,
        }))
    }

    /// WHEP: watch the master classroom of `class_id`.
    pub async fn view(
        http_base: &str,
        class_id: &str,
        token: &str,
    ) -> anyhow::Result<HttpOfferOutcome> {
        Self::view_checking_every(http_base, class_id, token, None).await
    }

    /// [`view`](Self::view) by a player that sends a consent check every
    /// `consent_check_interval` (`None`: `rtc`'s 2 s).
    pub async fn view_checking_every(
        http_base: &str,
        class_id: &str,
        token: &str,
        consent_check_interval: Option<Duration>,
    ) -> anyhow::Result<HttpOfferOutcome> {
        use webrtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (pc, mut gathered, mut connected, _) =
            new_peer(shared.clone(), consent_check_interval, false, false).await?;
        for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
            pc.add_transceiver_from_kind(
                kind,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Recvonly,
                    ..Default::default()
                }),
            )
            .await?;
        }
        let path = format!("/whep/{class_id}");
        let proxies = Arc::new(Mutex::new(Vec::new()));
        let (location, etag, answer) = match negotiate_over_http(
            http_base,
            &path,
            token,
            &pc,
            &mut gathered,
            &mut connected,
            (&ClientOptions::default(), &proxies),
        )
        .await?
        {
            Ok(created) => created,
            Err((status, body)) => return Ok(HttpOfferOutcome::Refused(status, body)),
        };
        Ok(HttpOfferOutcome::Created(Self {
            location,
            answer,
            etag,
            pc,
            shared,
            tasks: Vec::new(),
            proxies,
        }))
    }

    /// What a viewer has received, by track id (its kind is known from the codec, not the class).
    pub fn received(&self) -> HashMap<String, ReceivedTrack> {
        self.shared.lock().received.clone()
    }

    /// Restart ICE by `PATCH` (RFC 9725 §4.3.2): new local credentials out, the server's back.
    /// Returns the status of the `PATCH`.
    pub async fn restart_ice(&mut self, http_base: &str, token: &str) -> anyhow::Result<u16> {
        self.pc.restart_ice().await?;
        let offer = self.pc.create_offer(None).await?;
        self.pc.set_local_description(offer).await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let local = self
            .pc
            .local_description()
            .await
            .ok_or_else(|| anyhow!("no local description"))?
            .sdp;
        let response = reqwest::Client::new()
            .patch(format!(
                "{}{}",
                http_base.trim_end_matches('/'),
                self.location
            ))
            .bearer_auth(token)
            .header("content-type", "application/trickle-ice-sdpfrag")
            .header("if-match", &self.etag)
            .body(tandem_sfu::sdp::ice_fragment(&local))
            .send()
            .await?;
        let status = response.status().as_u16();
        if status != 200 {
            return Ok(status);
        }
        if let Some(etag) = response.headers().get("etag").and_then(|v| v.to_str().ok()) {
            self.etag = etag.to_owned();
        }
        let fragment = response.text().await?;
        let value = |name: &str| {
            fragment
                .lines()
                .find_map(|l| l.trim().strip_prefix(name).map(str::to_owned))
                .ok_or_else(|| anyhow!("the fragment has no {name}"))
        };
        let answer = tandem_sfu::sdp::with_ice_credentials(
            &self.answer,
            &value("a=ice-ufrag:")?,
            &value("a=ice-pwd:")?,
        );
        self.pc
            .set_remote_description(RTCSessionDescription::answer(answer.clone())?)
            .await?;
        self.answer = answer;
        Ok(status)
    }

    /// The session's current ETag (its ICE session, RFC 9725 §4.3.1).
    pub fn etag(&self) -> &str {
        &self.etag
    }

    /// Go away without `DELETE`, as an encoder that crashed or lost power: nothing more reaches
    /// the server. With an emulated link the link goes first, so the server hears nothing at all
    /// (not even the peer connection's DTLS goodbye); without one, that goodbye is all it hears.
    pub async fn vanish(mut self) {
        self.proxies.lock().clear();
        for task in self.tasks.drain(..) {
            task.abort();
        }
        let _ = self.pc.close().await;
    }

    /// End the session with `DELETE` on its location; returns the status.
    pub async fn end(mut self, http_base: &str, token: &str) -> anyhow::Result<u16> {
        let status = reqwest::Client::new()
            .delete(format!(
                "{}{}",
                http_base.trim_end_matches('/'),
                self.location
            ))
            .bearer_auth(token)
            .send()
            .await?
            .status()
            .as_u16();
        for task in self.tasks.drain(..) {
            task.abort();
        }
        let _ = self.pc.close().await;
        Ok(status)
    }
}

impl Drop for HttpMediaSession {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
