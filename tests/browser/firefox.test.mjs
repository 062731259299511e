// Firefox as a classroom, joining a Chromium teacher: it must receive the teacher's video for
// 20 s without a freeze. Firefox checks ICE consent every 4–6 s (Chromium every 2.5 s), so this is
// the browser that shows a server which drops a leg after 5 s without a check.
//
// Firefox will not pair with a loopback-only candidate, so the lesson runs inside a network
// namespace of its own with one veth address for the server's media; the server, both browsers
// and all test traffic stay inside it. The scenario itself is firefox-scenario.mjs, run inside the
// namespace with `ip netns exec` (the browsers' control sockets are on its loopback). Creating the
// namespace needs root: without it this test fails, it is not skipped.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { prepare } from './harness.mjs';

// Names and a /30 derived from our pid, so parallel runs on one machine do not collide.
const tag = process.pid % 100000;
const NS = `tandem-ff-${tag}`;
const HOST_END = `tfh${tag}`;
const NS_END = `tfn${tag}`;
const ADDR = `10.${200 + (tag % 50)}.${(tag >> 6) % 256}.${((tag % 64) * 4) + 2}`;

const ip = (...args) => execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
let created = false;
let child = null;

function cleanup() {
  if (child && child.exitCode === null) child.kill('SIGKILL');
  try { ip('link', 'del', HOST_END); } catch { /* gone with the namespace, or never made */ }
  try { ip('netns', 'del', NS); } catch { /* never made */ }
}

before(() => {
  prepare();
  process.on('exit', cleanup);
  try {
    ip('netns', 'add', NS);
    created = true;
    ip('link', 'add', HOST_END, 'type', 'veth', 'peer', 'name', NS_END);
    ip('link', 'set', NS_END, 'netns', NS);
    ip('link', 'set', HOST_END, 'up');
    ip('netns', 'exec', NS, 'ip', 'addr', 'add', `${ADDR}/30`, 'dev', NS_END);
    ip('netns', 'exec', NS, 'ip', 'link', 'set', NS_END, 'up');
    ip('netns', 'exec', NS, 'ip', 'link', 'set', 'lo', 'up');
    // Firefox takes its host candidates from the interface of the default route; it leads into
    // the veth, whose other end has no address: nothing leaves the machine.
    ip('netns', 'exec', NS, 'ip', 'route', 'add', 'default', 'dev', NS_END);
  } catch (err) {
    cleanup();
    throw new Error(`cannot create the network namespace for the Firefox test (needs root and iproute2): ${err.stderr || err.message}`);
  }
});

after(() => {
  if (created) cleanup();
});

test('a Firefox classroom receives a Chromium teacher\'s video for 20 s without a freeze', { timeout: 240_000 }, async () => {
  const code = await new Promise((resolve, reject) => {
    child = spawn('ip', ['netns', 'exec', NS, process.execPath, 'tests/browser/firefox-scenario.mjs'], {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, TANDEM_TEST_MEDIA_ADDR: ADDR },
    });
    child.on('error', reject);
    child.on('exit', (c, signal) => resolve(signal ? `signal ${signal}` : c));
  });
  assert.equal(code, 0, 'the Firefox scenario passed (its output is above)');
});
