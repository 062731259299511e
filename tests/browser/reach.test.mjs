// Reaching a school far away, in real browsers: a lesson over HTTPS with a certificate from a CA
// this test creates (and renewed without a restart), a classroom whose network allows no UDP to
// the server (it offers only ICE-TCP candidates), and a classroom that may use only a TURN relay
// (Debian's coturn, started here with `use-auth-secret`).
//
// Needs: openssl and certutil (libnss3-tools) to make the CA and have Chromium trust it through
// an NSS database in a temporary HOME, and turnserver (coturn). scripts/test.sh installs them.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import tls from 'node:tls';
import { TandemServer, prepare, launchChromium, closeBrowser, byTestId, shot, ownClassroomId } from './harness.mjs';

const STEP_MS = 45_000;
const work = mkdtempSync(join(tmpdir(), 'tandem-reach-'));
const cleanups = [];

before(() => prepare());
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  rmSync(work, { recursive: true, force: true });
});

/** A page whose peer connections the test can inspect; `forceRelay` sets iceTransportPolicy. */
async function newPage(browser, name, { forceRelay = false } = {}) {
  const context = await browser.newContext({
    viewport: { width: 1280, height: 800 },
    locale: 'en-US',
    permissions: ['camera', 'microphone'],
  });
  await context.addInitScript((relay) => {
    const Native = window.RTCPeerConnection;
    window.__testPcs = [];
    window.__testSockets = [];
    window.RTCPeerConnection = class extends Native {
      constructor(config = {}) {
        super(relay ? { ...config, iceTransportPolicy: 'relay' } : config);
        window.__testPcs.push(this);
      }
    };
    const NativeWs = window.WebSocket;
    window.WebSocket = class extends NativeWs {
      constructor(...args) {
        super(...args);
        window.__testSockets.push(this);
      }
    };
  }, forceRelay);
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  page.on('pageerror', (err) => console.log(`[${name}] page error: ${err.message}`));
  cleanups.push(() => context.close().catch(() => {}));
  return page;
}

async function passDeviceCheck(page) {
  await byTestId(page, 'device-check').waitFor();
  await page.waitForFunction(() => {
    const v = document.querySelector('[data-testid="preview"]');
    return v && v.videoWidth > 0 && v.currentTime > 0;
  });
  await byTestId(page, 'device-confirm').click();
}

async function createClass(base) {
  const res = await fetch(base + '/api/classes', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ title: 'Grade 5 Science', teacher_name: 'Mr Wang' }),
  });
  assert.equal(res.status, 201);
  return res.json();
}

/**
 * The device check's network box must come to `verdict` ('udp', 'tcp', 'turn', 'none') with
 * these per-path states ({udp: 'ok', …}).
 */
async function expectNetwork(page, verdict, states) {
  const box = byTestId(page, 'network-verdict');
  await page.waitForFunction(() => document.querySelector('[data-testid="network-verdict"]')?.dataset.verdict);
  assert.equal(await box.getAttribute('data-verdict'), verdict, `network verdict: ${await box.textContent()}`);
  for (const [path, state] of Object.entries(states)) {
    assert.equal(await byTestId(page, `network-${path}`).getAttribute('data-state'), state, `${path} path`);
  }
}

/** The teacher goes live from the teacher link; a classroom joins by the invite link. */
async function teacherAndClassroom(browser, created, { forceRelay = false, prefix, network }) {
  const teacher = await newPage(browser, `${prefix}-teacher`, { forceRelay });
  await teacher.goto(created.teacher_url);
  await passDeviceCheck(teacher);
  await byTestId(teacher, 'teacher-live').waitFor();
  await teacher.waitForFunction(() => document.querySelector('[data-testid="connection-status"]').dataset.status === 'live');
  const teacherId = await ownClassroomId(teacher);

  const room = await newPage(browser, `${prefix}-classroom`, { forceRelay });
  await room.goto(created.invite_url);
  await byTestId(room, 'classroom-name').fill('Grade 5, Aksu No. 2 School');
  await byTestId(room, 'name-continue').click();
  if (network) {
    await expectNetwork(room, ...network);
    await shot(room, `reach-${prefix}-network-check`);
  }
  await passDeviceCheck(room);
  await byTestId(room, 'classroom-live').waitFor();
  await room.waitForFunction(() => window.tandem.state() && window.tandem.state().joined);
  const roomId = await ownClassroomId(room);
  return { teacher, room, teacherId, roomId };
}

/** framesDecoded (video) or bytesReceived (audio) of the matching track grows within the deadline. */
async function waitForFlow(page, match, what) {
  const deadline = Date.now() + STEP_MS;
  const metric = match.kind === 'video' ? 'framesDecoded' : 'bytesReceived';
  const pick = async () => (await page.evaluate(() => window.tandem.stats()))
    .filter((s) => Object.entries(match).every(([k, v]) => s[k] === v));
  let last = [];
  while (Date.now() < deadline) {
    const first = await pick();
    await page.waitForTimeout(1000);
    last = await pick();
    if (last.some((s) => { const p = first.find((f) => f.track_id === s.track_id); return p && s[metric] > p[metric]; })) return;
  }
  throw new Error(`${what}: ${metric} did not grow within ${STEP_MS} ms; last ${JSON.stringify(last)}`);
}

/**
 * The path each connected peer connection of the page uses: the selected candidate pair's local
 * and remote candidate types and protocols (RTCIceCandidateStats).
 */
async function selectedPaths(page) {
  return page.evaluate(async () => {
    const paths = [];
    for (const pc of window.__testPcs) {
      if (pc.connectionState !== 'connected') continue;
      const stats = await pc.getStats();
      let pairId = null;
      stats.forEach((s) => { if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId; });
      const pair = pairId && stats.get(pairId);
      if (!pair) continue;
      const local = stats.get(pair.localCandidateId);
      const remote = stats.get(pair.remoteCandidateId);
      paths.push({
        local: local.candidateType, localProtocol: local.protocol, localPort: local.port, url: local.url,
        remote: remote.candidateType, remoteProtocol: remote.protocol, remotePort: remote.port,
      });
    }
    return paths;
  });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => { const { port } = srv.address(); srv.close(() => resolve(port)); });
    srv.on('error', reject);
  });
}

// --- a CA of our own ----------------------------------------------------------------------------

function openssl(...args) {
  execFileSync('openssl', args, { cwd: work, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A CA, and a server certificate for localhost and 127.0.0.1 signed by it (`name` tells them apart). */
function issueServerCert(name) {
  writeFileSync(join(work, 'san.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  openssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=tandem test ${name}`);
  openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
    '-days', '30', '-extfile', 'san.ext', '-out', `${name}.crt`);
}

function makeCa() {
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '30', '-subj', '/CN=Tandem Test School CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  // Chromium on Linux trusts the CAs of the NSS database in $HOME/.pki/nssdb.
  const home = join(work, 'home');
  const db = join(home, '.pki', 'nssdb');
  mkdirSync(db, { recursive: true });
  execFileSync('certutil', ['-N', '-d', `sql:${db}`, '--empty-password']);
  execFileSync('certutil', ['-A', '-d', `sql:${db}`, '-n', 'Tandem Test School CA', '-t', 'C,,', '-i', join(work, 'ca.crt')]);
  return home;
}

function fingerprintOf(host, port, ca) {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host, port, ca, servername: 'localhost' }, () => {
      const fp = socket.getPeerCertificate().fingerprint256;
      socket.end();
      resolve(fp);
    });
    socket.on('error', reject);
  });
}

test('a lesson over HTTPS with a certificate from the school CA, renewed without a restart', { timeout: 240_000 }, async () => {
  const home = makeCa();
  issueServerCert('server');
  const ca = readFileSync(join(work, 'ca.crt'));
  const redirectPort = await freePort();
  const server = new TandemServer({
    dataPrefix: 'tandem-https-', logLimit: 100_000,
    args: ['--tls-cert', join(work, 'server.crt'), '--tls-key', join(work, 'server.key'),
      '--http-redirect-listen', `127.0.0.1:${redirectPort}`],
  });
  cleanups.push(() => server.dispose('server-https.log'));
  const base = (await server.start()).replace('127.0.0.1', 'localhost');
  assert.match(base, /^https:\/\/localhost:\d+$/);
  // No --ignore-certificate-errors: the browser must trust the CA to open the page at all.
  const browser = await launchChromium([], { HOME: home });
  cleanups.push(() => closeBrowser(browser));

  // The plain-HTTP port sends a visitor to HTTPS.
  const redirected = await fetch(`http://localhost:${redirectPort}/join/c_x?a=1`, { redirect: 'manual' });
  assert.equal(redirected.status, 308);
  assert.equal(redirected.headers.get('location'), `${base}/join/c_x?a=1`);

  // The teacher starts the class from the home page, as in the README.
  const home_ = await newPage(browser, 'https-home');
  await home_.goto(base + '/');
  await byTestId(home_, 'class-title').fill('Grade 5 Science');
  await byTestId(home_, 'teacher-name').fill('Mr Wang');
  await byTestId(home_, 'start-class').click();
  await home_.waitForURL(/\/teach\/c_[^#]+#token=/);
  assert.ok(home_.url().startsWith(base + '/teach/'), `the teacher link is https: ${home_.url()}`);
  assert.equal(await home_.evaluate(() => window.isSecureContext), true);
  await passDeviceCheck(home_);
  await byTestId(home_, 'teacher-live').waitFor();
  const invite = await byTestId(home_, 'invite-link').inputValue();
  assert.ok(invite.startsWith(`${base}/join/`), `the invite link is https: ${invite}`);
  const teacherId = await ownClassroomId(home_);

  const room = await newPage(browser, 'https-classroom');
  await room.goto(invite);
  await byTestId(room, 'classroom-name').fill('Grade 5, Hotan No. 1 School');
  await byTestId(room, 'name-continue').click();
  await expectNetwork(room, 'udp', { udp: 'ok', tcp: 'ok', turn: 'unavailable' });
  await passDeviceCheck(room);
  await byTestId(room, 'classroom-live').waitFor();
  const roomId = await ownClassroomId(room);
  assert.match(await room.evaluate(() => window.__testSockets[0].url), /^wss:\/\/localhost:\d+\/ws$/);
  await waitForFlow(room, { classroom_id: teacherId, kind: 'video' }, 'the classroom sees the teacher');
  await waitForFlow(home_, { classroom_id: roomId, kind: 'audio' }, 'the teacher hears the classroom');
  await shot(room, 'reach-https-classroom');

  // The certificate is renewed (same paths, new key); SIGHUP makes new connections use it.
  const port = Number(new URL(base).port);
  const before_ = await fingerprintOf('127.0.0.1', port, ca);
  issueServerCert('server');
  server.proc.kill('SIGHUP');
  const deadline = Date.now() + 10_000;
  let after_ = before_;
  while (after_ === before_ && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    after_ = await fingerprintOf('127.0.0.1', port, ca);
  }
  assert.notEqual(after_, before_, 'a new certificate is served after SIGHUP');
  assert.equal(server.proc.exitCode, null, 'the server keeps running');
  // The lesson goes on over the connections already open, and a reload of the page works.
  await waitForFlow(room, { classroom_id: teacherId, kind: 'video' }, 'the lesson goes on after the renewal');
  await room.reload();
  await byTestId(room, 'classroom-name').or(byTestId(room, 'device-check')).or(byTestId(room, 'classroom-live')).first().waitFor();
});

test('a classroom whose network blocks UDP gets the teacher over ICE-TCP', { timeout: 180_000 }, async () => {
  const server = new TandemServer({ dataPrefix: 'tandem-tcp-', logLimit: 100_000, args: ['--media-udp', 'off'] });
  cleanups.push(() => server.dispose('server-ice-tcp.log'));
  const base = await server.start();
  const browser = await launchChromium();
  cleanups.push(() => closeBrowser(browser));
  const created = await createClass(base);
  const { teacher, room, teacherId, roomId } = await teacherAndClassroom(browser, created, {
    prefix: 'tcp',
    // The device check tells the classroom its network blocks UDP and TCP still works.
    network: ['tcp', { udp: 'failed', tcp: 'ok', turn: 'unavailable' }],
  });
  await waitForFlow(room, { classroom_id: teacherId, kind: 'video' }, 'the classroom sees the teacher over TCP');
  await waitForFlow(teacher, { classroom_id: roomId, kind: 'audio' }, 'the teacher hears the classroom over TCP');
  const mediaPort = Number(server.media.split(':').pop());
  for (const page of [room, teacher]) {
    const paths = await selectedPaths(page);
    assert.ok(paths.length >= 2, `both legs connected: ${JSON.stringify(paths)}`);
    for (const p of paths) {
      assert.equal(p.remoteProtocol, 'tcp', `media goes over TCP: ${JSON.stringify(p)}`);
      assert.equal(p.remotePort, mediaPort, 'to the media port number');
    }
  }
  await shot(room, 'reach-tcp-classroom');
});

test('a classroom allowed only a TURN relay gets the teacher through coturn', { timeout: 180_000 }, async () => {
  const secret = 'test-secret-' + Math.random().toString(36).slice(2);
  const turnPort = await freePort();
  const turnDir = join(work, 'coturn');
  mkdirSync(turnDir, { recursive: true });
  writeFileSync(join(turnDir, 'turnserver.conf'), [
    'listening-ip=127.0.0.1', 'relay-ip=127.0.0.1', `listening-port=${turnPort}`,
    'min-port=49160', 'max-port=49460',
    'use-auth-secret', `static-auth-secret=${secret}`, 'realm=tandem.test',
    'no-tls', 'no-dtls', 'no-cli', 'no-multicast-peers', 'allow-loopback-peers', 'fingerprint',
    `userdb=${join(turnDir, 'turndb')}`, `pidfile=${join(turnDir, 'turnserver.pid')}`,
    'log-file=stdout', 'simple-log',
  ].join('\n') + '\n');
  let turnLog = '';
  const turn = spawn('turnserver', ['-c', join(turnDir, 'turnserver.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
  turn.stdout.on('data', (d) => { turnLog = (turnLog + d).slice(-50_000); });
  turn.stderr.on('data', (d) => { turnLog = (turnLog + d).slice(-50_000); });
  cleanups.push(async () => {
    turn.kill('SIGTERM');
    writeFileSync(join('tests/output', 'coturn.log'), turnLog);
  });
  // coturn is ready when it listens.
  const ready = Date.now() + 10_000;
  for (;;) {
    const up = await new Promise((r) => {
      const s = createServer();
      s.once('error', () => r(true));
      s.listen(turnPort, '127.0.0.1', () => s.close(() => r(false)));
    });
    if (up) break;
    assert.ok(Date.now() < ready, `coturn did not start:\n${turnLog}`);
    await new Promise((r) => setTimeout(r, 100));
  }

  const server = new TandemServer({
    dataPrefix: 'tandem-turn-', logLimit: 100_000,
    args: ['--turn-url', `turn:127.0.0.1:${turnPort}?transport=udp`, '--turn-secret', secret],
  });
  cleanups.push(() => server.dispose('server-turn.log'));
  const base = await server.start();
  const browser = await launchChromium();
  cleanups.push(() => closeBrowser(browser));
  const created = await createClass(base);
  const { teacher, room, teacherId, roomId } = await teacherAndClassroom(browser, created, {
    forceRelay: true,
    prefix: 'turn',
    // This browser may use only relays: the device check says only TURN gets through.
    network: ['turn', { udp: 'failed', tcp: 'failed', turn: 'ok' }],
  });
  const welcomeServers = await room.evaluate(() => window.__testPcs.at(-1).getConfiguration().iceServers);
  assert.equal(welcomeServers.length, 1);
  assert.match(welcomeServers[0].username, /^\d+:r_/, 'a time-limited username for this classroom');
  assert.notEqual(welcomeServers[0].credential, secret, 'never the secret itself');
  await waitForFlow(room, { classroom_id: teacherId, kind: 'video' }, 'the classroom sees the teacher through TURN');
  await waitForFlow(teacher, { classroom_id: roomId, kind: 'audio' }, 'the teacher hears the classroom through TURN');
  for (const page of [room, teacher]) {
    const paths = await selectedPaths(page);
    assert.ok(paths.length >= 2, `both legs connected: ${JSON.stringify(paths)}`);
    for (const p of paths) {
      assert.equal(p.local, 'relay', `media goes through the relay: ${JSON.stringify(p)}`);
      // A relayed address from our coturn's port range (min-port/max-port above).
      assert.ok(p.localPort >= 49160 && p.localPort <= 49460, `allocated by our coturn: ${JSON.stringify(p)}`);
    }
  }
  await shot(room, 'reach-turn-classroom');
});
