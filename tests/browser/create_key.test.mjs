// A server that asks for a key to start a class (`--create-key`, here `TANDEM_CREATE_KEY`): the home
// page shows the key field, says so when the key is missing or wrong, and starts the class with the
// right one. No camera or microphone is needed before the teacher page.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TandemServer, prepare, launchChromium, closeBrowser, byTestId, shot } from './harness.mjs';

const KEY = 'staff-room-7';

let server;
let base;
let browser;
let context;

before(async () => {
  prepare();
  server = new TandemServer({ dataPrefix: 'tandem-create-key-', logLimit: 100_000 });
  // The harness passes the environment on to the server.
  process.env.TANDEM_CREATE_KEY = KEY;
  try {
    base = await server.start();
  } finally {
    delete process.env.TANDEM_CREATE_KEY;
  }
  browser = await launchChromium();
});

after(async () => {
  await context?.close().catch(() => {});
  await closeBrowser(browser);
  await server?.dispose('create-key-server.log');
});

test('the home page asks for the key to start a class, and only the right key starts one', { timeout: 120_000 }, async () => {
  context = await browser.newContext({ locale: 'en-US' });
  const page = await context.newPage();
  page.setDefaultTimeout(30_000);
  await page.goto(`${base}/`);
  await byTestId(page, 'create-key-field').waitFor({ state: 'visible' });
  await byTestId(page, 'class-title').fill('Grade 2 Maths');
  await byTestId(page, 'teacher-name').fill('Ms Li');

  await byTestId(page, 'start-class').click();
  await byTestId(page, 'form-error').filter({ hasText: 'Please enter the key' }).waitFor();

  await byTestId(page, 'create-key').fill('not-the-key');
  await byTestId(page, 'start-class').click();
  await byTestId(page, 'form-error').filter({ hasText: 'That key is not right' }).waitFor();
  await shot(page, 'create-key-01-wrong-key');

  await byTestId(page, 'create-key').fill(KEY);
  await byTestId(page, 'start-class').click();
  await page.waitForURL(/\/teach\/c_[^#]+#token=/);
  assert.ok(!page.url().includes(KEY), 'the key is not in the teacher link');
});
