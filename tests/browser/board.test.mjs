// The shared whiteboard and voting in real browsers: the teacher draws and a classroom sees the
// stroke; the teacher lets classroom A draw and sees A's stroke; a pupil opens the voting link in
// a third browser context, votes, and the teacher's count changes; the teacher publishes and the
// classroom shows the bar chart; the server is killed and started again on the same data dir and
// port, the pages reconnect and the board is the same.
//
// Runs the server binary (TANDEM_BIN, default target/debug/tandem) and headless Chromium with fake
// camera and microphone. Screenshots land in tests/output/.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { TandemServer, prepare, launchChromium, closeBrowser, byTestId, shot, ownClassroomId } from './harness.mjs';

const STEP_MS = 30_000;

let server;
let base;
let browser;
const contexts = [];

before(async () => {
  prepare();
  server = new TandemServer({ dataPrefix: 'tandem-board-', logLimit: 300_000 });
  base = await server.start();
  browser = await launchChromium();
});

after(async () => {
  for (const c of contexts) await c.close().catch(() => {});
  await closeBrowser(browser);
  await server?.dispose('board-server.log');
});

/** What the pages' Content-Security-Policy blocked (the client must need no inline script or style). */
const cspViolations = [];

async function newPage(name, { viewport = { width: 1366, height: 900 }, permissions = ['camera', 'microphone'] } = {}) {
  const context = await browser.newContext({ viewport, locale: 'en-US', permissions, acceptDownloads: true });
  contexts.push(context);
  // Count every request for camera or microphone (the pupil page must make none).
  await context.addInitScript(() => {
    window.__mediaRequests = 0;
    const md = navigator.mediaDevices;
    if (md && md.getUserMedia) {
      const native = md.getUserMedia.bind(md);
      md.getUserMedia = (...args) => { window.__mediaRequests += 1; return native(...args); };
    }
  });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  page.on('console', (m) => {
    if (m.type() === 'error') console.log(`[${name}] ${m.type()}: ${m.text()}`);
    if (/Content.Security.Policy/i.test(m.text())) cspViolations.push(`[${name}] ${m.text()}`);
  });
  page.on('pageerror', (err) => console.log(`[${name}] page error: ${err.message}`));
  return page;
}


async function passDeviceCheck(page) {
  await byTestId(page, 'device-check').waitFor();
  await page.waitForFunction(() => {
    const v = document.querySelector('[data-testid="preview"]');
    return v && v.videoWidth > 0;
  });
  await byTestId(page, 'device-confirm').click();
}

async function waitLive(page) {
  await page.waitForFunction(() => window.tandem.status() === 'joined'
    && document.querySelector('[data-testid="connection-status"]')?.dataset.status !== 'connecting');
}

/** Draw a polyline on the page's board canvas; points in board units (1600 × 900). */
async function drawOnBoard(page, points) {
  const canvas = byTestId(page, 'board-canvas');
  await canvas.scrollIntoViewIfNeeded();
  const box = await canvas.boundingBox();
  const at = ([x, y]) => [box.x + (x / 1600) * box.width, box.y + (y / 900) * box.height];
  await page.mouse.move(...at(points[0]));
  await page.mouse.down();
  for (const p of points.slice(1)) {
    await page.mouse.move(...at(p), { steps: 4 });
    await page.waitForTimeout(15);
  }
  await page.mouse.up();
}

const board = (page) => page.evaluate(() => window.tandem.board());
/** The visible board: pages, current page and permissions (seq aside). */
const visible = (b) => ({ pages: b.pages, current_page: b.current_page, permissions: b.permissions });

/** Wait until `page`'s board reached `seq` and return it. */
async function boardAt(page, seq) {
  await page.waitForFunction((s) => window.tandem.board() && window.tandem.board().seq >= s, seq);
  return board(page);
}

const zigzag = (x0, y0) => Array.from({ length: 16 }, (_, i) => [x0 + i * 30, y0 + (i % 2 ? 60 : 0)]);

test('the whiteboard and voting in the browser, across a server restart', { timeout: 420_000 }, async (t) => {
  let created;
  let teacher;
  let roomA;
  let pupil;
  const ids = {};
  let inviteBeforeRestart;

  await t.test('the teacher goes live; the links come from the server, not from this computer', async () => {
    created = await (await fetch(`${base}/api/classes`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ title: 'Grade 2 Maths: fractions', teacher_name: 'Ms Li' }),
    })).json();
    assert.match(created.pupil_url, /\/vote\/c_[^#]+#token=/);
    teacher = await newPage('teacher', { permissions: ['camera', 'microphone', 'clipboard-read', 'clipboard-write'] });
    await teacher.goto(created.teacher_url);
    await passDeviceCheck(teacher);
    await byTestId(teacher, 'teacher-live').waitFor();
    await waitLive(teacher);
    // A fresh browser context has nothing in localStorage: these come from GET /api/classes/{id}.
    assert.match(await byTestId(teacher, 'invite-link').inputValue(), /\/join\/c_[^#]+#token=/);
    assert.match(await byTestId(teacher, 'pupil-link').inputValue(), /\/vote\/c_[^#]+#token=/);
    assert.equal(await teacher.locator('[data-testid="pupil-qr"] svg').count(), 1, 'the pupil QR code is drawn');
    ids.teacher = await ownClassroomId(teacher);
  });

  await t.test('classroom A joins by the invite link and gets the board', async () => {
    roomA = await newPage('classroom-a');
    await roomA.goto(await byTestId(teacher, 'invite-link').inputValue());
    await byTestId(roomA, 'classroom-name').fill('Grade 2, Hotan No. 3 School');
    await byTestId(roomA, 'name-continue').click();
    await passDeviceCheck(roomA);
    await byTestId(roomA, 'classroom-live').waitFor();
    await waitLive(roomA);
    ids.a = await ownClassroomId(roomA);
    await teacher.locator(`[data-testid="classroom-tile"][data-classroom-id="${ids.a}"]`).waitFor();
    await byTestId(roomA, 'board-permission').filter({ hasText: 'Only the teacher draws' }).waitFor();
    assert.equal(await byTestId(roomA, 'tool-pen').isDisabled(), true, 'A may not draw yet');
  });

  await t.test('a stroke drawn by the teacher appears on the classroom\'s board', async () => {
    await byTestId(teacher, 'color-e53935').click();
    await byTestId(teacher, 'width-8').click();
    await drawOnBoard(teacher, zigzag(200, 200));
    const mine = await teacher.waitForFunction(() => {
      const b = window.tandem.board();
      const o = b.pages[0].objects.find((x) => x.type === 'stroke');
      return o && o.points.length >= 10 && b.seq;
    });
    const seq = await mine.jsonValue();
    // Streaming: several stroke_append ops, not one.
    assert.ok(seq >= 4, `the stroke streamed in several ops (seq ${seq})`);
    const [tb, ab] = [await boardAt(teacher, seq), await boardAt(roomA, seq)];
    assert.deepEqual(visible(ab), visible(tb), 'the classroom has exactly the teacher\'s board');
    const stroke = ab.pages[0].objects[0];
    assert.equal(stroke.author, ids.teacher);
    assert.equal(stroke.color, '#e53935');
    assert.equal(stroke.width, 8);
    // The canvas really shows red where the stroke is.
    const red = await roomA.evaluate(() => {
      const c = document.querySelector('[data-testid="board-canvas"]');
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4) if (d[i] > 200 && d[i + 1] < 90 && d[i + 2] < 90) n += 1;
      return n;
    });
    assert.ok(red > 200, `red pixels on the classroom canvas: ${red}`);
    await shot(teacher, 'board-01-teacher-draws');
    await shot(roomA, 'board-02-classroom-sees-stroke');
  });

  await t.test('the teacher allows A to draw and A\'s stroke appears on the teacher\'s board', async () => {
    const tile = teacher.locator(`[data-testid="classroom-tile"][data-classroom-id="${ids.a}"]`);
    await tile.locator('[data-testid="draw-toggle"]').click();
    await tile.locator('[data-testid="draw-badge"]').waitFor();
    await byTestId(roomA, 'board-permission').filter({ hasText: 'lets this classroom draw' }).waitFor();
    await byTestId(roomA, 'color-1e88e5').click();
    await drawOnBoard(roomA, zigzag(300, 500));
    await teacher.waitForFunction((a) => window.tandem.board().pages[0].objects.some((o) => o.author === a && o.points && o.points.length >= 10), ids.a);
    // A also adds a rectangle; the teacher adds text.
    await byTestId(roomA, 'tool-rect').click();
    await drawOnBoard(roomA, [[900, 100], [1200, 300]]);
    await byTestId(teacher, 'tool-text').click();
    await byTestId(teacher, 'board-text').fill('1/2 > 1/3');
    await byTestId(teacher, 'board-text-place').click();
    const seq = await teacher.evaluate(() => window.tandem.board().seq);
    await teacher.waitForFunction(() => window.tandem.board().pages[0].objects.length === 4);
    const [tb, ab] = [await boardAt(teacher, seq), await boardAt(roomA, seq)];
    assert.deepEqual(visible(ab), visible(tb));
    assert.deepEqual(tb.pages[0].objects.map((o) => [o.type, o.author === ids.a ? 'A' : 'teacher']),
      [['stroke', 'teacher'], ['stroke', 'A'], ['rect', 'A'], ['text', 'teacher']]);
    // A undoes its rectangle: only its own action goes.
    await byTestId(roomA, 'board-undo').click();
    await teacher.waitForFunction(() => window.tandem.board().pages[0].objects.length === 3);
    await shot(teacher, 'board-03-teacher-sees-classroom-a');
  });

  await t.test('the page exports as SVG and PNG', async () => {
    const [svgDownload] = await Promise.all([teacher.waitForEvent('download'), byTestId(teacher, 'export-svg').click()]);
    const svg = readFileSync(await svgDownload.path(), 'utf8');
    assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    assert.match(svg, /<path d="M/);
    assert.match(svg, /1\/2 &gt; 1\/3/);
    const [pngDownload] = await Promise.all([teacher.waitForEvent('download'), byTestId(teacher, 'export-png').click()]);
    const png = readFileSync(await pngDownload.path());
    assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47], 'a PNG file');
  });

  await t.test('a pupil votes by link from a third browser context and the teacher\'s count changes', async () => {
    await byTestId(teacher, 'poll-question').fill('Which is bigger?');
    await byTestId(teacher, 'poll-kind').selectOption('single');
    await byTestId(teacher, 'poll-options').fill('1/2\n1/3');
    await byTestId(teacher, 'poll-timer').selectOption('300');
    await byTestId(teacher, 'poll-start').click();
    await byTestId(teacher, 'poll-state').filter({ hasText: 'Open' }).waitFor();

    pupil = await newPage('pupil', { viewport: { width: 390, height: 844 }, permissions: [] });
    await pupil.goto(await byTestId(teacher, 'pupil-link').inputValue());
    await byTestId(pupil, 'pupil-name').fill('Aylin');
    await byTestId(pupil, 'pupil-continue').click();
    await byTestId(pupil, 'vote-question').filter({ hasText: 'Which is bigger?' }).waitFor();
    await shot(pupil, 'board-04-pupil-poll-open');
    await pupil.locator('[data-testid="vote-option"]').nth(0).check();
    await byTestId(pupil, 'vote-submit').click();
    await byTestId(pupil, 'vote-done').filter({ hasText: '1/2' }).waitFor();
    await teacher.waitForFunction(() => document.querySelector('[data-testid="poll-voters-total"]')?.dataset.count === '1');
    assert.equal(await teacher.locator('[data-testid="poll-live-chart"] [data-testid="poll-bar"]').nth(0).getAttribute('data-count'), '1');
    assert.equal(await pupil.evaluate(() => window.__mediaRequests), 0, 'the pupil page asked for no camera or microphone');

    // The pupil changes the vote; classroom A votes as one voter.
    await byTestId(pupil, 'vote-change').click();
    await pupil.locator('[data-testid="vote-option"]').nth(1).check();
    await byTestId(pupil, 'vote-submit').click();
    await byTestId(pupil, 'vote-done').filter({ hasText: '1/3' }).waitFor();
    await roomA.locator('[data-testid="vote-option"]').nth(0).check();
    await byTestId(roomA, 'vote-submit').click();
    await byTestId(roomA, 'vote-done').waitFor();
    await teacher.waitForFunction(() => document.querySelector('[data-testid="poll-voters-total"]')?.dataset.count === '2');
    const counts = await teacher.locator('[data-testid="poll-live-chart"] [data-testid="poll-bar"]').evaluateAll((els) => els.map((e) => e.dataset.count));
    assert.deepEqual(counts, ['1', '1']);
    await shot(teacher, 'board-05-teacher-live-counts');
  });

  await t.test('the teacher publishes and the classroom and the pupil show the bar chart', async () => {
    await byTestId(teacher, 'poll-publish').click();
    for (const page of [roomA, pupil]) {
      await byTestId(page, 'poll-result-chart').waitFor();
      const counts = await page.locator('[data-testid="poll-result-chart"] [data-testid="poll-bar"]').evaluateAll((els) => els.map((e) => e.dataset.count));
      assert.deepEqual(counts, ['1', '1']);
    }
    await byTestId(teacher, 'poll-state').filter({ hasText: 'Result shown' }).waitFor();
    await shot(roomA, 'board-06-classroom-result');
    await shot(pupil, 'board-07-pupil-result');
  });

  await t.test('the class report opens in a new tab and downloads as CSV, the teacher token in no URL', async () => {
    const [tab] = await Promise.all([teacher.context().waitForEvent('page'), byTestId(teacher, 'report-html').click()]);
    await tab.waitForURL(/\/report\?ticket=/);
    await tab.getByRole('heading', { name: 'Grade 2 Maths: fractions' }).waitFor();
    assert.match(await tab.content(), /Which is bigger\?/);
    assert.ok(!tab.url().includes(created.teacher_token), tab.url());
    await shot(tab, 'board-05b-report');
    await tab.close();
    const [download] = await Promise.all([teacher.waitForEvent('download'), byTestId(teacher, 'report-csv').click()]);
    assert.equal(download.suggestedFilename(), `report-${created.class_id}.csv`);
    assert.ok(!download.url().includes(created.teacher_token));
    assert.match(readFileSync(await download.path(), 'utf8'), /Which is bigger\?/);
    await byTestId(teacher, 'report-error').waitFor({ state: 'hidden' });
  });

  await t.test('the server is killed and started again: the pages reconnect and the board is the same', async () => {
    const before = await board(teacher);
    assert.deepEqual(visible(await boardAt(roomA, before.seq)), visible(before));
    inviteBeforeRestart = await byTestId(teacher, 'invite-link').inputValue();
    const port = new URL(base).port;
    await server.stop('SIGKILL');
    await roomA.waitForFunction(() => window.tandem.status() !== 'joined');
    base = await server.start(`127.0.0.1:${port}`);
    for (const page of [teacher, roomA]) {
      await page.waitForFunction(() => window.tandem.status() === 'joined', null, { timeout: 45_000 });
      await page.waitForFunction((s) => window.tandem.board() && window.tandem.board().seq === s, before.seq);
      assert.deepEqual(visible(await board(page)), visible(before), 'the same board after the restart');
    }
    // The result is still on the classroom's screen, and the board still takes strokes.
    await byTestId(roomA, 'poll-result-chart').waitFor();
    await byTestId(teacher, 'tool-pen').click();
    await drawOnBoard(teacher, zigzag(200, 700));
    await roomA.waitForFunction((s) => window.tandem.board().seq > s && window.tandem.board().pages[0].objects.length === 4, before.seq);
    const seq = await teacher.evaluate(() => window.tandem.board().seq);
    assert.deepEqual(visible(await boardAt(roomA, seq)), visible(await boardAt(teacher, seq)));
    await shot(roomA, 'board-08-classroom-after-restart');
  });

  await t.test('the pages work under the strict Content-Security-Policy: nothing was blocked', async () => {
    const csp = (await fetch(`${base}/`)).headers.get('content-security-policy');
    assert.match(csp, /^default-src 'self'/);
    assert.deepEqual(cspViolations, []);
  });

  await t.test('Copy link copies what the field and the QR code show after the links are re-signed', async () => {
    // After the reconnect the server hands out freshly signed links and the field shows them.
    await teacher.waitForFunction((old) => document.querySelector('[data-testid="invite-link"]').value !== old, inviteBeforeRestart);
    const shown = await byTestId(teacher, 'invite-link').inputValue();
    await byTestId(teacher, 'copy-invite').click();
    await byTestId(teacher, 'invite-copied').filter({ hasText: /copied/i }).waitFor();
    assert.equal(await teacher.evaluate(() => navigator.clipboard.readText()), shown);
  });
});
