// RtcSession against a fake RTCPeerConnection: the publish leg offers once at a time and declares
// its tracks by msid, the subscribe leg answers and maps mids to published tracks, ICE trickles.
import { test, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { RtcSession, RESTART_AFTER_DISCONNECTED_MS, RESTART_RETRY_MS, preferRed } from '../js/rtc.js';
import { FakeClock } from './fakes.js';

globalThis.MediaStream ??= class { constructor(tracks = []) { this.tracks = tracks; this.id = 'stream-x'; } };

class FakePC {
  static all = [];
  constructor(config) {
    Object.assign(this, { config, transceivers: [], localDescription: null, remoteDescription: null,
      signalingState: 'stable', connectionState: 'new', added: [], stats: [] });
    FakePC.all.push(this);
  }
  addTransceiver(track, init) {
    const tr = {
      mid: null, direction: init.direction, stopped: false,
      sender: { track, async replaceTrack(t) { this.track = t; } },
      receiver: { track: null },
      msid: track.id,
      codecPreferences: null,
      setCodecPreferences(codecs) { this.codecPreferences = codecs; },
      stop() { this.stopped = true; },
    };
    this.transceivers.push(tr);
    return tr;
  }
  getTransceivers() { return this.transceivers; }
  sdp() {
    return 'v=0\r\n' + this.transceivers.map((t) => `m=${t.sender?.track?.kind || 'video'} 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:${t.mid}\r\na=${t.direction}\r\n`
      + (t.direction === 'sendonly' && t.msid ? `a=msid:stream-x ${t.msid}\r\n` : '')).join('');
  }
  async createOffer() { return { type: 'offer', iceRestart: !!this.restartPending }; }
  restartIce() { this.restartPending = true; this.iceRestarts = (this.iceRestarts || 0) + 1; }
  /** What a browser does when its ICE agent changes the leg's state. */
  goes(state) { this.connectionState = state; this.onconnectionstatechange?.(); }
  async createAnswer() { return { type: 'answer' }; }
  async setLocalDescription(desc) {
    if (desc.type === 'rollback') { this.signalingState = 'stable'; this.localDescription = null; return; }
    this.transceivers.forEach((t, i) => { if (t.mid == null) t.mid = String(i); });
    if (desc.type === 'offer') this.offeredRestart = !!desc.iceRestart;
    this.restartPending = false;
    this.localDescription = { type: desc.type, sdp: desc.type === 'answer' ? `answer ${this.transceivers.map((t) => `${t.mid}:${t.direction}`).join(' ')}` : this.sdp() };
    this.signalingState = desc.type === 'offer' ? 'have-local-offer' : 'stable';
  }
  async setRemoteDescription(desc) {
    if (desc.type === 'answer') {
      if (this.signalingState !== 'have-local-offer') throw new Error('InvalidStateError');
      this.signalingState = 'stable';
    } else {
      for (const [, kind, mid] of desc.sdp.matchAll(/m=(\w+)[^\n]*\n[^]*?a=mid:(\S+)/g)) {
        if (!this.transceivers.some((t) => t.mid === mid)) {
          this.transceivers.push({ mid, direction: 'recvonly', stopped: false, receiver: { track: { id: `recv-${mid}`, kind } } });
        }
      }
      this.signalingState = 'have-remote-offer';
    }
    this.remoteDescription = desc;
  }
  async addIceCandidate(c) { this.added.push(c); }
  async getStats() { return new Map(this.stats.map((s, i) => [String(i), s])); }
  close() { this.closed = true; }
}

const tick = () => new Promise((r) => setImmediate(r));
let sent;
let rtc;
beforeEach(() => {
  FakePC.all = [];
  sent = [];
  rtc = new RtcSession({ send: (m) => sent.push(m), RTCPeerConnectionImpl: FakePC });
});

const mic = { id: 'mic-1', kind: 'audio' };
const cam = { id: 'cam-1', kind: 'video' };
const screen = { id: 'screen-1', kind: 'video' };
const stream = new MediaStream([mic, cam]);
const pub = () => FakePC.all[1];
const sub = () => FakePC.all[0];

test('publishing offers sendonly tracks, declared by their msid, with their source', async () => {
  await rtc.publish([{ source: 'microphone', track: mic, stream }, { source: 'camera', track: cam, stream }]);
  assert.equal(sent.length, 1);
  assert.equal(sent[0].type, 'publish_offer');
  assert.deepEqual(sent[0].tracks, [{ track_id: 'mic-1', source: 'microphone' }, { track_id: 'cam-1', source: 'camera' }]);
  assert.ok(pub().transceivers.every((t) => t.direction === 'sendonly'));
  assert.equal(pub().config.bundlePolicy, 'max-bundle');
});

test('the microphone prefers redundant audio (RED) when the browser has it, the camera keeps its codecs', async () => {
  const opus = { mimeType: 'audio/opus', clockRate: 48000, channels: 2, sdpFmtpLine: 'minptime=10;useinbandfec=1' };
  const red = { mimeType: 'audio/red', clockRate: 48000, channels: 2, sdpFmtpLine: '111/111' };
  const g722 = { mimeType: 'audio/G722', clockRate: 8000 };
  rtc = new RtcSession({ send: (m) => sent.push(m), RTCPeerConnectionImpl: FakePC, audioCodecs: [opus, red, g722] });
  await rtc.publish([{ source: 'microphone', track: mic, stream }, { source: 'camera', track: cam, stream }]);
  const [micTr, camTr] = FakePC.all.at(-1).transceivers;
  assert.deepEqual(micTr.codecPreferences, [red, opus, g722]);
  assert.equal(camTr.codecPreferences, null);
  // A browser without RED keeps its order.
  const withoutRed = { setCodecPreferences() { throw new Error('not called'); } };
  assert.equal(preferRed(withoutRed, [opus, g722]), false);
  assert.equal(preferRed(withoutRed, undefined), false);
});

test('a second negotiation waits for the answer to the first, then screen share is offered', async () => {
  await rtc.publish([{ source: 'camera', track: cam, stream }]);
  await rtc.startScreen(screen);
  assert.equal(sent.filter((m) => m.type === 'publish_offer').length, 1, 'no second offer before the answer');
  await rtc.handlePublishAnswer('v=0 answer');
  await tick();
  const offers = sent.filter((m) => m.type === 'publish_offer');
  assert.equal(offers.length, 2);
  assert.deepEqual(offers[1].tracks, [{ track_id: 'cam-1', source: 'camera' }, { track_id: 'screen-1', source: 'screen' }]);
  await rtc.handlePublishAnswer('v=0 answer');
  await rtc.stopScreen();
  const last = sent.filter((m) => m.type === 'publish_offer').at(-1);
  assert.deepEqual(last.tracks, [{ track_id: 'cam-1', source: 'camera' }], 'the stopped share is no longer declared');
  assert.equal(pub().transceivers[1].direction, 'inactive');
});

test('a refused offer is rolled back so the next one can go out', async () => {
  await rtc.publish([{ source: 'camera', track: cam, stream }]);
  await rtc.publishRejected();
  assert.equal(pub().signalingState, 'stable');
  await rtc.negotiatePublish();
  assert.equal(sent.filter((m) => m.type === 'publish_offer').length, 2);
});

test('ICE candidates trickle out with their leg, and early remote ones wait for the description', async () => {
  await rtc.publish([{ source: 'camera', track: cam, stream }]);
  pub().onicecandidate({ candidate: { candidate: 'candidate:1 1 udp 1 127.0.0.1 5000 typ host', sdpMid: '0', sdpMLineIndex: 0 } });
  sub().onicecandidate({ candidate: null });
  assert.deepEqual(sent.at(-1), { type: 'ice_candidate', target: 'publish',
    candidate: { candidate: 'candidate:1 1 udp 1 127.0.0.1 5000 typ host', sdpMid: '0', sdpMLineIndex: 0 } });
  await rtc.addRemoteCandidate('publish', { candidate: 'candidate:srv', sdpMid: '0' });
  assert.equal(pub().added.length, 0, 'held until the answer');
  await rtc.handlePublishAnswer('v=0');
  assert.deepEqual(pub().added, [{ candidate: 'candidate:srv', sdpMid: '0' }]);
});

const teacherCam = { track_id: 't1', classroom_id: 'r_1', kind: 'video', source: 'camera' };
const teacherMic = { track_id: 't2', classroom_id: 'r_1', kind: 'audio', source: 'microphone' };
const offerSdp = 'v=0\nm=video 9 x\na=mid:0\nm=audio 9 x\na=mid:1\n';

test('a subscribe offer is answered and its mids map to published tracks', async () => {
  const seen = [];
  rtc.addEventListener('remote-tracks', (e) => seen.push(e.detail.tracks));
  await rtc.handleSubscribeOffer({ sdp: offerSdp, tracks: [{ mid: '0', track: teacherCam }, { mid: '1', track: teacherMic }] });
  assert.equal(sent.at(-1).type, 'subscribe_answer');
  const tracks = seen.at(-1);
  assert.deepEqual(tracks.map((t) => [t.mid, t.info.track_id, t.track.id]), [['0', 't1', 'recv-0'], ['1', 't2', 'recv-1']]);

  sub().stats = [
    { type: 'inbound-rtp', mid: '0', kind: 'video', framesDecoded: 50, bytesReceived: 9000, packetsReceived: 90, packetsLost: 1, jitter: 0.004 },
    { type: 'inbound-rtp', trackIdentifier: 'recv-1', kind: 'audio', bytesReceived: 4000, packetsReceived: 200, packetsLost: 0, jitter: 0.002 },
    { type: 'candidate-pair', nominated: true, currentRoundTripTime: 0.031 },
  ];
  const stats = await rtc.inboundStats();
  assert.equal(stats.rttMs, 31);
  assert.deepEqual(stats.tracks.map((s) => [s.classroom_id, s.kind, s.source, s.framesDecoded, s.bytesReceived]),
    [['r_1', 'video', 'camera', 50, 9000], ['r_1', 'audio', 'microphone', 0, 4000]]);
});

test('audio only drops video from the screen and answers video inactive', async () => {
  await rtc.handleSubscribeOffer({ sdp: offerSdp, tracks: [{ mid: '0', track: teacherCam }, { mid: '1', track: teacherMic }] });
  rtc.setAudioOnly(true);
  assert.deepEqual(rtc.remoteTracks().map((t) => t.info.kind), ['audio']);
  assert.equal(sub().transceivers[0].direction, 'inactive');
  await rtc.handleSubscribeOffer({ sdp: offerSdp, tracks: [{ mid: '0', track: teacherCam }, { mid: '1', track: teacherMic }] });
  assert.match(sent.at(-1).sdp, /0:inactive 1:recvonly/);
  rtc.setAudioOnly(false);
  assert.equal(rtc.remoteTracks().length, 2);
  assert.equal(sub().transceivers[0].direction, 'recvonly');
});

test('closing stops both legs and sends nothing more', async () => {
  await rtc.publish([{ source: 'camera', track: cam, stream }]);
  rtc.close();
  assert.ok(FakePC.all.every((pc) => pc.closed));
  const count = sent.length;
  await rtc.handleSubscribeOffer({ sdp: offerSdp, tracks: [] });
  assert.equal(sent.length, count);
});

// --- recovery without reloading ---------------------------------------------------------------

function withClock() {
  const clock = new FakeClock();
  const session = new RtcSession({ send: (m) => sent.push(m), RTCPeerConnectionImpl: FakePC,
    setTimeout: clock.setTimeout, clearTimeout: clock.clearTimeout });
  return { clock, session };
}
const restartsAsked = () => sent.filter((m) => m.type === 'ice_restart');

test('a subscribe leg that stays disconnected asks the server for an ICE restart, once, after a few seconds', () => {
  const { clock } = withClock();
  const leg = FakePC.all.at(-1);
  leg.goes('connected');
  leg.goes('disconnected');
  clock.advance(RESTART_AFTER_DISCONNECTED_MS - 1);
  assert.equal(restartsAsked().length, 0, 'a short disconnect is left to ICE');
  leg.goes('disconnected');
  clock.advance(1);
  assert.deepEqual(restartsAsked(), [{ type: 'ice_restart', leg: 'subscribe' }]);
  // Still not connected: asked again, and so on until it is.
  leg.goes('connecting');
  clock.advance(RESTART_RETRY_MS);
  assert.equal(restartsAsked().length, 2, 'a restart that did not take is tried again');
  leg.goes('connected');
  clock.advance(10 * RESTART_RETRY_MS);
  assert.equal(restartsAsked().length, 2, 'nothing more once connected');
});

test('a disconnect that heals by itself restarts nothing', () => {
  const { clock } = withClock();
  const leg = FakePC.all.at(-1);
  leg.goes('connected');
  leg.goes('disconnected');
  clock.advance(RESTART_AFTER_DISCONNECTED_MS / 2);
  leg.goes('connected');
  clock.advance(10 * RESTART_AFTER_DISCONNECTED_MS);
  assert.equal(restartsAsked().length, 0);
});

test('a failed publish leg re-offers with new ICE credentials at once', async () => {
  const { clock, session } = withClock();
  const restarts = [];
  session.addEventListener('ice-restart', (e) => restarts.push(e.detail));
  await session.publish([{ source: 'camera', track: cam, stream }]);
  await session.handlePublishAnswer('v=0 answer');
  const leg = FakePC.all.at(-1);
  leg.goes('connected');
  leg.goes('failed');
  await tick();
  const offers = sent.filter((m) => m.type === 'publish_offer');
  assert.equal(offers.length, 2, 'a new offer went out');
  assert.equal(leg.offeredRestart, true, 'and it restarts ICE');
  assert.deepEqual(restarts, [{ leg: 'publish', attempt: 1 }]);
  assert.equal(restartsAsked().length, 0, 'the publish leg needs no ice_restart message');
  // The answer comes and the leg connects: no further restarts.
  await session.handlePublishAnswer('v=0 answer');
  leg.goes('connected');
  clock.advance(10 * RESTART_RETRY_MS);
  assert.equal(leg.iceRestarts, 1);
});

test('a closed session plans no restarts', () => {
  const { clock, session } = withClock();
  const leg = FakePC.all.at(-1);
  leg.goes('disconnected');
  session.close();
  clock.advance(10 * RESTART_RETRY_MS);
  assert.equal(restartsAsked().length, 0);
  assert.deepEqual(clock.pending(), []);
});

test('a publish offer whose answer was lost with the WebSocket goes out again after the resume', async () => {
  await rtc.publish([{ source: 'camera', track: cam, stream }]);
  assert.equal(sent.filter((m) => m.type === 'publish_offer').length, 1);
  // The socket dropped before the answer came; the resume kept the legs.
  await rtc.resumed();
  assert.equal(sent.filter((m) => m.type === 'publish_offer').length, 2, 'offered again');
  await rtc.handlePublishAnswer('v=0 answer');
  assert.equal(pub().signalingState, 'stable');
  await rtc.resumed();
  assert.equal(sent.filter((m) => m.type === 'publish_offer').length, 2, 'nothing to repeat once answered');
});

test('both legs use the TURN servers of the welcome, with their credentials', async () => {
  const iceServers = [{ urls: ['turn:turn.example.org:3478?transport=udp'], username: '1700000000:r_1', credential: 'c2VjcmV0' }];
  FakePC.all = [];
  const withTurn = new RtcSession({ send: () => {}, RTCPeerConnectionImpl: FakePC, iceServers });
  await withTurn.publish([{ source: 'microphone', track: mic, stream }]);
  assert.equal(FakePC.all.length, 2);
  for (const pc of FakePC.all) {
    assert.deepEqual(pc.config.iceServers, iceServers);
    assert.equal(pc.config.bundlePolicy, 'max-bundle');
  }
});
