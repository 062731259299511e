import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initialState, reduce, remoteClassrooms, teacherOf, isOnStage, handRaised, trackForMid, teacherIsSharing, speakingParticipant, publishedOnly } from '../js/state.js';
import { parseServerMessage } from '../js/protocol.js';
import { welcome, DEFAULT_LIMITS } from './fakes.js';

const play = (...messages) => messages.reduce(reduce, initialState());
const teacherCam = { track_id: 't1', classroom_id: 'r_1', kind: 'video', source: 'camera' };
const teacherScreen = { track_id: 't3', classroom_id: 'r_1', kind: 'video', source: 'screen' };

test('welcome sets who we are, the class and everything already going on', () => {
  const s = play(welcome({ stage: ['r_3'], hands: ['r_3'], tracks: [teacherCam],
    participants: [{ classroom_id: 'r_1', name: 'Ms Li', role: 'teacher', connected: true },
      { classroom_id: 'r_3', name: 'Grade 2, Kashgar No. 1', role: 'classroom', connected: true }] }));
  assert.equal(s.joined, true);
  assert.equal(s.you.classroom_id, 'r_2');
  assert.equal(s.class.title, 'Grade 2 Maths');
  assert.equal(teacherOf(s).name, 'Ms Li');
  assert.deepEqual(remoteClassrooms(s).map((p) => p.classroom_id).sort(), ['r_2', 'r_3']);
  assert.ok(isOnStage(s, 'r_3'));
  assert.ok(handRaised(s, 'r_3'));
  assert.deepEqual(s.tracks.t1, teacherCam);
});

test('welcome carries the server limits the client works within', () => {
  assert.equal(initialState().limits, null, 'no limits before welcome');
  const s = play(welcome({ limits: { ...DEFAULT_LIMITS, max_points_per_stroke: 300, max_poll_options: 4 } }));
  assert.equal(s.limits.max_points_per_stroke, 300);
  assert.equal(s.limits.max_poll_options, 4);
});

test('the reducer never changes the state it is given', () => {
  const before = play(welcome());
  const frozen = JSON.stringify(before);
  reduce(before, { type: 'participant_joined', participant: { classroom_id: 'r_4', name: 'X', role: 'classroom', connected: true } });
  reduce(before, { type: 'stage', stage: ['r_4'] });
  assert.equal(JSON.stringify(before), frozen);
});

test('classrooms join, drop into the grace period, come back and leave with their tracks', () => {
  let s = play(welcome());
  s = reduce(s, { type: 'participant_joined', participant: { classroom_id: 'r_3', name: 'B', role: 'classroom', connected: true } });
  s = reduce(s, { type: 'track_published', track: { track_id: 't9', classroom_id: 'r_3', kind: 'audio', source: 'microphone' } });
  s = reduce(s, { type: 'hands', hands: ['r_3'] });
  s = reduce(s, { type: 'stage', stage: ['r_3'] });
  s = reduce(s, { type: 'participant_state', classroom_id: 'r_3', connected: false });
  assert.equal(s.participants.r_3.connected, false);
  s = reduce(s, { type: 'participant_state', classroom_id: 'r_3', connected: true });
  assert.equal(s.participants.r_3.connected, true);
  s = reduce(s, { type: 'participant_left', classroom_id: 'r_3' });
  assert.equal(s.participants.r_3, undefined);
  assert.equal(s.tracks.t9, undefined);
  assert.deepEqual(s.stage, []);
  assert.deepEqual(s.hands, []);
  assert.equal(reduce(s, { type: 'participant_state', classroom_id: 'r_404', connected: false }), s);
});

test('a subscribe offer maps transceiver mids to published tracks', () => {
  let s = play(welcome({ tracks: [teacherCam] }));
  s = reduce(s, { type: 'subscribe_offer', sdp: 'v=0', tracks: [{ mid: '0', track: teacherCam }, { mid: 1, track: teacherScreen }] });
  assert.deepEqual(trackForMid(s, '0'), teacherCam);
  assert.deepEqual(trackForMid(s, 1), teacherScreen);
  assert.equal(trackForMid(s, '7'), null);
  assert.ok(s.tracks.t3, 'tracks first heard of in an offer are known');
  assert.ok(teacherIsSharing(s));
  s = reduce(s, { type: 'track_unpublished', track_id: 't3', classroom_id: 'r_1' });
  assert.equal(trackForMid(s, 1), null);
  assert.equal(teacherIsSharing(s), false);
});

test('mute requests are counted, the end is remembered, errors are kept', () => {
  let s = play(welcome(), { type: 'mute_requested' }, { type: 'mute_requested' });
  assert.equal(s.muteRequests, 2);
  s = reduce(s, { type: 'error', code: 'forbidden', message: 'teacher only', in_reply_to: 'stage_add' });
  assert.deepEqual(s.lastError, { code: 'forbidden', message: 'teacher only', in_reply_to: 'stage_add' });
  assert.equal(s.ended, false);
  s = reduce(s, { type: 'class_ended' });
  assert.equal(s.ended, true);
});

test('a resumed welcome replaces the old picture of the class', () => {
  let s = play(welcome(), { type: 'stage', stage: ['r_2'] },
    { type: 'subscribe_offer', sdp: 'v=0', tracks: [{ mid: '0', track: teacherCam }] });
  s = reduce(s, welcome({ session: 's_1', stage: [], tracks: [] }));
  assert.deepEqual(s.stage, []);
  assert.deepEqual(s.subscribed, {});
  assert.deepEqual(s.tracks, {});
});

test('a classroom whose media is lost is marked so until it is back', () => {
  const lost = play(welcome(), { type: 'media_state', classroom_id: 'r_1', connected: false });
  assert.equal(lost.participants.r_1.media_lost, true);
  assert.equal(lost.participants.r_1.connected, true, 'its signaling is fine');
  const back = reduce(lost, { type: 'media_state', classroom_id: 'r_1', connected: true });
  assert.equal(back.participants.r_1.media_lost, false);
});

test('a resume that kept the media keeps what this page receives; one that did not starts empty', () => {
  const offer = { type: 'subscribe_offer', sdp: 'v=0', tracks: [{ mid: '0', track: teacherCam }] };
  const before = play(welcome(), offer);
  assert.deepEqual(trackForMid(reduce(before, welcome({ media_kept: true })), '0'), teacherCam);
  assert.equal(trackForMid(reduce(before, welcome()), '0'), null);
});

test('the speaking classroom follows the server, and nobody speaks once it leaves', () => {
  let s = play(welcome({ participants: [{ classroom_id: 'r_1', name: 'Ms Li', role: 'teacher', connected: true },
    { classroom_id: 'r_3', name: 'Grade 2, Kashgar No. 1', role: 'classroom', connected: true }] }));
  assert.equal(speakingParticipant(s), null);
  s = reduce(s, parseServerMessage('{"type":"speaking","classroom_id":"r_3"}'));
  assert.equal(speakingParticipant(s).name, 'Grade 2, Kashgar No. 1');
  s = reduce(s, parseServerMessage('{"type":"speaking","classroom_id":null}'));
  assert.equal(speakingParticipant(s), null);
  s = reduce(s, { type: 'speaking', classroom_id: 'r_1' });
  assert.equal(speakingParticipant(s).role, 'teacher');
  s = reduce(s, { type: 'participant_left', classroom_id: 'r_1' });
  assert.equal(s.speaking, null);
  assert.equal(speakingParticipant(s), null);
});

test('a screen share that stops hides its transceiver, and shows it again when the same track comes back', () => {
  // The server keeps the transceiver (no new subscribe offer): only the track messages change.
  const received = [{ mid: '0', info: teacherCam, track: {} }, { mid: '1', info: teacherScreen, track: {} }];
  let s = play(welcome({ tracks: [teacherCam, teacherScreen] }),
    { type: 'subscribe_offer', sdp: 'v=0', tracks: [{ mid: '0', track: teacherCam }, { mid: '1', track: teacherScreen }] });
  assert.deepEqual(publishedOnly(s, received).map((r) => r.mid), ['0', '1']);
  s = reduce(s, { type: 'track_unpublished', track_id: 't3', classroom_id: 'r_1' });
  assert.deepEqual(publishedOnly(s, received).map((r) => r.mid), ['0'], 'the ended share is not shown');
  assert.equal(teacherIsSharing(s), false);
  s = reduce(s, { type: 'track_published', track: teacherScreen });
  assert.deepEqual(publishedOnly(s, received).map((r) => r.mid), ['0', '1'], 'the share is back on its transceiver');
  assert.equal(teacherIsSharing(s), true);
});
