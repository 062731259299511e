import { test } from 'node:test';
import assert from 'node:assert/strict';
import { msg, parseServerMessage, ProtocolError, SignalingClient, msidByMid, backoffDelay, wsUrl } from '../js/protocol.js';
import { FakeWebSocket, FakeClock, welcome } from './fakes.js';

function client(options = {}) {
  FakeWebSocket.reset();
  const clock = new FakeClock();
  const c = new SignalingClient({
    url: 'ws://127.0.0.1:8080/ws', token: 'tok', name: 'Grade 2',
    WebSocketImpl: FakeWebSocket, setTimeout: clock.setTimeout, clearTimeout: clock.clearTimeout,
    random: () => 0.5, ...options,
  });
  const events = [];
  for (const type of ['status', 'welcome', 'message', 'fatal', 'retry', 'protocol_error']) {
    c.addEventListener(type, (e) => events.push({ event: type, ...e.detail }));
  }
  return { c, clock, events };
}

test('builders produce exactly the documented messages', () => {
  assert.deepEqual(msg.join('tok', 'Ms Li'), { type: 'join', v: 1, token: 'tok', name: 'Ms Li' });
  assert.deepEqual(msg.join('tok', 'Ms Li', 's_9'), { type: 'join', v: 1, token: 'tok', name: 'Ms Li', resume: 's_9' });
  assert.deepEqual(msg.publishOffer('v=0', [{ track_id: 'a', source: 'camera', extra: 1 }]),
    { type: 'publish_offer', sdp: 'v=0', tracks: [{ track_id: 'a', source: 'camera' }] });
  assert.deepEqual(msg.subscribeAnswer('v=0'), { type: 'subscribe_answer', sdp: 'v=0' });
  assert.deepEqual(msg.iceCandidate('publish', { candidate: 'candidate:1', sdpMid: '0', sdpMLineIndex: 0, usernameFragment: null }),
    { type: 'ice_candidate', target: 'publish', candidate: { candidate: 'candidate:1', sdpMid: '0', sdpMLineIndex: 0 } });
  assert.throws(() => msg.iceCandidate('both', { candidate: 'x' }), TypeError);
  assert.deepEqual(msg.lowerHand(), { type: 'lower_hand' });
  assert.deepEqual(msg.lowerHand('r_3'), { type: 'lower_hand', classroom_id: 'r_3' });
  assert.deepEqual(msg.stageAdd('r_2'), { type: 'stage_add', classroom_id: 'r_2' });
  assert.deepEqual(msg.stageRemove('r_2'), { type: 'stage_remove', classroom_id: 'r_2' });
  assert.deepEqual(msg.muteRequest('r_2'), { type: 'mute_request', classroom_id: 'r_2' });
  for (const [fn, type] of [[msg.raiseHand, 'raise_hand'], [msg.endClass, 'end_class'], [msg.ping, 'ping'], [msg.leave, 'leave']]) {
    assert.deepEqual(fn(), { type });
  }
});

test('the parser accepts the documented server messages and refuses anything else', () => {
  assert.equal(parseServerMessage(JSON.stringify(welcome())).type, 'welcome');
  assert.equal(parseServerMessage('{"type":"stage","stage":["r_2"]}').stage[0], 'r_2');
  assert.equal(parseServerMessage('{"type":"error","code":"forbidden","message":"teacher only","in_reply_to":"stage_add"}').code, 'forbidden');
  assert.equal(parseServerMessage('{"type":"mute_requested"}').type, 'mute_requested');
  for (const bad of ['nope', '[]', '{"type":"hack"}', '{"type":"stage"}', '{"type":"stage","stage":"r_2"}',
    '{"type":"subscribe_offer","sdp":"v=0"}', '{"type":"participant_state","classroom_id":"r_1","connected":"no"}']) {
    assert.throws(() => parseServerMessage(bad), ProtocolError, bad);
  }
});

test('msid track ids are read per mid from an SDP', () => {
  const sdp = 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n'
    + 'm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=sendonly\r\na=msid:stream-1 mic-track\r\n'
    + 'm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=msid:stream-1 cam-track\r\n'
    + 'm=video 0 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\na=inactive\r\n';
  assert.deepEqual(msidByMid(sdp), { 0: 'mic-track', 1: 'cam-track' });
});

test('backoff doubles from half a second up to ten seconds', () => {
  const mid = () => 0.5;
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6].map((a) => backoffDelay(a, mid)), [500, 1000, 2000, 4000, 8000, 10000, 10000]);
  assert.equal(backoffDelay(0, () => 0), 400);
  assert.equal(backoffDelay(0, () => 1), 600);
});

test('the WebSocket URL follows the page scheme', () => {
  assert.equal(wsUrl({ protocol: 'http:', host: '127.0.0.1:8080' }), 'ws://127.0.0.1:8080/ws');
  assert.equal(wsUrl({ protocol: 'https:', host: 'tandem.example' }), 'wss://tandem.example/ws');
});

test('join is the first message, then welcome makes the client joined', () => {
  const { c, events } = client();
  c.connect();
  const ws = FakeWebSocket.last();
  assert.equal(ws.url, 'ws://127.0.0.1:8080/ws');
  assert.equal(c.status, 'connecting');
  ws.serverOpen();
  assert.deepEqual(ws.sent, [{ type: 'join', v: 1, token: 'tok', name: 'Grade 2' }]);
  ws.serverSend(welcome());
  assert.equal(c.status, 'joined');
  assert.equal(c.session, 's_1');
  const w = events.find((e) => e.event === 'welcome');
  assert.equal(w.resumed, false);
  assert.equal(c.send(msg.raiseHand()), true);
  assert.deepEqual(ws.sent.at(-1), { type: 'raise_hand' });
});

test('a dropped socket reconnects with backoff and resumes the session', () => {
  const { c, clock, events } = client();
  c.connect();
  let ws = FakeWebSocket.last();
  ws.serverOpen();
  ws.serverSend(welcome());
  ws.serverDrop();
  assert.equal(c.status, 'reconnecting');
  assert.equal(c.send(msg.raiseHand()), false, 'nothing is sent while down');
  assert.equal(FakeWebSocket.instances.length, 1);
  clock.advance(499);
  assert.equal(FakeWebSocket.instances.length, 1, 'waits for the backoff');
  clock.advance(1);
  assert.equal(FakeWebSocket.instances.length, 2);
  // The second attempt fails too: the next wait is longer.
  FakeWebSocket.last().serverDrop();
  clock.advance(999);
  assert.equal(FakeWebSocket.instances.length, 2);
  clock.advance(1);
  ws = FakeWebSocket.last();
  ws.serverOpen();
  assert.deepEqual(ws.sent[0], { type: 'join', v: 1, token: 'tok', name: 'Grade 2', resume: 's_1' });
  ws.serverSend(welcome());
  assert.equal(c.status, 'joined');
  assert.equal(events.filter((e) => e.event === 'welcome').at(-1).resumed, true);
  // Backoff starts over after a successful join.
  ws.serverDrop();
  clock.advance(500);
  assert.equal(FakeWebSocket.instances.length, 4);
});

test('a server going away is not an error: the client reconnects and resumes', () => {
  const { c, clock, events } = client();
  c.connect();
  let ws = FakeWebSocket.last();
  ws.serverOpen();
  ws.serverSend(welcome());
  ws.serverSend({ type: 'server_going_away' });
  assert.deepEqual(events.filter((e) => e.event === 'protocol_error'), [], 'a documented message');
  ws.serverDrop();
  assert.equal(c.status, 'reconnecting');
  clock.advance(500);
  ws = FakeWebSocket.last();
  ws.serverOpen();
  assert.equal(ws.sent[0].resume, 's_1');
});

test('a page that still holds its media legs asks to keep them when it resumes, never on a first join', () => {
  let holding = true;
  const { c, clock } = client({ keepMedia: () => holding });
  c.connect();
  let ws = FakeWebSocket.last();
  ws.serverOpen();
  assert.equal(ws.sent[0].keep_media, undefined, 'a first join has nothing to keep');
  ws.serverSend(welcome());
  ws.serverDrop();
  clock.advance(500);
  ws = FakeWebSocket.last();
  ws.serverOpen();
  assert.deepEqual(ws.sent[0], { type: 'join', v: 1, token: 'tok', name: 'Grade 2', resume: 's_1', keep_media: true });
  ws.serverSend(welcome({ media_kept: true }));
  holding = false;
  ws.serverDrop();
  clock.advance(500);
  ws = FakeWebSocket.last();
  ws.serverOpen();
  assert.equal(ws.sent[0].keep_media, undefined, 'legs already closed are not asked for');
  assert.deepEqual(parseServerMessage('{"type":"media_state","classroom_id":"r_2","connected":false}').connected, false);
  assert.equal(parseServerMessage('{"type":"media_reset"}').type, 'media_reset');
  assert.deepEqual(msg.iceRestart('subscribe'), { type: 'ice_restart', leg: 'subscribe' });
  assert.throws(() => msg.iceRestart('publish'), TypeError);
});

test('an invalid link is fatal: no reconnect loop', () => {
  const { c, clock, events } = client();
  c.connect();
  const ws = FakeWebSocket.last();
  ws.serverOpen();
  ws.serverSend({ type: 'error', code: 'unauthorized', message: 'bad token', in_reply_to: 'join' });
  assert.deepEqual(events.filter((e) => e.event === 'fatal').map((e) => e.code), ['unauthorized']);
  assert.equal(c.status, 'closed');
  ws.serverDrop();
  clock.advance(60_000);
  assert.equal(FakeWebSocket.instances.length, 1);
});

test('class_ended stops the client and is passed on', () => {
  const { c, clock, events } = client();
  c.connect();
  const ws = FakeWebSocket.last();
  ws.serverOpen();
  ws.serverSend(welcome());
  ws.serverSend({ type: 'class_ended' });
  assert.ok(events.some((e) => e.event === 'message' && e.type === 'class_ended'));
  assert.equal(c.status, 'closed');
  clock.advance(60_000);
  assert.equal(FakeWebSocket.instances.length, 1);
});

test('a transient join error (rate_limited) retries instead of giving up', () => {
  const { c, clock, events } = client();
  c.connect();
  FakeWebSocket.last().serverOpen();
  FakeWebSocket.last().serverSend({ type: 'error', code: 'internal', message: 'oops', in_reply_to: 'join' });
  assert.equal(events.filter((e) => e.event === 'fatal').length, 0);
  clock.advance(600);
  assert.equal(FakeWebSocket.instances.length, 2);
});

test('a silent link is dropped and retried; pings keep a healthy one alive', () => {
  const { c, clock } = client({ pingIntervalMs: 10_000, silenceTimeoutMs: 25_000 });
  c.connect();
  const ws = FakeWebSocket.last();
  ws.serverOpen();
  ws.serverSend(welcome());
  clock.advance(10_000);
  assert.deepEqual(ws.sent.at(-1), { type: 'ping' });
  ws.serverSend({ type: 'pong' });
  clock.advance(20_000);
  assert.equal(FakeWebSocket.instances.length, 1, 'pong kept it alive');
  clock.advance(5_000);
  assert.equal(ws.closedWith, 4000, 'silence closed the socket');
  assert.equal(c.status, 'reconnecting');
  clock.advance(600);
  assert.equal(FakeWebSocket.instances.length, 2);
});

test('garbage from the server is reported, not thrown', () => {
  const { c, events } = client();
  c.connect();
  FakeWebSocket.last().serverOpen();
  FakeWebSocket.last().serverSend('not json');
  assert.equal(events.filter((e) => e.event === 'protocol_error').length, 1);
});

test('leave tells the server and stops reconnecting', () => {
  const { c, clock } = client();
  c.connect();
  const ws = FakeWebSocket.last();
  ws.serverOpen();
  ws.serverSend(welcome());
  c.leave();
  assert.deepEqual(ws.sent.at(-1), { type: 'leave' });
  assert.equal(ws.closedWith, 1000);
  clock.advance(60_000);
  assert.equal(FakeWebSocket.instances.length, 1);
});
