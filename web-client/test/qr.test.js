import { test } from 'node:test';
import assert from 'node:assert/strict';
import jsQR from 'jsqr';
import { encodeQr, qrToRgba, qrToSvg, byteCapacity } from '../js/qr.js';

function decode(text, options) {
  const qr = encodeQr(text, options);
  const { width, height, data } = qrToRgba(qr, { scale: 4, border: 4 });
  const result = jsQR(data, width, height);
  assert.ok(result, `jsQR found no code for ${text.length} characters (version ${qr.version})`);
  return { qr, result };
}

const base = 'http://127.0.0.1:8080/join/c_5f2b9c1a7d3e#token=';
function inviteOfLength(n) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.';
  let s = base;
  for (let i = 0; s.length < n; i++) s += alphabet[(i * 7) % alphabet.length];
  return s.slice(0, n);
}

test('capacity at level M matches the standard table for versions 1–10', () => {
  // ISO/IEC 18004 table 7, byte mode, level M.
  const expected = [14, 26, 42, 62, 84, 106, 122, 152, 180, 213];
  assert.deepEqual(expected.map((_, i) => byteCapacity(i + 1)), expected);
});

for (const length of [1, 14, 15, 26, 42, 62, 84, 106, 122, 152, 180, 200, 213, 260, 400]) {
  test(`a ${length}-character invite link decodes to the same text`, () => {
    const text = length < base.length ? base.slice(0, length) : inviteOfLength(length);
    const { qr, result } = decode(text);
    assert.equal(result.data, text);
    assert.equal(qr.size, qr.version * 4 + 17);
  });
}

test('versions grow with the text and a 200-character URL needs at most version 10', () => {
  assert.equal(encodeQr('hi').version, 1);
  assert.ok(encodeQr(inviteOfLength(200)).version <= 10);
  assert.ok(encodeQr(inviteOfLength(300)).version > 10);
});

test('non-ASCII text (a classroom name in Chinese) round-trips as UTF-8', () => {
  const text = '二年级 和田市第三小学';
  const { result } = decode(text);
  assert.deepEqual(Array.from(result.binaryData), Array.from(new TextEncoder().encode(text)));
});

test('text beyond the largest version is refused, not truncated', () => {
  assert.throws(() => encodeQr('x'.repeat(5000)), RangeError);
  assert.throws(() => encodeQr('x'.repeat(300), { maxVersion: 10 }), RangeError);
});

test('the SVG has one dark path and escapes its label', () => {
  const svg = qrToSvg(encodeQr('hello'), { title: 'Invite <link> & "QR"' });
  assert.match(svg, /^<svg /);
  assert.match(svg, /aria-label="Invite &lt;link&gt; &amp; &quot;QR&quot;"/);
  assert.equal((svg.match(/<path /g) || []).length, 1);
});
