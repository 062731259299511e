// Who is speaking, in real browsers: the server reads the RFC 6464 audio level Chromium puts on
// every microphone packet (no audio is decoded). Classroom A plays a loud tone into its microphone,
// classroom B and the teacher are silent: the teacher's tile of A is marked as speaking and B's
// page says A is talking, while B is never named. When A falls silent, the mark goes away.
//
// Each page's microphone is a WebAudio source (a tone or silence) instead of Chromium's fake beep,
// so the loudness of every classroom is known. Runs the server binary (TANDEM_BIN, default
// target/debug/tandem) and headless Chromium. Screenshots land in tests/output/.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TandemServer, prepare, launchChromium, closeBrowser, byTestId, shot, ownClassroomId } from './harness.mjs';

const STEP_MS = 45_000;

let server;
let base;
let browser;
const pages = [];

before(async () => {
  prepare();
  server = new TandemServer({ dataPrefix: 'tandem-speaking-', logLimit: 200_000 });
  base = await server.start();
  browser = await launchChromium();
});

after(async () => {
  for (const page of pages) await page.close().catch(() => {});
  await closeBrowser(browser);
  await server?.dispose('speaking-server.log');
});

/** A page whose microphone is a 440 Hz tone at `gain` (0: silence); the camera stays Chromium's. */
async function newPage(name, gain) {
  const context = await browser.newContext({
    viewport: { width: 1280, height: 800 },
    locale: 'en-US',
    permissions: ['camera', 'microphone'],
  });
  await context.addInitScript((g) => {
    const native = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
    window.__tone = null;
    navigator.mediaDevices.getUserMedia = async (constraints) => {
      const stream = await native(constraints);
      if (!constraints || !constraints.audio) return stream;
      if (!window.__tone) {
        const ctx = new AudioContext();
        const osc = ctx.createOscillator();
        osc.frequency.value = 440;
        const gain = ctx.createGain();
        gain.gain.value = g;
        const dest = ctx.createMediaStreamDestination();
        osc.connect(gain).connect(dest);
        osc.start();
        window.__tone = { ctx, gain, dest };
      }
      for (const t of stream.getAudioTracks()) {
        stream.removeTrack(t);
        t.stop();
      }
      stream.addTrack(window.__tone.dest.stream.getAudioTracks()[0].clone());
      return stream;
    };
  }, gain);
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  page.on('pageerror', (err) => console.log(`[${name}] page error: ${err.message}`));
  pages.push(page);
  return page;
}

async function passDeviceCheck(page) {
  await byTestId(page, 'device-check').waitFor();
  await byTestId(page, 'device-confirm').click();
}

async function joinAsClassroom(name, gain, inviteUrl, classroomName) {
  const page = await newPage(name, gain);
  await page.goto(inviteUrl);
  await byTestId(page, 'classroom-name').fill(classroomName);
  await byTestId(page, 'name-continue').click();
  await passDeviceCheck(page);
  await byTestId(page, 'classroom-live').waitFor();
  await page.waitForFunction(() => window.tandem.state() && window.tandem.state().joined);
  return page;
}

test('the loud classroom is shown as speaking, a silent one never', { timeout: 240_000 }, async (t) => {
  const teacher = await newPage('teacher', 0);
  await teacher.goto(base + '/');
  await byTestId(teacher, 'class-title').fill('Grade 2 Music');
  await byTestId(teacher, 'teacher-name').fill('Ms Li');
  await byTestId(teacher, 'start-class').click();
  await teacher.waitForURL(/\/teach\/c_[^#]+#token=/);
  await passDeviceCheck(teacher);
  await byTestId(teacher, 'teacher-live').waitFor();
  const inviteUrl = await byTestId(teacher, 'invite-link').inputValue();

  const roomB = await joinAsClassroom('classroom-b', 0, inviteUrl, 'Grade 2, Kashgar No. 1 School');
  const roomA = await joinAsClassroom('classroom-a', 0.5, inviteUrl, 'Grade 2, Hotan No. 3 School');
  const a = await ownClassroomId(roomA);
  const b = await ownClassroomId(roomB);

  await t.test('the teacher sees A marked as speaking', async () => {
    await teacher.waitForFunction((id) => {
      const tile = document.querySelector(`[data-testid="classroom-tile"][data-classroom-id="${id}"]`);
      return tile && tile.classList.contains('speaking')
        && !tile.querySelector('[data-testid="speaking-badge"]').hidden;
    }, a);
    const bTile = teacher.locator(`[data-testid="classroom-tile"][data-classroom-id="${b}"]`);
    assert.equal(await bTile.evaluate((el) => el.classList.contains('speaking')), false);
    await shot(teacher, 'speaking-01-teacher-sees-a');
  });

  await t.test('classroom B is told that A is talking', async () => {
    await roomB.waitForFunction((id) => {
      const p = document.querySelector('[data-testid="speaking-now"]');
      return p && !p.hidden && p.dataset.classroomId === id && /Hotan/.test(p.textContent);
    }, a);
    await shot(roomB, 'speaking-02-b-hears-a');
  });

  await t.test('B stays silent and is never the speaker; A silenced stops speaking', async () => {
    // Record what the pages hold for a while: B must never appear.
    const watch = (page) => page.evaluate(() => new Promise((resolve) => {
      const seen = new Set();
      const timer = setInterval(() => { const s = window.tandem.state(); if (s) seen.add(s.speaking); }, 50);
      setTimeout(() => { clearInterval(timer); resolve([...seen]); }, 3000);
    }));
    const [onTeacher, onB] = await Promise.all([watch(teacher), watch(roomB)]);
    for (const seen of [onTeacher, onB]) assert.ok(!seen.includes(b), `B was named: ${JSON.stringify(seen)}`);
    await roomA.evaluate(() => { window.__tone.gain.gain.value = 0; });
    await teacher.waitForFunction((id) => {
      const tile = document.querySelector(`[data-testid="classroom-tile"][data-classroom-id="${id}"]`);
      return tile && !tile.classList.contains('speaking');
    }, a);
    await roomB.waitForFunction(() => document.querySelector('[data-testid="speaking-now"]').hidden);
  });
});
