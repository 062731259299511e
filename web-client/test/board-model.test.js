// The board reducer against the server's own output: fixtures/board-lesson.json is a scripted
// lesson run through the Rust `Board` (signaling/tests/board_fixtures.rs, which checks in CI that this file is current): its applied ops,
// snapshots along the way, the final board and the SVG of every page.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  emptyBoard, applyOp, BoardReplica, boardToSvg, hitTest, mayDraw, findObject, normaliseSnapshot, arrowHead, colorParts,
} from '../js/board-model.js';

const fixture = JSON.parse(readFileSync(new URL('fixtures/board-lesson.json', import.meta.url), 'utf8'));
const { ops, snapshots, svg } = fixture;
const finalBoard = fixture.final;

function replay(list, board = emptyBoard()) {
  for (const a of list) assert.equal(applyOp(board, structuredClone(a)), 'applied', `op ${a.seq}`);
  return board;
}

test('replaying every op from an empty board gives exactly the server\'s final snapshot', () => {
  assert.deepEqual(replay(ops), finalBoard);
});

test('snapshot + the ops after it == the later snapshot, for every snapshot', () => {
  for (const snap of snapshots) {
    const later = ops.filter((a) => a.seq > snap.seq);
    assert.deepEqual(replay(later, normaliseSnapshot(snap)), finalBoard, `from seq ${snap.seq}`);
    // and each snapshot is what replaying up to it gives
    assert.deepEqual(replay(ops.filter((a) => a.seq <= snap.seq)), snap);
  }
});

test('duplicates are ignored and a gap changes nothing', () => {
  const board = replay(ops.slice(0, 5));
  const before = structuredClone(board);
  assert.equal(applyOp(board, ops[2]), 'duplicate');
  assert.equal(applyOp(board, ops[7]), 'gap');
  assert.deepEqual(board, before);
});

test('the SVG export is the same document the server makes', () => {
  assert.equal(svg.length, finalBoard.pages.length);
  for (let p = 0; p < svg.length; p += 1) assert.equal(boardToSvg(finalBoard, p), svg[p], `page ${p}`);
});

test('a stroke grows point by point as it streams', () => {
  const board = emptyBoard();
  applyOp(board, ops[0]);
  applyOp(board, ops[1]);
  assert.equal(findObject(board, 'r_2:1').object.points.length, 1);
  applyOp(board, ops[2]);
  assert.equal(findObject(board, 'r_2:1').object.points.length, 3);
  applyOp(board, ops[3]);
  assert.deepEqual(findObject(board, 'r_2:1').object.points.at(-1), [120.12, 140.46]);
});

test('draw permissions: per classroom, then for all, with exceptions', () => {
  const board = replay(ops.slice(0, 1));
  assert.equal(mayDraw(board, 'r_2'), true);
  assert.equal(mayDraw(board, 'r_3'), false);
  assert.equal(mayDraw(board, 'r_1', true), true);
  const later = replay(ops.filter((a) => a.seq <= 20));
  assert.deepEqual(later.permissions, { all: true, classrooms: { r_3: false } });
  assert.equal(mayDraw(later, 'r_3'), false);
  assert.equal(mayDraw(later, 'r_9'), true);
});

test('the replica asks for a catch-up on a gap and takes delta and snapshot catch-ups', () => {
  const sent = [];
  let changes = 0;
  const replica = new BoardReplica({ send: (m) => sent.push(m), onChange: () => { changes += 1; } });
  replica.rejoined();
  assert.equal(replica.onApplied(ops[0]), 'held', 'ops wait for the catch-up after welcome');
  assert.equal(replica.onCatchup({ kind: 'snapshot', snapshot: snapshots[0] }), 'snapshot');
  assert.equal(replica.board.seq, 5);
  assert.equal(replica.onApplied(ops[5]), 'applied');
  assert.equal(replica.onApplied(ops[5]), 'duplicate');
  assert.equal(replica.onApplied(ops[9]), 'gap');
  assert.deepEqual(sent, [{ type: 'board_sync', since_seq: 6 }]);
  assert.equal(replica.onApplied(ops[10]), 'held', 'nothing past the gap while syncing');
  assert.equal(replica.onCatchup({ kind: 'delta', ops: ops.slice(4, 12) }), 'delta', 'overlapping ops are skipped');
  assert.equal(replica.board.seq, 12);
  for (const a of ops.slice(12)) replica.onApplied(a);
  assert.deepEqual(replica.board, finalBoard);
  assert.ok(changes >= 3);
});

test('the eraser finds strokes, shapes and text under the pointer, topmost first', () => {
  const board = replay(ops);
  assert.deepEqual(hitTest(board, 0, [104, 123]), ['r_1:2', 'r_2:1'], 'the filled rectangle lies over the stroke');
  assert.deepEqual(hitTest(board, 0, [104, 123], { filter: (o) => o.author === 'r_2' }), ['r_2:1'], 'a classroom erases only its own');
  assert.deepEqual(hitTest(board, 0, [300, 230]), ['r_1:1'], 'on the arrow');
  assert.deepEqual(hitTest(board, 0, [100, 100]), ['r_1:2'], 'inside the filled rectangle');
  assert.deepEqual(hitTest(board, 0, [700, 360]), [], 'inside an unfilled ellipse is empty');
  assert.deepEqual(hitTest(board, 0, [800, 360]), ['r_1:3'], 'on the ellipse outline');
  assert.deepEqual(hitTest(board, 0, [80, 420]), ['r_1:5'], 'on the text');
  assert.deepEqual(hitTest(board, 0, [104, 123], { filter: (o) => o.author === 'r_3' }), [], 'only own objects for a classroom');
  assert.deepEqual(hitTest(board, 1, [104, 123]), []);
});

test('geometry helpers: arrow heads and colours with alpha', () => {
  const [a, b] = arrowHead([0, 0], [100, 0], 2);
  assert.ok(a[0] < 100 && b[0] < 100 && Math.sign(a[1]) === -Math.sign(b[1]));
  assert.deepEqual(colorParts('#ffeb3b80'), { rgb: '#ffeb3b', opacity: 128 / 255 });
  assert.deepEqual(colorParts('#000000', 0.4), { rgb: '#000000', opacity: 0.4 });
});
