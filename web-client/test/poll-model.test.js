import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  initialPolls, reducePolls, latestPoll, voteCardState, teacherPanelState, toggleChoice, buildPollSpec,
  chartRows, secondsLeft, formatClock, optionLabels, acceptsVotes,
} from '../js/poll-model.js';
import { msg, parseServerMessage } from '../js/protocol.js';
import { DEFAULT_LIMITS } from './fakes.js';

const T0 = 1_767_258_000_000;
const poll = (over = {}) => ({
  poll_id: 1, question: 'Which is bigger?', kind: 'single', options: ['1/2', '1/3'], anonymous: true,
  timer_secs: 60, state: 'open', started_at_ms: T0, closes_at_ms: T0 + 60_000, ...over,
});
const run = (...messages) => messages.reduce(reducePolls, initialPolls());

test('a voter\'s card: waiting, open, voted, closed, result', () => {
  assert.equal(voteCardState(initialPolls(), T0).view, 'waiting');
  let s = run({ type: 'poll', poll: poll() });
  assert.equal(voteCardState(s, T0 + 1000).view, 'open');
  s = reducePolls(s, { type: 'poll_voted', poll_id: 1, choices: [1] });
  const voted = voteCardState(s, T0 + 2000);
  assert.equal(voted.view, 'voted');
  assert.deepEqual(voted.mine, [1]);
  assert.equal(voteCardState(s, T0 + 60_000).view, 'closed', 'the timer ran out before the server said so');
  s = reducePolls(s, { type: 'poll', poll: poll({ state: 'closed' }) });
  assert.equal(voteCardState(s, T0 + 3000).view, 'closed');
  s = reducePolls(s, { type: 'poll_result', results: { poll: poll({ state: 'published' }), counts: [3, 1], voters_total: 4, voters: null } });
  const result = voteCardState(s, T0 + 4000);
  assert.equal(result.view, 'result');
  assert.deepEqual(result.results.counts, [3, 1]);
});

test('the newest poll wins, and a rejoin starts from what the server sends again', () => {
  let s = run({ type: 'poll', poll: poll({ state: 'published' }) }, { type: 'poll', poll: poll({ poll_id: 2, question: 'Q2' }) });
  assert.equal(latestPoll(s).poll_id, 2);
  s = reducePolls(s, { type: 'welcome' });
  assert.equal(latestPoll(s), null);
});

test('the teacher\'s panel follows live counts', () => {
  let s = run({ type: 'poll', poll: poll() });
  assert.deepEqual(teacherPanelState(s).counts, { counts: [0, 0], voters_total: 0 });
  s = reducePolls(s, { type: 'poll_counts', poll_id: 1, counts: [1, 0], voters_total: 1 });
  const panel = teacherPanelState(s);
  assert.equal(panel.view, 'open');
  assert.deepEqual(panel.counts, { counts: [1, 0], voters_total: 1 });
  assert.equal(teacherPanelState(initialPolls()).view, 'form');
});

test('choices: one for single choice, toggles for multiple choice', () => {
  assert.deepEqual(toggleChoice('single', [0], 1), [1]);
  assert.deepEqual(toggleChoice('yes_no', [], 0), [0]);
  assert.deepEqual(toggleChoice('multiple', [2], 0), [0, 2]);
  assert.deepEqual(toggleChoice('multiple', [0, 2], 2), [0]);
});

test('the poll form is checked before it is sent', () => {
  assert.deepEqual(buildPollSpec({ question: ' Which? ', kind: 'single', optionsText: 'a\n\n b \n', timerSecs: '60', anonymous: true }, DEFAULT_LIMITS),
    { spec: { question: 'Which?', kind: 'single', anonymous: true, options: ['a', 'b'], timer_secs: 60 } });
  assert.deepEqual(buildPollSpec({ question: 'Is 1/2 > 1/3?', kind: 'yes_no', timerSecs: '0', anonymous: false }, DEFAULT_LIMITS),
    { spec: { question: 'Is 1/2 > 1/3?', kind: 'yes_no', anonymous: false } });
  assert.equal(buildPollSpec({ question: '', kind: 'quick_abcd' }, DEFAULT_LIMITS).error, 'poll.error.question');
  assert.equal(buildPollSpec({ question: 'x', kind: 'single', optionsText: 'only one' }, DEFAULT_LIMITS).error, 'poll.error.fewOptions');
  assert.equal(buildPollSpec({ question: 'x', kind: 'multiple', optionsText: 'a\na' }, DEFAULT_LIMITS).error, 'poll.error.duplicate');
  assert.equal(buildPollSpec({ question: 'x', kind: 'multiple', optionsText: Array.from({ length: 11 }, (_, i) => i).join('\n') }, DEFAULT_LIMITS).error, 'poll.error.manyOptions');
});

test('the poll form follows the limits the server announced in welcome', () => {
  const tight = { ...DEFAULT_LIMITS, max_poll_options: 3, max_poll_question_chars: 10, max_poll_option_chars: 4 };
  const form = { question: 'Pick one', kind: 'single', optionsText: 'a\nb\nc' };
  assert.ok(buildPollSpec(form, tight).spec, 'three options are allowed');
  assert.equal(buildPollSpec({ ...form, optionsText: 'a\nb\nc\nd' }, tight).error, 'poll.error.manyOptions');
  assert.ok(buildPollSpec({ ...form, optionsText: 'a\nb\nc\nd' }, DEFAULT_LIMITS).spec, 'four under the default limits');
  assert.equal(buildPollSpec({ ...form, question: 'Which is it?' }, tight).error, 'poll.error.questionLong');
  assert.equal(buildPollSpec({ ...form, optionsText: 'apple\nb' }, tight).error, 'poll.error.optionLong');
});

test('bars, countdown and translated default labels', () => {
  assert.deepEqual(chartRows(['A', 'B'], [3, 1], 4), [{ label: 'A', count: 3, percent: 75 }, { label: 'B', count: 1, percent: 25 }]);
  assert.deepEqual(chartRows(['A'], [], 0), [{ label: 'A', count: 0, percent: 0 }]);
  assert.equal(secondsLeft(poll(), T0 + 500), 60);
  assert.equal(secondsLeft(poll(), T0 + 70_000), 0);
  assert.equal(secondsLeft(poll({ closes_at_ms: null }), T0), null);
  assert.equal(formatClock(75), '1:15');
  assert.equal(acceptsVotes(poll({ closes_at_ms: null }), T0 + 1e9), true);
  const t = (k) => ({ 'poll.yes': '是', 'poll.no': '否' }[k]);
  assert.deepEqual(optionLabels(poll({ kind: 'yes_no', options: ['Yes', 'No'] }), t), ['是', '否']);
  assert.deepEqual(optionLabels(poll({ kind: 'yes_no', options: ['Oui', 'Non'] }), t), ['Oui', 'Non']);
});

test('poll, board and audio-only messages match the protocol', () => {
  assert.deepEqual(msg.pollVote(1, [0, 2]), { type: 'poll_vote', poll_id: 1, choices: [0, 2] });
  assert.deepEqual(msg.subscribePrefs(false), { type: 'subscribe_prefs', video: false });
  assert.deepEqual(msg.boardSync(7), { type: 'board_sync', since_seq: 7 });
  assert.deepEqual(msg.boardOp({ op: 'undo' }), { type: 'board_op', op: { op: 'undo' } });
  assert.deepEqual(msg.pollStart({ question: 'q', kind: 'yes_no' }), { type: 'poll_start', spec: { question: 'q', kind: 'yes_no' } });
  for (const m of [
    { type: 'poll', poll: poll() },
    { type: 'poll_counts', poll_id: 1, counts: [1, 0], voters_total: 1 },
    { type: 'poll_voted', poll_id: 1, choices: [0] },
    { type: 'poll_result', results: { poll: poll(), counts: [1, 0], voters_total: 1, voters: null } },
    { type: 'board_op', applied: { seq: 1, author: { classroom_id: 'r_1', is_teacher: true }, op: { op: 'add_page', page: 1 } } },
    { type: 'board_catchup', catchup: { kind: 'delta', ops: [] } },
    { type: 'laser', classroom_id: 'r_1', page: 0, point: [1, 2] },
    { type: 'laser_off', classroom_id: 'r_1' },
  ]) assert.deepEqual(parseServerMessage(JSON.stringify(m)), m);
});
