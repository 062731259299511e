// Run by firefox.test.mjs inside its network namespace (never on its own): the server with its
// media on the namespace's veth address, a Chromium teacher (playwright-core) and a Firefox
// classroom (puppeteer-core over WebDriver BiDi, fake camera and microphone). Exits 0 when Firefox
// decoded the teacher's video for 20 s with no freeze, 1 otherwise.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer from 'puppeteer-core';
import { TandemServer, prepare, launchChromium, closeBrowser, byTestId, shot, ownClassroomId } from './harness.mjs';

const FIREFOX = process.env.FIREFOX || '/usr/bin/firefox-esr';
const MEDIA_ADDR = process.env.TANDEM_TEST_MEDIA_ADDR;
const STEP_MS = 45_000;
const WATCH_MS = 20_000;
const SAMPLE_MS = 100;
/** No new frame for this long is a freeze a person sees. */
const FREEZE_MS = 1_000;

async function main() {
  assert.ok(MEDIA_ADDR, 'TANDEM_TEST_MEDIA_ADDR (the veth address) is set by firefox.test.mjs');
  prepare();
  const server = new TandemServer({ dataPrefix: 'tandem-firefox-', logLimit: 200_000 });
  let chromium;
  let firefox;
  const profile = mkdtempSync(join(tmpdir(), 'tandem-firefox-profile-'));
  try {
    // HTTP on the namespace's loopback (a secure context for getUserMedia); media on the veth.
    const base = (await server.start('127.0.0.1:0', `${MEDIA_ADDR}:0`)).replace('127.0.0.1', 'localhost');
    console.log(`server ${base}, media ${server.mediaAddr}`);

    chromium = await launchChromium();
    const context = await chromium.newContext({ viewport: { width: 1280, height: 800 }, locale: 'en-US', permissions: ['camera', 'microphone'] });
    const teacher = await context.newPage();
    teacher.setDefaultTimeout(STEP_MS);
    await teacher.goto(base + '/');
    await byTestId(teacher, 'class-title').fill('Grade 4 English');
    await byTestId(teacher, 'teacher-name').fill('Ms Li');
    await byTestId(teacher, 'start-class').click();
    await teacher.waitForURL(/\/teach\/c_[^#]+#token=/);
    await byTestId(teacher, 'device-check').waitFor();
    await teacher.waitForFunction(() => {
      const v = document.querySelector('[data-testid="preview"]');
      return v && v.videoWidth > 0 && v.currentTime > 0;
    });
    await byTestId(teacher, 'device-confirm').click();
    await teacher.waitForFunction(() => document.querySelector('[data-testid="connection-status"]').dataset.status === 'live');
    const inviteUrl = (await byTestId(teacher, 'invite-link').inputValue()).replace('127.0.0.1', 'localhost');
    const teacherId = await ownClassroomId(teacher);

    firefox = await puppeteer.launch({
      browser: 'firefox',
      executablePath: FIREFOX,
      headless: true,
      protocol: 'webDriverBiDi',
      userDataDir: profile,
      extraPrefsFirefox: {
        'media.navigator.streams.fake': true,
        'media.navigator.permission.disabled': true,
        'media.autoplay.default': 0,
      },
    });
    console.log(`firefox ${await firefox.version()}`);
    const room = await firefox.newPage();
    room.setDefaultTimeout(STEP_MS);
    room.on('pageerror', (err) => console.log(`[firefox] page error: ${err.message}`));
    await room.goto(inviteUrl);
    await room.waitForSelector('[data-testid="classroom-name"]');
    await room.type('[data-testid="classroom-name"]', 'Room F (Firefox)');
    await room.click('[data-testid="name-continue"]');
    await room.waitForSelector('[data-testid="device-check"]');
    await room.waitForFunction(() => {
      const v = document.querySelector('[data-testid="preview"]');
      return v && v.videoWidth > 0 && v.currentTime > 0;
    });
    await room.click('[data-testid="device-confirm"]');
    await room.waitForFunction(() => window.tandem.state() && window.tandem.state().joined);

    const frames = () => room.evaluate((id) => window.tandem.stats().then((stats) => {
      const v = stats.find((s) => s.classroom_id === id && s.kind === 'video' && s.source === 'camera');
      return v ? v.framesDecoded : 0;
    }), teacherId);
    // Media first flows…
    const firstDeadline = Date.now() + STEP_MS;
    while (await frames() < 10) {
      assert.ok(Date.now() < firstDeadline, 'Firefox never decoded the teacher\'s video');
      await new Promise((r) => setTimeout(r, 200));
    }
    // …then keeps flowing: sample framesDecoded and find the longest time without a new frame.
    const start = Date.now();
    let last = await frames();
    let lastNewAt = start;
    let longest = 0;
    let firstFrames = last;
    while (Date.now() - start < WATCH_MS) {
      await new Promise((r) => setTimeout(r, SAMPLE_MS));
      const now = await frames();
      const at = Date.now();
      if (now > last) {
        longest = Math.max(longest, at - lastNewAt);
        lastNewAt = at;
        last = now;
      }
    }
    longest = Math.max(longest, Date.now() - lastNewAt);
    const decoded = last - firstFrames;
    console.log(`Firefox decoded ${decoded} frames of the teacher's video in ${WATCH_MS} ms; longest gap ${longest} ms`);
    await room.screenshot({ path: join('tests/output', 'firefox-classroom.png') });
    await shot(teacher, 'firefox-teacher');
    assert.ok(decoded > (WATCH_MS / 1000) * 10, `Firefox decoded only ${decoded} frames in ${WATCH_MS} ms`);
    assert.ok(longest < FREEZE_MS, `the teacher's video froze for ${longest} ms in Firefox`);
  } finally {
    if (firefox) await Promise.race([firefox.close().catch(() => {}), new Promise((r) => setTimeout(r, 10_000))]);
    await closeBrowser(chromium);
    await server.dispose('firefox-server.log');
    rmSync(profile, { recursive: true, force: true });
  }
}

main().then(() => process.exit(0), (err) => {
  console.error(err && err.stack ? err.stack : err);
  process.exit(1);
});
