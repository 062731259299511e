// The two WebRTC legs of one classroom (docs/protocol.md):
// - publish: we offer our microphone, camera and (later) screen as sendonly; the server answers;
// - subscribe: the server offers what we should receive, with `tracks: [{mid, track}]`; we answer.
// Offers never collide because each leg has only one offering side.

import { msg, msidByMid } from './protocol.js';

const PC_CONFIG = { bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' };

/** A leg `disconnected` this long has lost its path, not a packet or two: restart its ICE. */
export const RESTART_AFTER_DISCONNECTED_MS = 3000;
/**
 * A restarted leg that has not connected again is restarted again this often. Long enough for the
 * restarted ICE session to keep checking until the path is back (a new restart throws those checks
 * away and makes both sides agree on credentials again, which takes its own round trips).
 */
export const RESTART_RETRY_MS = 15_000;

/**
 * Put redundant audio (RFC 2198 `red/48000/2`: each Opus packet repeats the previous frame) first
 * among a microphone transceiver's codecs, as LiveKit's client does: Chromium sends RED only when
 * it heads the negotiated list, and then a lost packet is rebuilt from the next one. The server
 * forwards RED to classrooms that negotiated it and plain Opus to the others. Returns whether RED
 * was preferred (false: the browser has no RED, or cannot set codec preferences).
 */
export function preferRed(transceiver, codecs) {
  if (!codecs || typeof transceiver.setCodecPreferences !== 'function') return false;
  const isRed = (c) => c.mimeType.toLowerCase() === 'audio/red';
  const red = codecs.filter(isRed);
  if (!red.length) return false;
  try {
    transceiver.setCodecPreferences([...red, ...codecs.filter((c) => !isRed(c))]);
    return true;
  } catch {
    // A browser that refuses the list keeps its own order: plain Opus still works.
    return false;
  }
}

/**
 * Events: `remote-tracks` {tracks: [{mid, info, track}]} after every subscribe offer;
 * `leg-state` {leg, state} on connection state changes; `negotiation-error` {leg, error};
 * `ice-restart` {leg, attempt} when a leg's ICE is restarted.
 *
 * Recovery without reloading: a leg that goes `failed`, or stays `disconnected` for
 * RESTART_AFTER_DISCONNECTED_MS, restarts ICE — the publish leg by offering with new credentials,
 * the subscribe leg by asking the server (`ice_restart`), which re-offers with new ones — and again
 * every RESTART_RETRY_MS until it is connected.
 */
export class RtcSession extends EventTarget {
  /** `iceServers`: the `ice_servers` of `welcome` (TURN with credentials minted for this join). */
  constructor({
    send, RTCPeerConnectionImpl = globalThis.RTCPeerConnection, iceServers = [],
    setTimeout: setTimer = globalThis.setTimeout.bind(globalThis),
    clearTimeout: clearTimer = globalThis.clearTimeout.bind(globalThis),
    audioCodecs = globalThis.RTCRtpReceiver?.getCapabilities?.('audio')?.codecs,
  }) {
    super();
    this.audioCodecs = audioCodecs;
    this.send = send;
    this.pcConfig = { ...PC_CONFIG, iceServers };
    this.Impl = RTCPeerConnectionImpl;
    this.setTimer = setTimer;
    this.clearTimer = clearTimer;
    this.restartTimers = { publish: null, subscribe: null };
    this.restarts = { publish: 0, subscribe: 0 };
    this.closed = false;
    this.published = []; // {source, track, stream, transceiver}
    this.pub = null;
    this.pubBusy = false;
    this.pubAgain = false;
    this.pubPending = [];
    this.sub = this.#createPc('subscribe');
    this.subPending = [];
    this.subChain = Promise.resolve();
    this.subscribed = {}; // mid -> track info
    this.audioOnly = false;
  }

  #emit(type, detail) {
    this.dispatchEvent(Object.assign(new Event(type), { detail }));
  }

  #createPc(leg) {
    const pc = new this.Impl(this.pcConfig);
    pc.onicecandidate = (e) => {
      if (e.candidate && e.candidate.candidate && !this.closed) {
        this.send(msg.iceCandidate(leg, e.candidate.toJSON ? e.candidate.toJSON() : e.candidate));
      }
    };
    pc.onconnectionstatechange = () => {
      this.#emit('leg-state', { leg, state: pc.connectionState });
      this.#watch(leg, pc);
    };
    if (leg === 'subscribe') pc.ontrack = () => this.#emitRemoteTracks();
    return pc;
  }

  // --- recovery ---------------------------------------------------------------------------

  #clearRestart(leg) {
    if (this.restartTimers[leg] != null) this.clearTimer(this.restartTimers[leg]);
    this.restartTimers[leg] = null;
  }

  /** Decide on a leg's new connection state: nothing, a restart later, or a restart now. */
  #watch(leg, pc) {
    if (this.closed) return;
    const state = pc.connectionState;
    if (state === 'failed') {
      this.#clearRestart(leg);
      this.restartIce(leg);
    } else if (state === 'disconnected') {
      // A restart already planned (or a retry) stands; otherwise give the path a moment.
      if (this.restartTimers[leg] == null) {
        this.restartTimers[leg] = this.setTimer(() => this.restartIce(leg), RESTART_AFTER_DISCONNECTED_MS);
      }
    } else if (state === 'connected' || state === 'closed') {
      this.#clearRestart(leg);
    }
    // `connecting` (a restart under way, or the first connection): the retry timer decides.
  }

  /** Restart ICE on `leg` now, and again after RESTART_RETRY_MS unless it has connected by then. */
  restartIce(leg) {
    this.#clearRestart(leg);
    const pc = leg === 'publish' ? this.pub : this.sub;
    if (this.closed || !pc || pc.connectionState === 'connected' || pc.connectionState === 'closed') return;
    this.restarts[leg] += 1;
    this.#emit('ice-restart', { leg, attempt: this.restarts[leg] });
    if (leg === 'publish') {
      // The next offer carries new ICE credentials; the server answers with its new ones.
      pc.restartIce();
      this.negotiatePublish();
    } else {
      this.send(msg.iceRestart('subscribe'));
    }
    this.restartTimers[leg] = this.setTimer(() => this.restartIce(leg), RESTART_RETRY_MS);
  }

  legState(leg) {
    const pc = leg === 'publish' ? this.pub : this.sub;
    return pc ? pc.connectionState : 'new';
  }

  // --- publish leg ------------------------------------------------------------------------

  /** Start publishing local tracks: [{source: 'microphone'|'camera'|'screen', track, stream}]. */
  async publish(items) {
    if (!items.length) return;
    if (!this.pub) this.pub = this.#createPc('publish');
    for (const { source, track, stream } of items) {
      const transceiver = this.pub.addTransceiver(track, { direction: 'sendonly', streams: [stream || new MediaStream([track])] });
      if (track.kind === 'audio') preferRed(transceiver, this.audioCodecs);
      this.published.push({ source, track, stream, transceiver });
    }
    await this.negotiatePublish();
  }

  /** Swap the track of a source (another camera or microphone chosen), no renegotiation. */
  async replaceTrack(source, track) {
    const item = this.published.find((p) => p.source === source && p.track);
    if (!item) return false;
    await item.transceiver.sender.replaceTrack(track);
    item.track = track;
    return true;
  }

  /** Share a screen as a second video track (source `screen`), renegotiating the publish leg. */
  async startScreen(track) {
    if (!this.pub) this.pub = this.#createPc('publish');
    const idle = this.published.find((p) => p.source === 'screen' && !p.track);
    if (idle) {
      idle.transceiver.direction = 'sendonly';
      await idle.transceiver.sender.replaceTrack(track);
      idle.track = track;
    } else {
      const stream = new MediaStream([track]);
      const transceiver = this.pub.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
      this.published.push({ source: 'screen', track, stream, transceiver });
    }
    await this.negotiatePublish();
  }

  async stopScreen() {
    const item = this.published.find((p) => p.source === 'screen' && p.track);
    if (!item) return;
    await item.transceiver.sender.replaceTrack(null);
    item.transceiver.direction = 'inactive';
    item.track = null;
    await this.negotiatePublish();
  }

  /** The tracks the current offer carries, with track ids as the SDP's msid names them. */
  declaredTracks(sdp) {
    const byMid = msidByMid(sdp);
    return this.published
      .filter((p) => p.track && p.transceiver.mid != null)
      .map((p) => ({ track_id: byMid[p.transceiver.mid] || p.track.id, source: p.source }));
  }

  async negotiatePublish() {
    if (this.closed || !this.pub) return;
    if (this.pubBusy) {
      this.pubAgain = true;
      return;
    }
    this.pubBusy = true;
    this.pubAgain = false;
    try {
      const offer = await this.pub.createOffer();
      await this.pub.setLocalDescription(offer);
      const sdp = this.pub.localDescription.sdp;
      this.send(msg.publishOffer(sdp, this.declaredTracks(sdp)));
    } catch (error) {
      this.pubBusy = false;
      this.#emit('negotiation-error', { leg: 'publish', error });
    }
  }

  async handlePublishAnswer(sdp) {
    if (this.closed || !this.pub || this.pub.signalingState !== 'have-local-offer') return;
    try {
      await this.pub.setRemoteDescription({ type: 'answer', sdp });
      await this.#flush(this.pub, this.pubPending);
    } catch (error) {
      this.#emit('negotiation-error', { leg: 'publish', error });
    } finally {
      this.pubBusy = false;
    }
    if (this.pubAgain) await this.negotiatePublish();
  }

  /** The server refused our offer (`negotiation_failed`): roll back so a later offer can go out. */
  async publishRejected() {
    if (this.pub && this.pub.signalingState === 'have-local-offer') {
      try { await this.pub.setLocalDescription({ type: 'rollback' }); } catch { /* nothing to roll back */ }
    }
    this.pubBusy = false;
  }

  /**
   * The WebSocket came back with the legs kept: a publish offer whose answer was lost with the old
   * socket is rolled back and offered again (the server may or may not have seen it; a repeated
   * offer is an ordinary renegotiation either way).
   */
  async resumed() {
    if (this.closed || !this.pub || !this.pubBusy || this.pub.signalingState !== 'have-local-offer') return;
    await this.publishRejected();
    await this.negotiatePublish();
  }

  // --- subscribe leg ----------------------------------------------------------------------

  /** Answer a `subscribe_offer`; offers are handled one at a time, in order. */
  handleSubscribeOffer(m) {
    this.subChain = this.subChain.then(() => this.#answer(m)).catch((error) => {
      this.#emit('negotiation-error', { leg: 'subscribe', error });
    });
    return this.subChain;
  }

  async #answer(m) {
    if (this.closed) return;
    await this.sub.setRemoteDescription({ type: 'offer', sdp: m.sdp });
    this.subscribed = {};
    for (const { mid, track } of m.tracks) this.subscribed[String(mid)] = track;
    this.#applyAudioOnly();
    const answer = await this.sub.createAnswer();
    await this.sub.setLocalDescription(answer);
    this.send(msg.subscribeAnswer(this.sub.localDescription.sdp));
    await this.#flush(this.sub, this.subPending);
    this.#emitRemoteTracks();
  }

  /** Received tracks: [{mid, info: {track_id, classroom_id, kind, source}, track}]. */
  remoteTracks() {
    const out = [];
    for (const tr of this.sub.getTransceivers()) {
      const info = tr.mid != null ? this.subscribed[tr.mid] : null;
      if (!info || tr.stopped || !tr.receiver.track) continue;
      if (this.audioOnly && info.kind === 'video') continue;
      out.push({ mid: tr.mid, info, track: tr.receiver.track });
    }
    return out;
  }

  #emitRemoteTracks() {
    if (!this.closed) this.#emit('remote-tracks', { tracks: this.remoteTracks() });
  }

  /**
   * Audio only: video transceivers answer `inactive` from the next offer on, and video is
   * taken off the screen at once (tracks without a sink are not decoded).
   */
  setAudioOnly(on) {
    this.audioOnly = !!on;
    this.#applyAudioOnly();
    this.#emitRemoteTracks();
  }

  #applyAudioOnly() {
    for (const tr of this.sub.getTransceivers()) {
      const info = tr.mid != null ? this.subscribed[tr.mid] : null;
      if (!info || info.kind !== 'video' || tr.stopped) continue;
      try { tr.direction = this.audioOnly ? 'inactive' : 'recvonly'; } catch { /* stopped meanwhile */ }
    }
  }

  // --- both -------------------------------------------------------------------------------

  async addRemoteCandidate(target, candidate) {
    const pc = target === 'publish' ? this.pub : this.sub;
    const pending = target === 'publish' ? this.pubPending : this.subPending;
    if (!pc) return;
    if (!pc.remoteDescription) {
      pending.push(candidate);
      return;
    }
    try { await pc.addIceCandidate(candidate); } catch { /* a stale candidate; ICE carries on */ }
  }

  async #flush(pc, pending) {
    while (pending.length) {
      const c = pending.shift();
      try { await pc.addIceCandidate(c); } catch { /* stale */ }
    }
  }

  /** Inbound RTP stats of the subscribe leg, one entry per received track, plus the link RTT. */
  async inboundStats() {
    if (this.closed) return { tracks: [], rttMs: null };
    const report = await this.sub.getStats();
    const byTrackId = new Map();
    for (const tr of this.sub.getTransceivers()) {
      if (tr.mid != null && tr.receiver.track) byTrackId.set(tr.receiver.track.id, tr.mid);
    }
    const tracks = [];
    let rttMs = null;
    report.forEach((s) => {
      if (s.type === 'candidate-pair' && s.nominated && typeof s.currentRoundTripTime === 'number') {
        rttMs = s.currentRoundTripTime * 1000;
      }
      if (s.type !== 'inbound-rtp') return;
      const mid = s.mid != null ? String(s.mid) : byTrackId.get(s.trackIdentifier);
      const info = mid != null ? this.subscribed[mid] : null;
      if (!info) return;
      tracks.push({
        mid,
        track_id: info.track_id,
        classroom_id: info.classroom_id,
        kind: info.kind,
        source: info.source,
        framesDecoded: s.framesDecoded || 0,
        bytesReceived: s.bytesReceived || 0,
        packetsReceived: s.packetsReceived || 0,
        packetsLost: s.packetsLost || 0,
        jitterMs: typeof s.jitter === 'number' ? s.jitter * 1000 : null,
      });
    });
    return { tracks, rttMs };
  }

  close() {
    this.closed = true;
    this.#clearRestart('publish');
    this.#clearRestart('subscribe');
    for (const pc of [this.pub, this.sub]) {
      if (!pc) continue;
      pc.onicecandidate = null;
      pc.ontrack = null;
      pc.onconnectionstatechange = null;
      try { pc.close(); } catch { /* closed */ }
    }
  }
}
