// What the browser tests share: the server binary run as a child process, headless Debian
// Chromium with a fake camera and microphone, and small page helpers.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

export const BIN = resolve(process.env.TANDEM_BIN || 'target/debug/tandem');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
/** Screenshots and server logs. */
export const OUT = resolve('tests/output');

/** The `tandem` binary on a fresh data folder; `start` again reuses the folder (a restart). */
export class TandemServer {
  /** `logLimit`: how many characters of the server's log to keep (the tail); `args`: extra flags. */
  constructor({ dataPrefix, logLimit, args = [] }) {
    this.dataDir = mkdtempSync(join(tmpdir(), dataPrefix));
    this.logLimit = logLimit;
    this.args = args;
    this.log = '';
    this.proc = null;
  }

  /**
   * Starts the server listening on `listen` (media on `mediaListen`) and resolves to its base URL
   * once it is ready; `mediaAddr` is then the media port's address.
   */
  start(listen = '127.0.0.1:0', mediaListen = '127.0.0.1:0') {
    const proc = spawn(BIN, ['--listen', listen, '--media-listen', mediaListen, '--data-dir', this.dataDir, ...this.args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, TANDEM_LOG: process.env.TANDEM_LOG || 'info' },
    });
    this.proc = proc;
    proc.stderr.on('data', (d) => { this.log = (this.log + d).slice(-this.logLimit); });
    return new Promise((resolveReady, reject) => {
      const timer = setTimeout(() => reject(new Error(`no TANDEM_READY within 30 s\n${this.log.slice(-4000)}`)), 30_000);
      proc.on('error', (err) => { clearTimeout(timer); reject(err); });
      proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited (${code}) before ready\n${this.log.slice(-4000)}`)); });
      createInterface({ input: proc.stdout }).on('line', (line) => {
        const m = /^TANDEM_READY http=(\S+) media=(\S+)/.exec(line);
        if (m) {
          this.media = m[2];
          clearTimeout(timer);
          this.mediaAddr = m[2];
          resolveReady(m[1].startsWith('http') ? m[1] : `http://${m[1]}`);
        }
      });
    });
  }

  /** Stops the server with `signal` (SIGKILL after 3 s), waiting at most 5 s. */
  async stop(signal = 'SIGTERM') {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill(signal);
    const timer = setTimeout(() => proc.kill('SIGKILL'), 3000);
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    clearTimeout(timer);
  }

  /** Stops the server, keeps its log as `OUT/logName` and removes its data folder. */
  async dispose(logName) {
    await this.stop();
    writeFileSync(join(OUT, logName), this.log);
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** Checks the binary is built and makes the output folder. */
export function prepare() {
  assert.ok(existsSync(BIN), `server binary ${BIN} is missing: run cargo build or set TANDEM_BIN`);
  mkdirSync(OUT, { recursive: true });
}

/**
 * Headless Chromium with fake media devices; `extraArgs` are added to the shared flags, `env`
 * to its environment (e.g. a HOME whose NSS database trusts a test CA).
 */
export function launchChromium(extraArgs = [], env = undefined) {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30_000,
    ...(env ? { env: { ...process.env, ...env } } : {}),
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync',
      '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
      '--autoplay-policy=no-user-gesture-required',
      ...extraArgs,
    ],
  });
}

/** Closes the browser, waiting at most 10 s. */
export async function closeBrowser(browser) {
  if (browser) await Promise.race([browser.close().catch(() => {}), new Promise((r) => setTimeout(r, 10_000))]);
}

export const byTestId = (page, id) => page.locator(`[data-testid="${id}"]`);

/**
 * The page's own classroom id, once the server's `welcome` has given it one. Waited for (within the
 * page's default timeout): the live screen and the invite link show before `welcome` arrives, so
 * reading it at once can see `null` on a busy machine.
 */
export async function ownClassroomId(page) {
  const id = await page.waitForFunction(() => window.tandem?.state()?.you?.classroom_id);
  return id.jsonValue();
}

export async function shot(page, name) {
  await page.screenshot({ path: join(OUT, `${name}.png`), fullPage: true });
}
