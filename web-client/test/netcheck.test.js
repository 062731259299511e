import { test } from 'node:test';
import assert from 'node:assert/strict';
import { filterCandidates, iceServersFromLinks, verdict, checkNetwork } from '../js/netcheck.js';

const ANSWER = [
  'v=0', 'm=audio 9 UDP/TLS/RTP/SAVPF 111',
  'a=candidate:1 1 udp 2130706431 203.0.113.10 8443 typ host',
  'a=candidate:2 1 tcp 1671430143 203.0.113.10 8443 typ host tcptype passive',
  'a=end-of-candidates', '',
].join('\r\n');

test('each path sees only its own server candidate', () => {
  const udp = filterCandidates(ANSWER, (l) => l.split(' ')[2] === 'udp');
  assert.match(udp, / udp /);
  assert.doesNotMatch(udp, / tcp /);
  assert.match(udp, /a=end-of-candidates/);
  const tcp = filterCandidates(ANSWER, (l) => l.split(' ')[2] === 'tcp');
  assert.match(tcp, /tcptype passive/);
  assert.doesNotMatch(tcp, / udp /);
});

test('RFC 9725 Link headers become iceServers, other links are ignored', () => {
  const servers = iceServersFromLinks([
    '<turn:t.example:3478?transport=udp>; rel="ice-server"; username="1700000000:netcheck"; credential="a\\"b"; credential-type="password", '
    + '<https://example.org/help>; rel="help", <stun:s.example:3478>; rel="ice-server"',
  ]);
  assert.deepEqual(servers, [
    { urls: ['turn:t.example:3478?transport=udp'], username: '1700000000:netcheck', credential: 'a"b' },
    { urls: ['stun:s.example:3478'] },
  ]);
});

test('the verdict is the best path that worked', () => {
  assert.equal(verdict({ udp: 'ok', tcp: 'ok', turn: 'ok' }), 'udp');
  assert.equal(verdict({ udp: 'failed', tcp: 'ok', turn: 'unavailable' }), 'tcp');
  assert.equal(verdict({ udp: 'failed', tcp: 'failed', turn: 'ok' }), 'turn');
  assert.equal(verdict({ udp: 'failed', tcp: 'failed', turn: 'unavailable' }), 'none');
});

/** A peer connection that "connects" when its remote answer still has a candidate it can use. */
class FakePC extends EventTarget {
  static made = [];
  constructor(config) {
    super();
    Object.assign(this, { config, iceConnectionState: 'new', iceGatheringState: 'complete', localDescription: null });
    FakePC.made.push(this);
  }
  addTransceiver() {}
  async createOffer() { return { type: 'offer', sdp: 'v=0\r\n' }; }
  async setLocalDescription(d) { this.localDescription = d; }
  async setRemoteDescription(d) {
    const reachable = FakePC.reachable.some((t) => d.sdp.includes(` ${t} `)) || (this.config.iceTransportPolicy === 'relay' && FakePC.reachable.includes('relay'));
    setTimeout(() => {
      this.iceConnectionState = reachable ? 'connected' : 'failed';
      this.dispatchEvent(new Event('iceconnectionstatechange'));
    }, 5);
  }
  close() { this.closed = true; }
}

test('a network that blocks UDP: TCP works, the relay is tried with the Link credentials', async () => {
  FakePC.made = [];
  FakePC.reachable = ['tcp', 'relay'];
  const seen = [];
  const link = '<turns:t.example:443?transport=tcp>; rel="ice-server"; username="1:netcheck"; credential="c"; credential-type="password"';
  const results = await checkNetwork({
    post: async () => ({ status: 201, sdp: ANSWER, links: [link] }),
    onResult: (path, state) => seen.push([path, state]),
    RTCPeerConnectionImpl: FakePC,
    timeoutMs: 500,
  });
  assert.deepEqual(results, { udp: 'failed', tcp: 'ok', turn: 'ok' });
  assert.equal(verdict(results), 'tcp');
  assert.equal(seen.length, 3);
  const relay = FakePC.made.find((pc) => pc.config.iceTransportPolicy === 'relay');
  assert.deepEqual(relay.config.iceServers, [{ urls: ['turns:t.example:443?transport=tcp'], username: '1:netcheck', credential: 'c' }]);
  assert.ok(FakePC.made.every((pc) => pc.closed), 'every test connection is closed');
});

test('no TURN server configured: the relay path is "not set up", a refused offer fails', async () => {
  FakePC.made = [];
  FakePC.reachable = ['udp'];
  const results = await checkNetwork({
    post: async () => ({ status: 503, sdp: '', links: [] }),
    RTCPeerConnectionImpl: FakePC,
    timeoutMs: 200,
  });
  assert.deepEqual(results, { udp: 'failed', tcp: 'failed', turn: 'unavailable' });
});
