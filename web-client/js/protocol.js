// The Tandem wire protocol, version 1 (docs/protocol.md): message builders, a parser for what the
// server says, and SignalingClient, one WebSocket with reconnect-and-resume. No DOM here, so Node
// tests drive it with a fake WebSocket and fake timers.

export const PROTOCOL_VERSION = 1;

/** Builders for every client → server message. */
export const msg = {
  join: (token, name, resume, keepMedia = false) => {
    const m = { type: 'join', v: PROTOCOL_VERSION, token, name };
    if (resume) m.resume = resume;
    // Only a resume can keep media: the legs belong to the old session.
    if (resume && keepMedia) m.keep_media = true;
    return m;
  },
  publishOffer: (sdp, tracks) => ({
    type: 'publish_offer',
    sdp,
    tracks: tracks.map(({ track_id, source }) => ({ track_id, source })),
  }),
  subscribeAnswer: (sdp) => ({ type: 'subscribe_answer', sdp }),
  iceCandidate: (target, candidate) => {
    if (target !== 'publish' && target !== 'subscribe') throw new TypeError(`bad ICE target ${target}`);
    const c = { candidate: candidate.candidate };
    if (candidate.sdpMid != null) c.sdpMid = candidate.sdpMid;
    if (candidate.sdpMLineIndex != null) c.sdpMLineIndex = candidate.sdpMLineIndex;
    if (candidate.usernameFragment != null) c.usernameFragment = candidate.usernameFragment;
    return { type: 'ice_candidate', target, candidate: c };
  },
  iceRestart: (leg) => {
    if (leg !== 'subscribe') throw new TypeError(`only the subscribe leg restarts by message, not ${leg}`);
    return { type: 'ice_restart', leg };
  },
  raiseHand: () => ({ type: 'raise_hand' }),
  lowerHand: (classroomId) => (classroomId ? { type: 'lower_hand', classroom_id: classroomId } : { type: 'lower_hand' }),
  stageAdd: (classroomId) => ({ type: 'stage_add', classroom_id: classroomId }),
  stageRemove: (classroomId) => ({ type: 'stage_remove', classroom_id: classroomId }),
  muteRequest: (classroomId) => ({ type: 'mute_request', classroom_id: classroomId }),
  endClass: () => ({ type: 'end_class' }),
  ping: () => ({ type: 'ping' }),
  leave: () => ({ type: 'leave' }),
  subscribePrefs: (video) => ({ type: 'subscribe_prefs', video: !!video }),
  boardOp: (op) => ({ type: 'board_op', op }),
  boardSync: (sinceSeq) => (sinceSeq == null ? { type: 'board_sync' } : { type: 'board_sync', since_seq: sinceSeq }),
  laser: (page, point) => ({ type: 'laser', page, point }),
  laserOff: () => ({ type: 'laser_off' }),
  pollStart: (spec) => ({ type: 'poll_start', spec }),
  pollVote: (pollId, choices) => ({ type: 'poll_vote', poll_id: pollId, choices: [...choices] }),
  pollClose: (pollId) => ({ type: 'poll_close', poll_id: pollId }),
  pollPublish: (pollId) => ({ type: 'poll_publish', poll_id: pollId }),
};

/** Required fields (and their JS types) of every server → client message. */
const SERVER_SHAPES = {
  welcome: { v: 'number', session: 'string', you: 'object', class: 'object', participants: 'array', stage: 'array', hands: 'array', tracks: 'array', limits: 'object' },
  publish_answer: { sdp: 'string' },
  subscribe_offer: { sdp: 'string', tracks: 'array' },
  ice_candidate: { target: 'string', candidate: 'object' },
  participant_joined: { participant: 'object' },
  participant_left: { classroom_id: 'string' },
  participant_state: { classroom_id: 'string', connected: 'boolean' },
  media_state: { classroom_id: 'string', connected: 'boolean' },
  media_reset: {},
  track_published: { track: 'object' },
  track_unpublished: { track_id: 'string', classroom_id: 'string' },
  // `classroom_id` is a classroom id or null (nobody speaks): checked by the reducer.
  speaking: {},
  hands: { hands: 'array' },
  stage: { stage: 'array' },
  mute_requested: {},
  class_ended: {},
  pong: {},
  board_op: { applied: 'object' },
  board_catchup: { catchup: 'object' },
  laser: { classroom_id: 'string', page: 'number', point: 'array' },
  laser_off: { classroom_id: 'string' },
  poll: { poll: 'object' },
  poll_voted: { poll_id: 'number', choices: 'array' },
  poll_counts: { poll_id: 'number', counts: 'array', voters_total: 'number' },
  poll_result: { results: 'object' },
  server_going_away: {},
  error: { code: 'string', message: 'string' },
};

export class ProtocolError extends Error {}

/** Parse one text frame from the server; throws ProtocolError for anything not in the protocol. */
export function parseServerMessage(text) {
  let m;
  try {
    m = JSON.parse(text);
  } catch {
    throw new ProtocolError('not JSON');
  }
  if (!m || typeof m !== 'object' || typeof m.type !== 'string') throw new ProtocolError('no type');
  const shape = SERVER_SHAPES[m.type];
  if (!shape) throw new ProtocolError(`unknown message type ${m.type}`);
  for (const [field, kind] of Object.entries(shape)) {
    const value = m[field];
    const ok = kind === 'array' ? Array.isArray(value) : (typeof value === kind && value !== null);
    if (!ok) throw new ProtocolError(`${m.type}.${field} should be ${kind}`);
  }
  return m;
}

/** Error codes after which reconnecting cannot help. */
export const FATAL_ERRORS = new Set(['unauthorized', 'class_ended']);

/** The `track_id` of each m-section, from its `a=msid:<stream> <track>` line, keyed by mid. */
export function msidByMid(sdp) {
  const result = {};
  const sections = String(sdp).split(/\r?\nm=/).slice(1);
  for (const section of sections) {
    const mid = /\r?\na=mid:(\S+)/.exec(section);
    const msid = /\r?\na=msid:\S+ (\S+)/.exec(section);
    if (mid && msid) result[mid[1]] = msid[1];
  }
  return result;
}

/** Backoff before reconnect attempt `attempt` (0-based): 0.5 s doubling to 10 s, with ±20% jitter. */
export function backoffDelay(attempt, random = Math.random) {
  const base = Math.min(10_000, 500 * 2 ** attempt);
  return Math.round(base * (0.8 + 0.4 * random()));
}

/** The WebSocket URL on the page's own origin. */
export function wsUrl(location) {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/ws`;
}

const OPEN = 1;

/**
 * One signaling connection. Emits:
 * - `status` `{status}`: `connecting`, `joined`, `reconnecting`, `closed`;
 * - `welcome` (the welcome message, also after every resume, with `resumed: true|false`);
 *   a resume asks to keep the media legs when `keepMedia()` says the page still holds them;
 * - `message` (every other server message);
 * - `fatal` `{code, message}`: the server refused us for good (bad link, class ended); no reconnects.
 */
export class SignalingClient extends EventTarget {
  constructor({
    url, token, name, WebSocketImpl = globalThis.WebSocket,
    setTimeout: setTimer = globalThis.setTimeout.bind(globalThis),
    clearTimeout: clearTimer = globalThis.clearTimeout.bind(globalThis),
    random = Math.random, pingIntervalMs = 10_000, silenceTimeoutMs = 25_000, maxAttempts = Infinity,
    keepMedia = () => false,
  }) {
    super();
    Object.assign(this, { url, token, name, WebSocketImpl, setTimer, clearTimer, random, pingIntervalMs, silenceTimeoutMs, maxAttempts, keepMedia });
    this.session = null;
    this.status = 'idle';
    this.ws = null;
    this.attempt = 0;
    this.stopped = false;
    this.timers = { reconnect: null, ping: null, silence: null };
    this.joinedOnce = false;
  }

  connect() {
    this.stopped = false;
    this.#open();
  }

  /** Send a message built with `msg`; returns false when the socket is not open (dropped). */
  send(message) {
    if (!this.ws || this.ws.readyState !== OPEN) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  /** Leave for good: tell the server (no grace period) and close. */
  leave() {
    this.send(msg.leave());
    this.close();
  }

  close() {
    this.stopped = true;
    this.#clearTimers();
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      try { ws.close(1000); } catch { /* already closed */ }
    }
    this.#setStatus('closed');
  }

  /** Drop the socket as if the network failed (used when the link goes silent). */
  drop() {
    if (this.ws) {
      try { this.ws.close(4000); } catch { /* already closed */ }
      this.#onClose(this.ws);
    }
  }

  #emit(type, detail) {
    this.dispatchEvent(Object.assign(new Event(type), { detail }));
  }

  #setStatus(status) {
    if (this.status === status) return;
    this.status = status;
    this.#emit('status', { status });
  }

  #clearTimers() {
    for (const key of Object.keys(this.timers)) {
      if (this.timers[key] != null) this.clearTimer(this.timers[key]);
      this.timers[key] = null;
    }
  }

  #open() {
    this.#setStatus(this.joinedOnce ? 'reconnecting' : 'connecting');
    let ws;
    try {
      ws = new this.WebSocketImpl(this.url);
    } catch {
      this.#scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      ws.send(JSON.stringify(msg.join(this.token, this.name, this.session, this.session != null && this.keepMedia())));
      this.#armSilence();
    };
    ws.onmessage = (event) => this.#onMessage(ws, event.data);
    ws.onclose = () => this.#onClose(ws);
    ws.onerror = () => { /* onclose follows */ };
  }

  #onMessage(ws, data) {
    if (this.ws !== ws) return;
    this.#armSilence();
    let m;
    try {
      m = parseServerMessage(data);
    } catch (err) {
      this.#emit('protocol_error', { error: err });
      return;
    }
    if (m.type === 'welcome') {
      const resumed = this.session != null && this.session === m.session;
      this.session = m.session;
      this.attempt = 0;
      this.joinedOnce = true;
      this.#setStatus('joined');
      this.#schedulePing();
      this.#emit('welcome', { ...m, resumed });
      return;
    }
    if (m.type === 'error' && (m.in_reply_to === 'join' || m.code === 'class_ended')) {
      if (FATAL_ERRORS.has(m.code) || m.code === 'not_found' || m.code === 'bad_message') {
        this.#emit('fatal', { code: m.code, message: m.message });
        this.close();
      } else {
        // internal, rate_limited, …: try again later on a fresh socket.
        this.#emit('message', m);
        this.drop();
      }
      return;
    }
    if (m.type === 'class_ended') {
      this.#emit('message', m);
      this.close();
      return;
    }
    if (m.type === 'pong') return;
    this.#emit('message', m);
  }

  #onClose(ws) {
    if (this.ws !== ws) return;
    this.ws = null;
    this.#clearTimers();
    if (this.stopped) return;
    this.#scheduleReconnect();
  }

  #scheduleReconnect() {
    if (this.attempt >= this.maxAttempts) {
      this.#emit('fatal', { code: 'unreachable', message: 'server unreachable' });
      this.close();
      return;
    }
    this.#setStatus(this.joinedOnce ? 'reconnecting' : 'connecting');
    const delay = backoffDelay(this.attempt, this.random);
    this.attempt += 1;
    this.#emit('retry', { attempt: this.attempt, delay });
    this.timers.reconnect = this.setTimer(() => {
      this.timers.reconnect = null;
      if (!this.stopped) this.#open();
    }, delay);
  }

  #schedulePing() {
    if (this.timers.ping != null) this.clearTimer(this.timers.ping);
    this.timers.ping = this.setTimer(() => {
      this.timers.ping = null;
      if (this.send(msg.ping())) this.#schedulePing();
    }, this.pingIntervalMs);
  }

  #armSilence() {
    if (this.timers.silence != null) this.clearTimer(this.timers.silence);
    this.timers.silence = this.setTimer(() => {
      this.timers.silence = null;
      this.drop();
    }, this.silenceTimeoutMs);
  }
}
