import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { createTranslator, interpolate, pickLanguage } from '../js/i18n.js';

const dir = new URL('../', import.meta.url);
const en = JSON.parse(readFileSync(new URL('locales/en.json', dir), 'utf8'));
const zh = JSON.parse(readFileSync(new URL('locales/zh-CN.json', dir), 'utf8'));

test('en.json and zh-CN.json have exactly the same keys', () => {
  assert.deepEqual(Object.keys(zh).sort(), Object.keys(en).sort());
});

test('every translation is a non-empty string with the same placeholders as English', () => {
  const placeholders = (s) => (s.match(/\{\w+\}/g) || []).sort();
  for (const [key, text] of Object.entries(en)) {
    assert.equal(typeof text, 'string', key);
    assert.ok(text.trim(), `en ${key} is empty`);
    assert.ok(zh[key].trim(), `zh-CN ${key} is empty`);
    assert.deepEqual(placeholders(zh[key]), placeholders(text), key);
  }
});

test('every key the client uses exists (static keys and the known dynamic families)', () => {
  const js = readdirSync(new URL('js/', dir)).map((f) => readFileSync(new URL(`js/${f}`, dir), 'utf8')).join('\n')
    + readFileSync(new URL('index.html', dir), 'utf8');
  const used = new Set();
  for (const m of js.matchAll(/(?:i18n|title|body|confirmKey|label):\s*'([a-zA-Z]+\.[\w.-]+)'/g)) used.add(m[1]);
  for (const m of js.matchAll(/(?:setText|setAttrText|announce|showNotice|say|t)\([^'()]*'([a-zA-Z]+\.[\w.-]+)'/g)) used.add(m[1]);
  for (const m of js.matchAll(/\?\s*'([a-zA-Z]+\.[\w.-]+)'\s*:\s*'([a-zA-Z]+\.[\w.-]+)'/g)) { used.add(m[1]); used.add(m[2]); }
  for (const m of js.matchAll(/data-i18n="([a-zA-Z]+\.[\w.-]+)"/g)) used.add(m[1]);
  for (const kind of ['denied', 'missing', 'busy', 'insecure', 'unsupported', 'failed']) {
    for (const device of ['camera', 'microphone']) used.add(`device.error.${kind}.${device}`);
  }
  for (const k of ['unauthorized', 'ended', 'not_found', 'unreachable', 'bad_request', 'bad_message', 'server']) {
    used.add(`failure.${k}.title`); used.add(`failure.${k}.body`);
  }
  for (const k of ['unreachable', 'unauthorized', 'ended', 'not_found', 'bad_request', 'server']) used.add(`home.error.${k}`);
  for (const s of ['connecting', 'live', 'weak', 'reconnecting', 'unreachable', 'closed']) used.add(`status.${s}`);
  for (const s of ['weak', 'reconnecting', 'unreachable']) used.add(`status.banner.${s}`);
  for (const q of ['unknown', 'good', 'fair', 'poor']) used.add(`quality.${q}`);
  for (const c of ['bad_message', 'too_large', 'unauthorized', 'forbidden', 'not_joined', 'rate_limited', 'not_found', 'class_ended', 'negotiation_failed', 'internal']) used.add(`serverError.${c}`);
  for (const tool of ['pen', 'highlighter', 'eraser', 'line', 'arrow', 'rect', 'ellipse', 'text', 'laser']) used.add(`board.tool.${tool}`);
  for (const c of ['forbidden', 'rate_limited', 'limit_exceeded', 'not_found', 'other']) used.add(`board.error.${c}`);
  for (const k of ['single', 'multiple', 'yes_no', 'quick_abcd']) used.add(`poll.kind.${k}`);
  for (const s of ['open', 'closed', 'published']) used.add(`poll.state.${s}`);
  for (const c of ['forbidden', 'not_found', 'poll_closed', 'poll_already_open', 'limit_exceeded', 'invalid', 'other']) used.add(`poll.serverError.${c}`);
  for (const kind of ['invite', 'pupil']) {
    for (const k of ['heading', 'unavailable', 'copy', 'qrLabel', 'label', 'hint']) used.add(`teacher.${kind}.${k}`);
  }
  used.delete('tandem.lang');
  for (const key of used) {
    if (key.startsWith('tandem.')) continue; // localStorage keys
    assert.ok(key in en, `missing key ${key}`);
  }
  assert.ok(used.size > 100, `found only ${used.size} keys: the scan is broken`);
});

test('lookup falls back to English, then to the key itself', () => {
  const t = createTranslator({ en: { 'a.b': 'Hello {name}', 'only.en': 'English only' }, 'zh-CN': { 'a.b': '你好 {name}' } }, 'zh-CN');
  assert.equal(t('a.b', { name: '李老师' }), '你好 李老师');
  assert.equal(t('only.en'), 'English only');
  assert.equal(t('no.such'), 'no.such');
  t.setLang('en');
  assert.equal(t('a.b', { name: 'Ms Li' }), 'Hello Ms Li');
  assert.throws(() => t.setLang('fr'));
});

test('interpolation fills known placeholders and leaves unknown ones visible', () => {
  assert.equal(interpolate('{a} and {b}', { a: 1 }), '1 and {b}');
  assert.equal(interpolate('Classrooms ({count})', { count: 0 }), 'Classrooms (0)');
});

test('the language comes from the stored choice, then the browser, then English', () => {
  assert.equal(pickLanguage('zh-CN', ['en-US']), 'zh-CN');
  assert.equal(pickLanguage(null, ['zh-TW', 'en']), 'zh-CN');
  assert.equal(pickLanguage(null, ['fr-FR', 'en-GB']), 'en');
  assert.equal(pickLanguage('klingon', ['de']), 'en');
  assert.equal(pickLanguage(undefined, []), 'en');
});
