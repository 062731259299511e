// One live connection to a class: signaling + class state + the two peer connections + local media.
// Teacher and classroom pages both drive a LiveSession and only decide how things look.

import { SignalingClient, msg, wsUrl } from './protocol.js';
import { initialState, publishedOnly, reduce } from './state.js';
import { RtcSession } from './rtc.js';
import { grade, intervalLoss, worst } from './quality.js';
import { BoardReplica } from './board-model.js';
import { initialPolls, reducePolls } from './poll-model.js';

const QUALITY_INTERVAL_MS = 2000;
const STALL_MS = 5000;
const POLL_MESSAGES = new Set(['poll', 'poll_voted', 'poll_counts', 'poll_result']);
const POLL_REQUESTS = new Set(['poll_start', 'poll_vote', 'poll_close', 'poll_publish']);

/**
 * Events: `change` (class state changed), `status` {status} (signaling), `remote-tracks`
 * {tracks}, `leg-state` {leg, state}, `ice-restart` {leg, attempt}, `quality` {byClassroom, overall}, `fatal` {code},
 * `server-error` {code, message, in_reply_to}, `mute-requested`, `ended`, `board` {board, applied}
 * (the whiteboard changed; `applied` is null after a catch-up), `board-error` {code, message},
 * `laser` {classroom_id, page, point|null}, `polls` {polls}, `poll-error` {code, message, in_reply_to}.
 */
export class LiveSession extends EventTarget {
  constructor({ token, name, local }) {
    super();
    this.token = token;
    this.name = name;
    // Local tracks to publish: {microphone, camera, screen} (MediaStreamTrack or null) + stream.
    this.local = { microphone: null, camera: null, screen: null, stream: null, ...local };
    this.state = initialState();
    this.rtc = null;
    this.prevStats = new Map();
    this.progress = new Map(); // video track_id -> {frames, since}
    this.quality = { byClassroom: {}, overall: 'unknown' };
    this.polls = initialPolls();
    // A WebSocket blip leaves media alone: a resume keeps the legs this page still holds.
    this.signaling = new SignalingClient({
      url: wsUrl(location), token, name, keepMedia: () => !!this.rtc && !this.rtc.closed,
    });
    this.board = new BoardReplica({
      send: (m) => this.signaling.send(m),
      onChange: (board, applied) => this.#emit('board', { board, applied }),
    });
    this.signaling.addEventListener('welcome', (e) => this.#onWelcome(e.detail));
    this.signaling.addEventListener('message', (e) => this.#onMessage(e.detail));
    this.signaling.addEventListener('status', (e) => this.#emit('status', e.detail));
    this.signaling.addEventListener('retry', (e) => this.#emit('retry', e.detail));
    this.signaling.addEventListener('fatal', (e) => this.#onFatal(e.detail));
    this.qualityTimer = setInterval(() => this.#measure(), QUALITY_INTERVAL_MS);
  }

  start() {
    this.signaling.connect();
  }

  get status() {
    return this.signaling.status;
  }

  #emit(type, detail) {
    this.dispatchEvent(Object.assign(new Event(type), { detail }));
  }

  #setState(next) {
    if (next === this.state) return;
    this.state = next;
    this.#emit('change', { state: next });
  }

  #onWelcome(welcome) {
    this.#setState(reduce(this.state, welcome));
    this.board.rejoined();
    this.#setPolls(reducePolls(this.polls, welcome));
    // The server forgets the preference when this classroom comes back as a new session.
    if (this.audioOnly) this.signaling.send(msg.subscribePrefs(false));
    // TURN servers with credentials minted for this join (a resume brings fresh ones).
    this.iceServers = welcome.ice_servers || [];
    // A resume that kept the media legs changes nothing in them; a first join, or a resume the
    // server could not keep the legs for, starts both legs from scratch.
    if (welcome.resumed && welcome.media_kept && this.rtc && !this.rtc.closed) {
      this.rtc.resumed();
      return;
    }
    this.#rebuildRtc();
  }

  #rebuildRtc() {
    if (this.rtc) this.rtc.close();
    // TURN servers with this join's credentials, for networks that reach the server no other way.
    const rtc = new RtcSession({ send: (m) => this.signaling.send(m), iceServers: this.iceServers || [] });
    this.rtc = rtc;
    this.prevStats.clear();
    this.progress.clear();
    rtc.addEventListener('remote-tracks', (e) => this.#emit('remote-tracks', { tracks: this.#shown(e.detail.tracks) }));
    rtc.addEventListener('leg-state', (e) => this.#emit('leg-state', e.detail));
    rtc.addEventListener('ice-restart', (e) => this.#emit('ice-restart', e.detail));
    rtc.addEventListener('negotiation-error', (e) => {
      console.warn('negotiation failed', e.detail.leg, e.detail.error);
      this.#emit('server-error', { code: 'negotiation_failed', message: String(e.detail.error), in_reply_to: e.detail.leg });
    });
    if (this.audioOnly) rtc.setAudioOnly(true);
    const items = [];
    const stream = this.local.stream || new MediaStream();
    if (this.local.microphone) items.push({ source: 'microphone', track: this.local.microphone, stream });
    if (this.local.camera) items.push({ source: 'camera', track: this.local.camera, stream });
    if (this.local.screen) items.push({ source: 'screen', track: this.local.screen, stream: new MediaStream([this.local.screen]) });
    rtc.publish(items);
    this.#emit('remote-tracks', { tracks: [] });
  }

  /**
   * The received tracks that are published now. The server keeps a transceiver for a track whose
   * source stopped (a screen share that ended, a teacher page reloading) and reuses it when the
   * source comes back, without renegotiating: `track_unpublished` hides it, `track_published`
   * with the same id shows it again (docs/protocol.md, continuous downtracks).
   */
  #shown(tracks) {
    return publishedOnly(this.state, tracks);
  }

  #setPolls(next) {
    if (next === this.polls) return;
    this.polls = next;
    this.#emit('polls', { polls: next });
  }

  #onMessage(m) {
    this.#setState(reduce(this.state, m));
    if (POLL_MESSAGES.has(m.type)) {
      this.#setPolls(reducePolls(this.polls, m));
      return;
    }
    const rtc = this.rtc;
    if ((m.type === 'track_published' || m.type === 'track_unpublished') && rtc && !rtc.closed) {
      this.#emit('remote-tracks', { tracks: this.#shown(rtc.remoteTracks()) });
    }
    switch (m.type) {
      case 'board_op':
        this.board.onApplied(m.applied);
        break;
      case 'board_catchup':
        this.board.onCatchup(m.catchup);
        break;
      case 'laser':
        this.#emit('laser', { classroom_id: m.classroom_id, page: m.page, point: m.point });
        break;
      case 'laser_off':
        this.#emit('laser', { classroom_id: m.classroom_id, page: null, point: null });
        break;
      case 'publish_answer':
        rtc?.handlePublishAnswer(m.sdp);
        break;
      case 'subscribe_offer':
        rtc?.handleSubscribeOffer(m);
        break;
      case 'ice_candidate':
        rtc?.addRemoteCandidate(m.target, m.candidate);
        break;
      case 'media_reset':
        // Our legs were lost past the grace period and the server closed them: start afresh.
        this.#rebuildRtc();
        break;
      case 'mute_requested':
        this.#emit('mute-requested', {});
        break;
      case 'class_ended':
        this.#end();
        break;
      case 'error':
        if (m.in_reply_to === 'publish_offer') rtc?.publishRejected();
        if (m.code === 'class_ended') this.#end();
        else if (m.in_reply_to === 'board_op' || m.in_reply_to === 'laser') this.#emit('board-error', m);
        else if (POLL_REQUESTS.has(m.in_reply_to)) this.#emit('poll-error', m);
        else this.#emit('server-error', m);
        break;
      default:
        break;
    }
  }

  #onFatal({ code, message }) {
    if (code === 'class_ended') {
      this.#setState({ ...this.state, ended: true });
      this.#end();
      return;
    }
    this.#teardown();
    this.#emit('fatal', { code, message });
  }

  #end() {
    this.#teardown();
    this.#emit('ended', {});
  }

  #teardown() {
    clearInterval(this.qualityTimer);
    if (this.rtc) this.rtc.close();
    this.signaling.close();
  }

  // --- actions ----------------------------------------------------------------------------

  send(message) {
    return this.signaling.send(message);
  }

  raiseHand() { return this.send(msg.raiseHand()); }
  lowerHand(classroomId) { return this.send(msg.lowerHand(classroomId)); }
  stageAdd(classroomId) { return this.send(msg.stageAdd(classroomId)); }
  stageRemove(classroomId) { return this.send(msg.stageRemove(classroomId)); }
  muteRequest(classroomId) { return this.send(msg.muteRequest(classroomId)); }
  endClass() { return this.send(msg.endClass()); }
  boardOp(op) { return this.send(msg.boardOp(op)); }
  laser(page, point) { return this.send(msg.laser(page, point)); }
  laserOff() { return this.send(msg.laserOff()); }
  pollStart(spec) { return this.send(msg.pollStart(spec)); }
  pollVote(pollId, choices) { return this.send(msg.pollVote(pollId, choices)); }
  pollClose(pollId) { return this.send(msg.pollClose(pollId)); }
  pollPublish(pollId) { return this.send(msg.pollPublish(pollId)); }

  leave() {
    this.signaling.leave();
    this.#teardown();
  }

  /**
   * The page goes away without leaving (a reload): the socket and both legs close without a
   * `leave`, so the seat waits out the reconnect grace period and the page that loads next takes
   * it back, its tracks continuing for everyone (docs/protocol.md, continuous downtracks).
   */
  suspend() {
    this.#teardown();
  }

  async startScreen(track) {
    this.local.screen = track;
    if (this.rtc) await this.rtc.startScreen(track);
  }

  async stopScreen() {
    this.local.screen = null;
    if (this.rtc) await this.rtc.stopScreen();
  }

  /**
   * Audio only for a weak link: the server stops forwarding video to this classroom and re-offers
   * (`subscribe_prefs`), and the page stops showing video at once.
   */
  setAudioOnly(on) {
    this.audioOnly = !!on;
    this.signaling.send(msg.subscribePrefs(!this.audioOnly));
    if (this.rtc) this.rtc.setAudioOnly(on);
  }

  // --- measurements -----------------------------------------------------------------------

  /**
   * Whether a received video track has shown no new frame for STALL_MS (its sender stopped, e.g. a
   * screen share that ended while the server still lists it). Layouts fall back to another picture.
   */
  isStalled(trackId) {
    const p = this.progress.get(trackId);
    return !!p && Date.now() - p.since >= STALL_MS;
  }

  #trackProgress(tracks) {
    const now = Date.now();
    const before = this.stalled || new Set();
    // Every received video track counts, also one that never got a packet (no inbound-rtp yet).
    const frames = new Map(tracks.filter((s) => s.kind === 'video').map((s) => [s.track_id, s.framesDecoded]));
    const seen = new Set();
    for (const info of Object.values(this.rtc.subscribed)) {
      if (info.kind !== 'video') continue;
      seen.add(info.track_id);
      const decoded = frames.get(info.track_id) || 0;
      const p = this.progress.get(info.track_id);
      if (!p || decoded > p.frames) this.progress.set(info.track_id, { frames: decoded, since: now });
    }
    for (const id of [...this.progress.keys()]) if (!seen.has(id)) this.progress.delete(id);
    const after = new Set([...this.progress.keys()].filter((id) => this.isStalled(id)));
    this.stalled = after;
    if (before.size !== after.size || [...after].some((id) => !before.has(id))) this.#emit('stalled', { tracks: [...after] });
  }

  /** Per-track inbound stats: [{classroom_id, kind, source, framesDecoded, bytesReceived}]. */
  async stats() {
    if (!this.rtc) return [];
    const { tracks } = await this.rtc.inboundStats();
    return tracks.map(({ track_id, classroom_id, kind, source, framesDecoded, bytesReceived }) => (
      { track_id, classroom_id, kind, source, framesDecoded, bytesReceived }));
  }

  async #measure() {
    if (!this.rtc || this.rtc.closed) return;
    let result;
    try {
      result = await this.rtc.inboundStats();
    } catch {
      return;
    }
    this.#trackProgress(result.tracks);
    const perClassroom = {};
    const details = {};
    for (const s of result.tracks) {
      const lossPercent = intervalLoss(this.prevStats.get(s.mid), s);
      this.prevStats.set(s.mid, { packetsReceived: s.packetsReceived, packetsLost: s.packetsLost });
      // Video packets leave in bursts per frame, so their jitter says little about the link: grade
      // jitter on audio only; loss and round-trip time on everything.
      const measured = {
        lossPercent: lossPercent ?? undefined,
        rttMs: result.rttMs ?? undefined,
        jitterMs: s.kind === 'audio' ? (s.jitterMs ?? undefined) : undefined,
      };
      (perClassroom[s.classroom_id] ||= []).push(grade(measured));
      (details[s.classroom_id] ||= []).push({ kind: s.kind, source: s.source, ...measured });
    }
    const byClassroom = {};
    for (const [id, grades] of Object.entries(perClassroom)) byClassroom[id] = worst(grades);
    let overall = worst(Object.values(byClassroom));
    // One bad reading is a blip; call the link weak only when two in a row are poor.
    const poorNow = overall === 'poor';
    if (poorNow && !this.poorBefore) overall = 'fair';
    this.poorBefore = poorNow;
    const legs = [this.rtc.legState('subscribe'), this.rtc.legState('publish')];
    if (legs.includes('disconnected') || legs.includes('failed')) overall = 'poor';
    this.quality = { byClassroom, overall, rttMs: result.rttMs, details };
    this.#emit('quality', this.quality);
  }
}
