// Redundant audio (RFC 2198) with real browsers: the teacher's Chromium sends its microphone as
// RED (the client puts red/48000/2 first), a classroom whose browser negotiates RED receives RED,
// and a classroom whose browser does not (its subscribe offers are stripped of RED before its
// browser sees them, as an older browser would answer) receives plain Opus that the server
// unwrapped. Both decode audio.
//
// Runs the server binary (TANDEM_BIN, default target/debug/tandem) and headless Chromium.
// Screenshots land in tests/output/.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TandemServer, prepare, launchChromium, closeBrowser, byTestId, shot } from './harness.mjs';

const STEP_MS = 45_000;

let server;
let base;
let browser;
const pages = [];

before(async () => {
  prepare();
  server = new TandemServer({ dataPrefix: 'tandem-red-', logLimit: 200_000 });
  base = await server.start();
  browser = await launchChromium();
});

after(async () => {
  for (const page of pages) await page.close().catch(() => {});
  await closeBrowser(browser);
  await server?.dispose('red-server.log');
});

/** A page whose peer connections the test can read; with `noRed` its browser never sees RED offered. */
async function newPage(name, { noRed = false } = {}) {
  const context = await browser.newContext({
    viewport: { width: 1280, height: 800 },
    locale: 'en-US',
    permissions: ['camera', 'microphone'],
  });
  await context.addInitScript((stripRed) => {
    const Native = window.RTCPeerConnection;
    window.__testPcs = [];
    // Drop every RED payload type from an offer's audio sections (m= line, rtpmap, fmtp).
    const withoutRed = (sdp) => {
      const red = [...sdp.matchAll(/a=rtpmap:(\d+) red\/48000/gi)].map((m) => m[1]);
      return sdp.split('\r\n').filter((l) => !red.some((pt) => l.startsWith(`a=rtpmap:${pt} `) || l.startsWith(`a=fmtp:${pt} `) || l.startsWith(`a=rtcp-fb:${pt} `)))
        .map((l) => (l.startsWith('m=audio') ? l.split(' ').filter((f, i) => i < 3 || !red.includes(f)).join(' ') : l))
        .join('\r\n');
    };
    window.RTCPeerConnection = class extends Native {
      constructor(config = {}) {
        super(config);
        window.__testPcs.push(this);
      }
      setRemoteDescription(desc) {
        if (stripRed && desc && desc.type === 'offer') return super.setRemoteDescription({ type: 'offer', sdp: withoutRed(desc.sdp) });
        return super.setRemoteDescription(desc);
      }
    };
  }, noRed);
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  page.on('pageerror', (err) => console.log(`[${name}] page error: ${err.message}`));
  pages.push(page);
  return page;
}

async function passDeviceCheck(page) {
  await byTestId(page, 'device-check').waitFor();
  // The camera and microphone are open once the preview plays.
  await page.waitForFunction(() => {
    const v = document.querySelector('[data-testid="preview"]');
    return v && v.videoWidth > 0 && v.currentTime > 0;
  });
  await byTestId(page, 'device-confirm').click();
}

async function joinAsClassroom(name, inviteUrl, classroomName, options) {
  const page = await newPage(name, options);
  await page.goto(inviteUrl);
  await byTestId(page, 'classroom-name').fill(classroomName);
  await byTestId(page, 'name-continue').click();
  await passDeviceCheck(page);
  await byTestId(page, 'classroom-live').waitFor();
  await page.waitForFunction(() => window.tandem.state() && window.tandem.state().joined);
  return page;
}

/** Audio RTP stats of the page's connected legs: {ssrc, mime, packets, bytes, samples} per stream. */
function audioStreams(page, type) {
  return page.evaluate(async (wanted) => {
    const out = [];
    for (const pc of window.__testPcs) {
      if (pc.connectionState !== 'connected') continue;
      const stats = await pc.getStats();
      stats.forEach((s) => {
        if (s.type !== wanted || s.kind !== 'audio') return;
        const codec = s.codecId && stats.get(s.codecId);
        out.push({
          ssrc: s.ssrc,
          mime: codec ? codec.mimeType.toLowerCase() : null,
          packets: s.packetsSent ?? s.packetsReceived ?? 0,
          bytes: s.bytesSent ?? s.bytesReceived ?? 0,
          samples: s.totalSamplesReceived ?? 0,
        });
      });
    }
    return out;
  }, type);
}

/**
 * Poll until an audio stream of `type` grows (packets, and decoded samples when receiving);
 * returns its latest stats. Chromium names the primary codec (Opus) in its stats also for RED.
 */
async function waitForAudio(page, type, what) {
  const deadline = Date.now() + STEP_MS;
  let last = [];
  while (Date.now() < deadline) {
    const first = await audioStreams(page, type);
    await page.waitForTimeout(1000);
    last = await audioStreams(page, type);
    const grown = last.filter((s) => {
      const p = first.find((f) => f.ssrc === s.ssrc);
      return p && s.packets > p.packets && (type === 'outbound-rtp' || s.samples > p.samples);
    });
    if (grown.length) return grown.sort((a, b) => b.packets - a.packets)[0];
  }
  throw new Error(`${what}: no ${type} audio grew within ${STEP_MS} ms; last ${JSON.stringify(last)}`);
}

const perPacket = (s) => s.bytes / s.packets;

test('RED from the teacher reaches a RED classroom as RED and another as plain Opus', { timeout: 240_000 }, async (t) => {
  const teacher = await newPage('teacher');
  await teacher.goto(base + '/');
  await byTestId(teacher, 'class-title').fill('Grade 3 Music');
  await byTestId(teacher, 'teacher-name').fill('Ms Li');
  await byTestId(teacher, 'start-class').click();
  await teacher.waitForURL(/\/teach\/c_[^#]+#token=/);
  await passDeviceCheck(teacher);
  await byTestId(teacher, 'teacher-live').waitFor();
  const inviteUrl = await byTestId(teacher, 'invite-link').inputValue();

  const redRoom = await joinAsClassroom('classroom-red', inviteUrl, 'Grade 3, Hotan No. 3 School');
  const opusRoom = await joinAsClassroom('classroom-opus', inviteUrl, 'Grade 3, Kashgar No. 1 School', { noRed: true });

  const sent = await waitForAudio(teacher, 'outbound-rtp', 'teacher microphone');
  const asRed = await waitForAudio(redRoom, 'inbound-rtp', 'RED classroom');
  const asOpus = await waitForAudio(opusRoom, 'inbound-rtp', 'Opus-only classroom');
  await shot(redRoom, 'red-01-red-classroom');
  await shot(opusRoom, 'red-02-opus-classroom');
  const sizes = { teacher: perPacket(sent), red: perPacket(asRed), opus: perPacket(asOpus) };
  console.log(`audio octets per packet: ${JSON.stringify(sizes)}`);

  await t.test("the teacher's browser sends RED: each packet carries the previous frame too", () => {
    // A RED packet is its frame, the previous frame and 5 octets of block headers.
    assert.ok(sizes.teacher > 1.6 * sizes.opus, `octets per packet: ${JSON.stringify(sizes)}`);
  });

  await t.test('a classroom that negotiated RED receives it as RED and decodes it', () => {
    // The server rebuilds RED for its subscribers with two earlier frames (`DOWNLINK_REDUNDANCY`), so a RED
    // classroom's packets carry about three frames: more than the teacher's two, and far more than plain Opus.
    assert.ok(sizes.red > 1.2 * sizes.teacher, `octets per packet: ${JSON.stringify(sizes)}`);
    assert.ok(sizes.red > 2.4 * sizes.opus, `octets per packet: ${JSON.stringify(sizes)}`);
  });

  await t.test('a classroom without RED receives the plain frames, unwrapped by the server, and decodes them', () => {
    assert.ok(sizes.red > 1.6 * sizes.opus, `octets per packet: ${JSON.stringify(sizes)}`);
  });
});
