// A lesson in real browsers: a teacher starts a class and goes live, two remote classrooms join by
// the invite link, everyone decodes what they should, the teacher puts classroom A on stage and
// classroom B starts receiving A, the language switch turns the page Chinese, the class ends.
//
// Runs the server binary (TANDEM_BIN, default target/debug/tandem) and headless Chromium with fake
// camera and microphone. Screenshots land in tests/output/.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { CHROMIUM, TandemServer, prepare, launchChromium, closeBrowser, byTestId, shot, ownClassroomId } from './harness.mjs';

const STEP_MS = 45_000;

let server;
let base;
let browser;
const pages = {};

before(async () => {
  prepare();
  server = new TandemServer({ dataPrefix: 'tandem-browser-', logLimit: 200_000 });
  base = await server.start();
  browser = await launchChromium(['--auto-select-desktop-capture-source=Entire screen']);
});

after(async () => {
  for (const page of Object.values(pages)) await page.close().catch(() => {});
  await closeBrowser(browser);
  await server?.dispose('server.log');
});

async function newPage(name) {
  const context = await browser.newContext({
    viewport: { width: 1366, height: 820 },
    locale: 'en-US',
    permissions: ['camera', 'microphone', 'clipboard-read', 'clipboard-write'],
  });
  // Keep a handle on the page's WebSockets, so a test can cut one like a failing network would.
  await context.addInitScript(() => {
    const Native = window.WebSocket;
    window.__testSockets = [];
    window.WebSocket = class extends Native {
      constructor(...args) {
        super(...args);
        window.__testSockets.push(this);
      }
    };
  });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') console.log(`[${name}] ${m.type()}: ${m.text()}`); });
  page.on('pageerror', (err) => console.log(`[${name}] page error: ${err.message}`));
  pages[name] = page;
  return page;
}


/**
 * Wait until the page decodes media matching `match` (e.g. {classroom_id, kind: 'video'}):
 * framesDecoded (video) or bytesReceived (audio) must grow between two readings 1.5 s apart.
 */
async function waitForFlow(page, match, what, timeoutMs = STEP_MS) {
  const deadline = Date.now() + timeoutMs;
  const pick = async () => {
    const stats = await page.evaluate(() => window.tandem.stats());
    return stats.filter((s) => Object.entries(match).every(([k, v]) => s[k] === v));
  };
  const metric = match.kind === 'video' ? 'framesDecoded' : 'bytesReceived';
  let last = [];
  while (Date.now() < deadline) {
    const first = await pick();
    await page.waitForTimeout(1500);
    const second = await pick();
    last = second;
    const grew = second.some((s) => {
      const prev = first.find((f) => f.track_id === s.track_id);
      return prev && s[metric] > prev[metric] && s[metric] > 0;
    });
    if (grew) return second;
  }
  const state = await page.evaluate(() => window.tandem.state());
  throw new Error(`${what}: ${metric} did not grow within ${timeoutMs} ms. Last stats ${JSON.stringify(last)}; `
    + `state ${JSON.stringify({ subscribed: state && state.subscribed, tracks: state && state.tracks })}`);
}

async function passDeviceCheck(page) {
  await byTestId(page, 'device-check').waitFor();
  // The fake camera shows a picture and the fake microphone beeps: both must reach the check.
  await page.waitForFunction(() => {
    const v = document.querySelector('[data-testid="preview"]');
    return v && v.videoWidth > 0 && v.currentTime > 0;
  });
  await page.waitForFunction(() => Number(document.querySelector('[data-testid="mic-level"]').getAttribute('aria-valuenow')) > 0);
  assert.ok(await page.locator('#camera-select option').count() >= 2, 'cameras are listed');
  assert.ok(await page.locator('#mic-select option').count() >= 2, 'microphones are listed');
  await byTestId(page, 'device-confirm').click();
}

async function joinAsClassroom(name, inviteUrl, classroomName) {
  const page = await newPage(name);
  await page.goto(inviteUrl);
  await byTestId(page, 'classroom-name').fill(classroomName);
  await byTestId(page, 'name-continue').click();
  await passDeviceCheck(page);
  await byTestId(page, 'classroom-live').waitFor();
  await page.waitForFunction(() => window.tandem.state() && window.tandem.state().joined);
  return page;
}

const ids = {};

test('a dual-teacher lesson in the browser', { timeout: 300_000 }, async (t) => {
  let teacher;
  let inviteUrl;

  await t.test('the teacher starts a class from the home page and goes live', async () => {
    teacher = await newPage('teacher');
    await teacher.goto(base + '/');
    await byTestId(teacher, 'class-title').fill('Grade 2 Maths: fractions');
    await byTestId(teacher, 'teacher-name').fill('Ms Li');
    await shot(teacher, '01-home');
    await byTestId(teacher, 'start-class').click();
    await teacher.waitForURL(/\/teach\/c_[^#]+#token=/);
    await passDeviceCheck(teacher);
    await byTestId(teacher, 'teacher-live').waitFor();
    await teacher.waitForFunction(() => document.querySelector('[data-testid="connection-status"]').dataset.status === 'live');
    inviteUrl = await byTestId(teacher, 'invite-link').inputValue();
    assert.match(inviteUrl, new RegExp(`^${base}/join/c_[^#]+#token=`));
    assert.equal(await teacher.locator('[data-testid="invite-qr"] svg').count(), 1, 'the invite QR code is drawn');
    await byTestId(teacher, 'copy-invite').click();
    await byTestId(teacher, 'invite-copied').filter({ hasText: /copied|Could not copy/ }).waitFor();
    ids.teacher = await ownClassroomId(teacher);
  });

  let roomA;
  let roomB;
  await t.test('two classrooms join by the invite link', async () => {
    roomA = await joinAsClassroom('classroom-a', inviteUrl, 'Grade 2, Hotan No. 3 School');
    roomB = await joinAsClassroom('classroom-b', inviteUrl, 'Grade 2, Kashgar No. 1 School');
    ids.a = await ownClassroomId(roomA);
    ids.b = await ownClassroomId(roomB);
    assert.notEqual(ids.a, ids.b);
    await teacher.locator('[data-testid="classroom-tile"]').nth(1).waitFor();
    assert.equal(await teacher.locator('[data-testid="classroom-tile"]').count(), 2);
  });

  await t.test('each classroom sees and hears the teacher', async () => {
    for (const [name, page] of [['A', roomA], ['B', roomB]]) {
      await waitForFlow(page, { classroom_id: ids.teacher, kind: 'video', source: 'camera' }, `classroom ${name} ← teacher video`);
      await waitForFlow(page, { classroom_id: ids.teacher, kind: 'audio' }, `classroom ${name} ← teacher audio`);
      await page.waitForFunction(() => {
        const v = document.querySelector('[data-testid="main-video"]');
        return v && !v.hidden && v.videoWidth > 0 && v.currentTime > 0;
      });
    }
  });

  await t.test('the teacher sees and hears both classrooms', async () => {
    for (const [name, id] of [['A', ids.a], ['B', ids.b]]) {
      await waitForFlow(teacher, { classroom_id: id, kind: 'video' }, `teacher ← classroom ${name} video`);
      await waitForFlow(teacher, { classroom_id: id, kind: 'audio' }, `teacher ← classroom ${name} audio`);
    }
    await teacher.waitForFunction(() => [...document.querySelectorAll('[data-testid="classroom-video"]')]
      .filter((v) => v.videoWidth > 0).length === 2);
    await teacher.waitForFunction(() => [...document.querySelectorAll('[data-testid="quality"]')]
      .every((q) => q.dataset.quality !== 'unknown'));
    await shot(teacher, '02-teacher-two-classrooms');
  });

  await t.test('B raises its hand and the teacher sees it in the queue', async () => {
    await byTestId(roomB, 'hand-toggle').click();
    await teacher.locator('[data-testid="hands-queue"] [data-testid="hand"]').filter({ hasText: 'Kashgar' }).waitFor();
    await roomB.waitForFunction(() => document.querySelector('[data-testid="hand-toggle"]').getAttribute('aria-pressed') === 'true');
    await teacher.locator('[data-testid="hands-queue"] button').filter({ hasText: 'Lower hand' }).click();
    await roomB.waitForFunction(() => document.querySelector('[data-testid="hand-toggle"]').getAttribute('aria-pressed') === 'false');
  });

  await t.test('A is put on stage and B receives A', async () => {
    const statsBefore = await roomB.evaluate(() => window.tandem.stats());
    assert.equal(statsBefore.filter((s) => s.classroom_id === ids.a).length, 0, 'B does not receive A before the stage');
    await teacher.locator(`[data-testid="classroom-tile"][data-classroom-id="${ids.a}"] [data-testid="stage-toggle"]`).click();
    await teacher.locator(`[data-testid="classroom-tile"][data-classroom-id="${ids.a}"] [data-testid="on-stage-badge"]`).waitFor();
    await waitForFlow(roomB, { classroom_id: ids.a, kind: 'video' }, 'classroom B ← classroom A video (on stage)');
    await waitForFlow(roomB, { classroom_id: ids.a, kind: 'audio' }, 'classroom B ← classroom A audio (on stage)');
    await roomB.waitForFunction(() => {
      const v = document.querySelector('[data-testid="stage-video"]');
      return v && !v.hidden && v.videoWidth > 0;
    });
    await roomA.locator('[data-testid="self-on-stage"]').waitFor();
    await shot(roomA, '03-classroom-a-on-stage');
    await shot(roomB, '04-classroom-b-sees-a');
    console.log('quality seen by B:', JSON.stringify(await roomB.evaluate(() => window.tandem.quality())));
    console.log('quality seen by the teacher:', JSON.stringify(await teacher.evaluate(() => window.tandem.quality())));
  });

  await t.test('the teacher shares a screen: it fills the classroom screen, the camera goes picture-in-picture', async () => {
    await byTestId(teacher, 'share-screen').click();
    await teacher.waitForFunction(() => document.querySelector('[data-testid="share-screen"]').getAttribute('aria-pressed') === 'true');
    await waitForFlow(roomA, { classroom_id: ids.teacher, kind: 'video', source: 'screen' }, 'classroom A ← teacher screen');
    await byTestId(roomA, 'main-caption').filter({ hasText: 'screen' }).waitFor();
    await roomA.waitForFunction(() => {
      const v = document.querySelector('[data-testid="pip-video"]');
      return v && v.videoWidth > 0 && !v.closest('figure').hidden;
    });
    await shot(roomA, '05-classroom-a-screen-share');
    await byTestId(teacher, 'share-screen').click();
    await byTestId(roomA, 'main-caption').filter({ hasText: /^Ms Li$/ }).waitFor();
    await roomA.waitForFunction(() => document.querySelector('[data-testid="pip-video"]').closest('figure').hidden);
    await waitForFlow(roomA, { classroom_id: ids.teacher, kind: 'video', source: 'camera' }, 'classroom A ← teacher camera after the share');
  });

  await t.test('the teacher shares again: A shows it on the transceiver it kept, with no new subscribe offer', async () => {
    // Count the subscribe offers A's page gets from here on (continuous downtracks: none).
    await roomA.evaluate(() => {
      window.__offers = 0;
      window.__testSockets.at(-1).addEventListener('message', (e) => {
        if (JSON.parse(e.data).type === 'subscribe_offer') window.__offers += 1;
      });
    });
    const screenMid = () => roomA.evaluate(() => Object.entries(window.tandem.state().subscribed)
      .filter(([, t]) => t.source === 'screen').map(([mid, t]) => `${mid}:${t.track_id}`));
    await byTestId(teacher, 'share-screen').click();
    await teacher.waitForFunction(() => document.querySelector('[data-testid="share-screen"]').getAttribute('aria-pressed') === 'true');
    await waitForFlow(roomA, { classroom_id: ids.teacher, kind: 'video', source: 'screen' }, 'classroom A ← teacher screen, shared again');
    await byTestId(roomA, 'main-caption').filter({ hasText: 'screen' }).waitFor();
    const mids = await screenMid();
    await byTestId(teacher, 'share-screen').click();
    await byTestId(roomA, 'main-caption').filter({ hasText: /^Ms Li$/ }).waitFor();
    await roomA.waitForFunction(() => document.querySelector('[data-testid="pip-video"]').closest('figure').hidden);
    assert.equal(await roomA.evaluate(() => window.__offers), 0, "A's subscribe leg was not renegotiated");
    assert.deepEqual(await screenMid(), mids, 'the share kept its transceiver and track id');
  });

  await t.test('the teacher reloads the page: A sees and hears the teacher again on the same transceivers, with no new subscribe offer', async () => {
    await roomA.evaluate(() => {
      window.__news = [];
      window.__testSockets.at(-1).addEventListener('message', (e) => {
        const { type } = JSON.parse(e.data);
        if (['subscribe_offer', 'track_published', 'track_unpublished', 'participant_joined', 'participant_left'].includes(type)) window.__news.push(type);
      });
    });
    const teacherMids = () => roomA.evaluate((tid) => Object.entries(window.tandem.state().subscribed)
      .filter(([, t]) => t.classroom_id === tid).map(([mid, t]) => `${mid}:${t.track_id}:${t.source}`).sort(), ids.teacher);
    const mids = await teacherMids();
    await teacher.reload();
    await passDeviceCheck(teacher);
    await byTestId(teacher, 'teacher-live').waitFor();
    await teacher.waitForFunction(() => window.tandem.state() && window.tandem.state().joined);
    assert.equal(await teacher.evaluate(() => window.tandem.state().you.classroom_id), ids.teacher, 'the reloaded page has the teacher\'s seat back');
    await waitForFlow(roomA, { classroom_id: ids.teacher, kind: 'video', source: 'camera' }, 'classroom A ← teacher camera after the reload');
    await waitForFlow(roomA, { classroom_id: ids.teacher, kind: 'audio' }, 'classroom A ← teacher audio after the reload');
    // Every subscriber of the teacher's slots switches to the new streams, not only A: a
    // downtrack that missed the switch shows here, at the step that causes it.
    await waitForFlow(roomB, { classroom_id: ids.teacher, kind: 'video', source: 'camera' }, 'classroom B ← teacher camera after the reload');
    await roomA.waitForFunction(() => {
      const v = document.querySelector('[data-testid="main-video"]');
      return v && !v.hidden && v.videoWidth > 0;
    });
    assert.deepEqual(await roomA.evaluate(() => window.__news), [], 'A was told of no track or seat change and not renegotiated');
    assert.deepEqual(await teacherMids(), mids, 'the same transceivers carry the teacher');
    await teacher.waitForFunction(() => document.querySelector('[data-testid="connection-status"]').dataset.status === 'live');
    await shot(roomA, '05b-classroom-a-after-teacher-reload');
  });

  await t.test('B loses its signaling connection, resumes its place and media flows again', async () => {
    await roomB.evaluate(() => window.__testSockets.at(-1).close());
    await roomB.waitForFunction(() => document.querySelector('[data-testid="connection-status"]').dataset.status === 'reconnecting', null, { timeout: 5000 })
      .catch(() => { /* the reconnect may be faster than the poll */ });
    await roomB.waitForFunction(() => window.__testSockets.length >= 2 && window.tandem.status() === 'joined');
    assert.equal(await roomB.evaluate(() => window.tandem.state().you.classroom_id), ids.b, 'same classroom after resume');
    await waitForFlow(roomB, { classroom_id: ids.teacher, kind: 'video', source: 'camera' }, 'classroom B ← teacher video after resume');
    await waitForFlow(roomB, { classroom_id: ids.a, kind: 'video' }, 'classroom B ← A on stage after resume');
    await waitForFlow(teacher, { classroom_id: ids.b, kind: 'video' }, 'teacher ← classroom B video after resume');
    await roomB.waitForFunction(() => document.querySelector('[data-testid="connection-status"]').dataset.status === 'live');
    // The big screen shows the teacher's live camera again (not the share that ended before the drop).
    await byTestId(roomB, 'main-caption').filter({ hasText: /^Ms Li$/ }).waitFor();
    await roomB.waitForFunction(() => {
      const v = document.querySelector('[data-testid="main-video"]');
      return v && !v.hidden && v.videoWidth > 0;
    });
  });

  await t.test('the teacher asks B to mute and B\'s microphone goes off with a notice', async () => {
    await teacher.locator(`[data-testid="classroom-tile"][data-classroom-id="${ids.b}"] [data-testid="ask-mute"]`).click();
    await byTestId(roomB, 'notice').filter({ hasText: 'asked this classroom to mute' }).waitFor();
    assert.equal(await byTestId(roomB, 'mic-toggle').getAttribute('aria-pressed'), 'true');
  });

  await t.test('the language switch turns the page Chinese and is remembered', async () => {
    assert.equal(await byTestId(roomB, 'hand-toggle').textContent(), 'Raise hand');
    await byTestId(roomB, 'language-select').selectOption('zh-CN');
    await roomB.waitForFunction(() => document.documentElement.lang === 'zh-CN');
    assert.equal(await byTestId(roomB, 'hand-toggle').textContent(), '举手');
    assert.equal(await byTestId(roomB, 'leave').textContent(), '离开');
    assert.match(await byTestId(roomB, 'connection-status').textContent(), /直播中|网络较弱|正在/);
    assert.equal(await roomB.evaluate(() => localStorage.getItem('tandem.lang')), 'zh-CN');
    await shot(roomB, '06-classroom-b-chinese');
    await byTestId(teacher, 'language-select').selectOption('zh-CN');
    await teacher.locator('[data-testid="end-class"]').filter({ hasText: '结束课堂' }).waitFor();
    await shot(teacher, '07-teacher-chinese');
  });

  await t.test('audio only: the server stops sending video to A, the sound goes on, video comes back', async () => {
    await byTestId(roomA, 'audio-only').click();
    await byTestId(roomA, 'audio-only-note').filter({ hasText: 'server has stopped sending video' }).waitFor();
    assert.equal(await roomA.locator('[data-testid="main-video"]').isHidden(), true);
    // subscribe_prefs {video: false}: the server re-offers without any video track.
    await roomA.waitForFunction(() => {
      const subscribed = Object.values(window.tandem.state().subscribed);
      return subscribed.length > 0 && subscribed.every((t) => t.kind !== 'video');
    });
    await waitForFlow(roomA, { classroom_id: ids.teacher, kind: 'audio' }, 'classroom A audio-only ← teacher audio');
    await byTestId(roomA, 'audio-only').click();
    await roomA.waitForFunction(() => Object.values(window.tandem.state().subscribed).some((t) => t.kind === 'video'));
    await waitForFlow(roomA, { classroom_id: ids.teacher, kind: 'video', source: 'camera' }, 'classroom A ← teacher video after audio only');
    await roomA.waitForFunction(() => document.querySelector('[data-testid="main-video"]').videoWidth > 0);
  });

  await t.test('the teacher ends the class and every classroom sees the end screen', async () => {
    await byTestId(teacher, 'end-class').click();
    await byTestId(teacher, 'end-confirm').click();
    for (const page of [roomA, roomB, teacher]) await byTestId(page, 'class-ended').waitFor();
    await shot(roomA, '08-classroom-a-ended');
    const status = await (await fetch(`${base}${new URL(inviteUrl).pathname.replace('/join/', '/api/classes/')}?token=${new URL(inviteUrl).hash.slice(7)}`)).status;
    assert.equal(status, 410, 'the ended class answers 410 to its invite link');
    const late = await newPage('late-classroom');
    await late.goto(inviteUrl);
    await byTestId(late, 'class-ended').waitFor();
  });
});

test('a classroom that blocks camera and microphone is told so and can join without them', { timeout: 120_000 }, async () => {
  // A browser without the auto-accepting fake UI: with no permission granted, Chromium refuses.
  const strict = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30_000,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--use-fake-device-for-media-stream'],
  });
  try {
    const created = await (await fetch(`${base}/api/classes`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ title: 'Grade 5 Art', teacher_name: 'Ms Chen' }),
    })).json();
    const context = await strict.newContext({ locale: 'en-US' });
    const page = await context.newPage();
    page.setDefaultTimeout(STEP_MS);
    await page.goto(created.invite_url);
    await byTestId(page, 'classroom-name').fill('Grade 5, Aksu No. 2 School');
    await byTestId(page, 'name-continue').click();
    await byTestId(page, 'device-problems').filter({ hasText: 'Camera access is blocked' }).waitFor();
    await byTestId(page, 'device-problems').filter({ hasText: 'Microphone access is blocked' }).waitFor();
    assert.equal(await byTestId(page, 'device-confirm').textContent(), 'Continue without camera and microphone');
    assert.equal(await page.locator('#camera-select').inputValue(), '', 'no unusable camera is preselected');
    await shot(page, '09-devices-blocked');
    await byTestId(page, 'device-confirm').click();
    await page.waitForFunction(() => window.tandem.state() && window.tandem.state().joined);
    assert.equal(await byTestId(page, 'mic-toggle').isDisabled(), true);
    assert.equal(await page.evaluate(() => Object.values(window.tandem.state().tracks)
      .filter((t) => t.classroom_id === window.tandem.state().you.classroom_id).length), 0, 'publishes nothing');
  } finally {
    await closeBrowser(strict);
  }
});

test('links that cannot work get a clear page, never a blank one', { timeout: 120_000 }, async () => {
  const page = await newPage('failures');
  const created = await (await fetch(`${base}/api/classes`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ title: 'Grade 3 Science', teacher_name: 'Mr Wang' }),
  })).json();
  const classPath = new URL(created.invite_url).pathname;

  await page.goto(`${base}${classPath}#token=not-a-token`);
  await byTestId(page, 'failure-unauthorized').waitFor();
  assert.match(await byTestId(page, 'failure-unauthorized').textContent(), /invalid or has expired/);

  await page.goto(`${base}${classPath}`);
  await byTestId(page, 'failure-no-token').waitFor();

  await page.goto(`${base}/join/c_doesnotexist#token=${new URL(created.invite_url).hash.slice(7)}`);
  await page.locator('[data-testid="failure-unauthorized"], [data-testid="failure-not_found"]').waitFor();

  await page.goto(`${base}/join/`);
  await byTestId(page, 'failure-page').waitFor();
  await shot(page, '10-invalid-link');

  // The server goes away while the home page is open: the form says so.
  await page.goto(`${base}/`);
  await byTestId(page, 'class-title').fill('Grade 4 Music');
  await byTestId(page, 'teacher-name').fill('Ms Zhao');
  await server.stop();
  await byTestId(page, 'start-class').click();
  await byTestId(page, 'form-error').filter({ hasText: 'Cannot reach the Tandem server' }).waitFor();
  await shot(page, '11-server-unreachable');
});
