// A classroom's network drops out for 10 s in the middle of a lesson and comes back: its page
// restarts ICE on its own (no reload) and the teacher's video is back within 2 s of the network,
// while nobody else renegotiates. When its media then dies for good, the teacher's tile shows
// the connection as lost. The classroom reaches the server's media port through a UDP
// relay the test cuts (tests/browser/udp-proxy.mjs); its signaling WebSocket stays up.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TandemServer, prepare, launchChromium, closeBrowser, byTestId, shot, ownClassroomId } from './harness.mjs';
import { UdpCutProxy } from './udp-proxy.mjs';

const STEP_MS = 45_000;
const OUTAGE_MS = 10_000;
const LONG_OUTAGE_MS = 16_000;
/** The client's wait before restarting a disconnected leg (web-client/js/rtc.js). */
const RESTART_AFTER_DISCONNECTED_MS = 3_000;
const RECOVERY_BUDGET_MS = 2_000;

let server;
let base;
let browser;
let proxy;
const pages = [];

before(async () => {
  prepare();
  server = new TandemServer({ dataPrefix: 'tandem-recovery-', logLimit: 200_000 });
  base = await server.start();
  proxy = await new UdpCutProxy(server.mediaAddr).start();
  browser = await launchChromium();
});

after(async () => {
  for (const page of pages) await page.close().catch(() => {});
  await closeBrowser(browser);
  proxy?.close();
  await server?.dispose('recovery-server.log');
});

/**
 * A page whose WebSocket traffic is counted by message type (`__testIn`, `__testOut`). With
 * `relayPort`, every server candidate it is given points at the test's UDP relay instead.
 */
async function newPage(name, relay) {
  const context = await browser.newContext({
    viewport: { width: 1280, height: 800 },
    locale: 'en-US',
    permissions: ['camera', 'microphone'],
  });
  await context.addInitScript((relayTo) => {
    window.__testIn = [];
    window.__testOut = [];
    const Native = window.WebSocket;
    window.WebSocket = class extends Native {
      constructor(...args) {
        super(...args);
        this.addEventListener('message', (e) => {
          try { window.__testIn.push(JSON.parse(e.data).type); } catch { /* not ours */ }
        });
      }
      send(text) {
        try { window.__testOut.push(JSON.parse(text).type); } catch { /* not ours */ }
        return super.send(text);
      }
    };
    // Every peer connection's state changes, with the time, for the log of what happened.
    window.__testLegs = [];
    window.__testPcs = [];
    const NativePC = window.RTCPeerConnection;
    window.RTCPeerConnection = class extends NativePC {
      constructor(...args) {
        super(...args);
        window.__testPcs.push(this);
        const n = window.__testLegs.filter((e) => e.state === 'new').length;
        window.__testLegs.push({ pc: n, state: 'new', at: Date.now() });
        this.addEventListener('connectionstatechange', () => window.__testLegs.push({ pc: n, state: this.connectionState, at: Date.now() }));
      }
    };
    if (relayTo) {
      const [from, to] = relayTo;
      const native = RTCPeerConnection.prototype.setRemoteDescription;
      RTCPeerConnection.prototype.setRemoteDescription = function (desc) {
        if (desc && desc.sdp) desc = { type: desc.type, sdp: desc.sdp.split(` ${from} typ host`).join(` ${to} typ host`) };
        return native.call(this, desc);
      };
    }
  }, relay || null);
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  page.on('pageerror', (err) => console.log(`[${name}] page error: ${err.message}`));
  pages.push(page);
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

/** framesDecoded of the first received video track from `classroomId` (0 if none yet). */
async function framesFrom(page, classroomId) {
  const stats = await page.evaluate(() => window.tandem.stats());
  const video = stats.find((s) => s.classroom_id === classroomId && s.kind === 'video');
  return video ? video.framesDecoded : 0;
}

/** Poll until the video from `classroomId` decodes `more` frames beyond `from`; returns when. */
async function waitForFrames(page, classroomId, from, more, what, timeoutMs = STEP_MS) {
  const deadline = Date.now() + timeoutMs;
  let now = from;
  while (Date.now() < deadline) {
    now = await framesFrom(page, classroomId);
    if (now >= from + more) return Date.now();
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what}: framesDecoded ${from} → ${now} within ${timeoutMs} ms`);
}

const count = (page, dir, type) => page.evaluate(([d, t]) => window[d].filter((x) => x === t).length, [dir, type]);

test('a classroom whose network drops out for 10 s is back within 2 s, with no reload', { timeout: 300_000 }, async () => {
  const teacher = await newPage('teacher');
  await teacher.goto(base + '/');
  await byTestId(teacher, 'class-title').fill('Grade 3 Science');
  await byTestId(teacher, 'teacher-name').fill('Ms Li');
  await byTestId(teacher, 'start-class').click();
  await teacher.waitForURL(/\/teach\/c_[^#]+#token=/);
  await passDeviceCheck(teacher);
  await teacher.waitForFunction(() => document.querySelector('[data-testid="connection-status"]').dataset.status === 'live');
  const inviteUrl = await byTestId(teacher, 'invite-link').inputValue();
  const teacherId = await ownClassroomId(teacher);

  const mediaPort = server.mediaAddr.split(':').pop();
  const join = async (name, classroomName, relay) => {
    const page = await newPage(name, relay);
    await page.goto(inviteUrl);
    await byTestId(page, 'classroom-name').fill(classroomName);
    await byTestId(page, 'name-continue').click();
    await passDeviceCheck(page);
    await page.waitForFunction(() => window.tandem.state() && window.tandem.state().joined);
    return page;
  };
  const roomA = await join('room-a', 'Room A (behind the relay)', [`127.0.0.1 ${mediaPort}`, `127.0.0.1 ${proxy.port}`]);
  const roomB = await join('room-b', 'Room B', null);
  const aId = await ownClassroomId(roomA);

  // Everyone has media before the outage; A's goes through the relay.
  await waitForFrames(roomA, teacherId, 0, 30, 'A ← teacher video');
  await waitForFrames(roomB, teacherId, 0, 30, 'B ← teacher video');
  await waitForFrames(teacher, aId, 0, 30, 'teacher ← A video');
  assert.ok(proxy.relayed > 0, 'A\'s media goes through the relay');
  const origin = await roomA.evaluate(() => performance.timeOrigin);
  const before = {};
  for (const [name, page] of [['teacher', teacher], ['B', roomB]]) {
    before[name] = { offers: await count(page, '__testIn', 'subscribe_offer'), published: await count(page, '__testOut', 'publish_offer') };
  }

  /**
   * Cut A's media path for `ms` (its WebSocket is untouched), restore it, and measure how long
   * until A decodes the teacher's video again. Returns the ICE restarts A asked for meanwhile and
   * whether one of its legs sat `disconnected` long enough that the client had to restart it.
   */
  const outage = async (ms, label, budgetMs) => {
    const sent = { subscribe: await count(roomA, '__testOut', 'ice_restart'), publish: await count(roomA, '__testOut', 'publish_offer') };
    const cutAt = Date.now();
    proxy.cut = true;
    await new Promise((r) => setTimeout(r, ms));
    const restarts = {
      subscribe: await count(roomA, '__testOut', 'ice_restart') - sent.subscribe,
      publish: await count(roomA, '__testOut', 'publish_offer') - sent.publish,
    };
    await shot(roomA, `recovery-a-during-${label}`);
    const frozenAt = await framesFrom(roomA, teacherId);
    proxy.cut = false;
    const restoredAt = Date.now();
    // Back: the first new frame decoded.
    const backAt = await waitForFrames(roomA, teacherId, frozenAt, 1, `A ← teacher video after the ${label}`, 20_000);
    const recoveryMs = backAt - restoredAt;
    const timeline = (await roomA.evaluate(() => window.__testLegs)).filter((e) => e.at >= cutAt && e.at <= backAt);
    const firstDisconnect = timeline.find((e) => (e.state === "disconnected" || e.state === "failed") && e.at <= restoredAt);
    const due = !!firstDisconnect && firstDisconnect.at + RESTART_AFTER_DISCONNECTED_MS + 500 < restoredAt;
    console.log(`${label} (${ms} ms): A's peer connections ${timeline.map((e) => `pc${e.pc} ${e.state} @${e.at - cutAt}`).join(', ') || 'unchanged'}; `
      + `ICE restarts asked: subscribe ${restarts.subscribe}, publish ${restarts.publish}; `
      + `teacher video back at A ${recoveryMs} ms after the network`);
    assert.ok(recoveryMs <= budgetMs, `${label}: video back ${recoveryMs} ms after the network, over ${budgetMs} ms`);
    // Both directions are back before anything else happens.
    await waitForFrames(teacher, aId, await framesFrom(teacher, aId), 5, `teacher ← A video after the ${label}`, 20_000);
    return { restarts, due };
  };

  // The outage of the issue: 10 s. Chromium itself notices it only after 5–8 s, so whether the
  // page restarted ICE before the network came back depends on when; if a leg sat disconnected
  // for the client's few seconds, it must have.
  const first = await outage(OUTAGE_MS, 'outage', RECOVERY_BUDGET_MS);
  if (first.due) assert.ok(first.restarts.subscribe + first.restarts.publish >= 1, 'A restarted ICE during the outage');
  // A longer one, in which the page certainly restarts ICE on both legs. The restarted ICE session
  // must be checked and nominated again once the path is back (Chromium paces its checks of a
  // session that has not connected yet), then a keyframe must come: 1.5–2.9 s measured here on a
  // busy machine, so this phase allows 4 s.
  const second = await outage(LONG_OUTAGE_MS, 'long outage', RECOVERY_BUDGET_MS + 2_000);
  assert.ok(second.due, 'a leg sat disconnected during the long outage');
  assert.ok(second.restarts.subscribe >= 1 && second.restarts.publish >= 1,
    `A restarted ICE on both legs during the long outage (${JSON.stringify(second.restarts)})`);
  assert.equal(await roomA.evaluate(() => performance.timeOrigin), origin, 'A\'s page was not reloaded');
  await shot(roomA, 'recovery-a-after-outages');

  // Nobody else renegotiated.
  for (const [name, page] of [['teacher', teacher], ['B', roomB]]) {
    const now = { offers: await count(page, '__testIn', 'subscribe_offer'), published: await count(page, '__testOut', 'publish_offer') };
    assert.deepEqual(now, before[name], `${name} did not renegotiate`);
  }

  // Then A's media dies for good (its peer connections close): the teacher's tile says so.
  await roomA.evaluate(() => window.__testPcs.forEach((pc) => pc.close()));
  const conn = teacher.locator(`[data-testid="classroom-tile"][data-classroom-id="${aId}"] [data-testid="classroom-connection"]`);
  await teacher.waitForFunction((el) => el.dataset.state === 'lost', await conn.elementHandle(), { timeout: 40_000 });
  assert.equal(await conn.textContent(), 'Connection lost');
  await shot(teacher, 'recovery-teacher-sees-a-lost');
});
