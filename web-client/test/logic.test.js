import { test } from 'node:test';
import assert from 'node:assert/strict';
import { grade, intervalLoss, worst } from '../js/quality.js';
import { displayStatus } from '../js/status.js';
import { errorKind, createClass, getClass, ApiError, reportPageUrl, reportCsv } from '../js/api.js';
import { route } from '../js/app.js';
import { rmsLevel, mediaErrorKind } from '../js/media.js';

test('link quality: good, fair and poor from loss, RTT and jitter', () => {
  assert.equal(grade({ lossPercent: 0, rttMs: 40, jitterMs: 5 }), 'good');
  assert.equal(grade({ lossPercent: 3, rttMs: 40, jitterMs: 5 }), 'fair');
  assert.equal(grade({ lossPercent: 0, rttMs: 400, jitterMs: 5 }), 'fair');
  assert.equal(grade({ lossPercent: 12, rttMs: 40, jitterMs: 5 }), 'poor');
  assert.equal(grade({ lossPercent: 0, rttMs: 900 }), 'poor');
  assert.equal(grade({ jitterMs: 150 }), 'poor');
  assert.equal(grade({}), 'unknown');
  assert.equal(grade({ lossPercent: NaN }), 'unknown');
});

test('loss is measured over the last interval, not since the start', () => {
  assert.equal(intervalLoss(null, { packetsReceived: 90, packetsLost: 10 }), 10);
  assert.equal(intervalLoss({ packetsReceived: 90, packetsLost: 10 }, { packetsReceived: 190, packetsLost: 10 }), 0);
  assert.equal(intervalLoss({ packetsReceived: 100, packetsLost: 0 }, { packetsReceived: 100, packetsLost: 0 }), null);
  assert.equal(worst(['good', 'poor', 'fair']), 'poor');
  assert.equal(worst(['unknown', 'good']), 'good');
  assert.equal(worst([]), 'unknown');
});

test('the status pill shows reconnecting before weak before live', () => {
  assert.equal(displayStatus({ signaling: 'connecting' }), 'connecting');
  assert.equal(displayStatus({ signaling: 'joined', legs: ['connected'], quality: 'good' }), 'live');
  assert.equal(displayStatus({ signaling: 'joined', legs: ['connected'], quality: 'poor' }), 'weak');
  assert.equal(displayStatus({ signaling: 'joined', legs: ['disconnected'], quality: 'good' }), 'reconnecting');
  assert.equal(displayStatus({ signaling: 'reconnecting', quality: 'good' }), 'reconnecting');
  assert.equal(displayStatus({ signaling: 'closed' }), 'closed');
  assert.equal(displayStatus({ signaling: 'connecting', failedAttempts: 3 }), 'connecting');
  assert.equal(displayStatus({ signaling: 'connecting', failedAttempts: 4 }), 'unreachable');
  assert.equal(displayStatus({ signaling: 'reconnecting', failedAttempts: 5 }), 'unreachable');
});

test('HTTP failures become kinds the pages explain', async () => {
  assert.equal(errorKind(401), 'unauthorized');
  assert.equal(errorKind(410), 'ended');
  assert.equal(errorKind(404), 'not_found');
  assert.equal(errorKind(400), 'bad_request');
  assert.equal(errorKind(500), 'server');
  const reply = (status, body) => async () => ({ ok: status < 300, status, json: async () => body });
  await assert.rejects(getClass('c_1', 'bad', reply(401, { error: { code: 'unauthorized', message: 'no' } })), (e) => e instanceof ApiError && e.kind === 'unauthorized');
  await assert.rejects(getClass('c_1', 't', reply(410, { error: { code: 'class_ended', message: 'over' } })), (e) => e.kind === 'ended');
  await assert.rejects(createClass({ title: 'x', teacherName: 'y' }, async () => { throw new TypeError('Failed to fetch'); }), (e) => e.kind === 'unreachable');
  let seen;
  const created = await createClass({ title: 'Maths', teacherName: 'Ms Li' }, async (url, init) => {
    seen = { url, init };
    return { ok: true, status: 201, json: async () => ({ class_id: 'c_1' }) };
  });
  assert.equal(created.class_id, 'c_1');
  assert.equal(seen.url, '/api/classes');
  assert.deepEqual(JSON.parse(seen.init.body), { title: 'Maths', teacher_name: 'Ms Li' });
});

test('the report is opened with a one-use ticket; the teacher token only travels in a header', async () => {
  const calls = [];
  const fetchImpl = async (url, init = {}) => {
    calls.push({ url, init });
    if (url.endsWith('/report-ticket')) return { ok: true, status: 201, json: async () => ({ ticket: 'rt_abc', expires_in_secs: 60 }) };
    return { ok: true, status: 200, blob: async () => 'csv', json: async () => ({}) };
  };
  const url = await reportPageUrl('c_1', 'eyJ.secret', 120, fetchImpl);
  assert.equal(url, '/api/classes/c_1/report?ticket=rt_abc&utc_offset_minutes=120');
  assert.equal(calls[0].init.method, 'POST');
  assert.equal(calls[0].init.headers.Authorization, 'Bearer eyJ.secret');
  assert.equal(await reportCsv('c_1', 'eyJ.secret', 0, fetchImpl), 'csv');
  assert.equal(calls[1].init.headers.Authorization, 'Bearer eyJ.secret');
  for (const call of calls) assert.ok(!call.url.includes('secret'), `no token in ${call.url}`);
  await assert.rejects(reportCsv('c_1', 't', 0, async () => ({ ok: false, status: 401 })), (e) => e.kind === 'unauthorized');
});

test('starting a class sends the server key in a header when there is one; 429 is its own kind', async () => {
  let seen;
  await createClass({ title: 'Maths', teacherName: 'Ms Li', createKey: 'k3y' }, async (url, init) => {
    seen = init;
    return { ok: true, status: 201, json: async () => ({}) };
  });
  assert.equal(seen.headers['X-Tandem-Create-Key'], 'k3y');
  assert.equal(seen.headers['Content-Type'], 'application/json');
  await createClass({ title: 'Maths', teacherName: 'Ms Li' }, async (url, init) => {
    seen = init;
    return { ok: true, status: 201, json: async () => ({}) };
  });
  assert.equal(seen.headers['X-Tandem-Create-Key'], undefined);
  assert.equal(errorKind(429), 'rate_limited');
});

test('routes: home, teacher and invite pages with the token from the fragment', () => {
  assert.deepEqual(route('/', ''), { page: 'home' });
  assert.deepEqual(route('/teach/c_5f2b', '#token=eyJ.abc'), { page: 'teach', classId: 'c_5f2b', token: 'eyJ.abc' });
  assert.deepEqual(route('/join/c_5f2b', '#token=eyJ.x-_'), { page: 'join', classId: 'c_5f2b', token: 'eyJ.x-_' });
  assert.deepEqual(route('/join/c_5f2b', ''), { page: 'join', classId: 'c_5f2b', token: '' });
  assert.deepEqual(route('/vote/c_5f2b', '#token=eyJ.p'), { page: 'vote', classId: 'c_5f2b', token: 'eyJ.p' });
  assert.deepEqual(route('/admin', ''), { page: 'not_found' });
});

test('microphone level and media error kinds', () => {
  assert.equal(rmsLevel(new Uint8Array(64).fill(128)), 0);
  assert.ok(rmsLevel(Uint8Array.from({ length: 64 }, (_, i) => (i % 2 ? 200 : 56))) > 0.9);
  assert.equal(mediaErrorKind({ name: 'NotAllowedError' }), 'denied');
  assert.equal(mediaErrorKind({ name: 'NotFoundError' }), 'missing');
  assert.equal(mediaErrorKind({ name: 'NotReadableError' }), 'busy');
  assert.equal(mediaErrorKind(new Error('x')), 'failed');
});
