// Pieces every page uses: the language selector, the announcer (live region), message screens,
// video helpers.

import { h, setText, clear } from './dom.js';
import { LANGUAGES, setLanguage, t } from './i18n.js';

export function languageSelector() {
  const select = h('select', {
    id: 'language-select',
    testid: 'language-select',
    onchange: (e) => setLanguage(e.target.value),
  }, LANGUAGES.map((lang) => h('option', { value: lang, i18n: `language.${lang}` })));
  select.value = t.lang();
  return h('div', { class: 'language' },
    h('label', { for: 'language-select', i18n: 'language.label' }),
    select);
}

/** Say something in the polite live region (and the visible status line, if the page has one). */
export function announce(key, params) {
  const region = document.getElementById('announcer');
  if (region) setText(region, key, params);
}

/**
 * Replace `root` with a message screen: a heading, a paragraph, and buttons.
 * actions: [{i18n, onclick, testid, primary}]
 */
export function messageScreen(root, { title, body, params, actions = [], testid = 'message', tone = 'info' }) {
  clear(root);
  const heading = h('h1', { i18n: title, i18nParams: params, tabindex: '-1' });
  root.append(h('section', { class: `message-screen tone-${tone}`, testid, role: tone === 'error' ? 'alert' : 'status' },
    heading,
    body ? h('p', { i18n: body, i18nParams: params }) : null,
    actions.length ? h('div', { class: 'actions' }, actions.map((a) => h(a.href ? 'a' : 'button', {
      class: a.primary ? 'primary' : '',
      type: a.href ? undefined : 'button',
      href: a.href,
      i18n: a.i18n,
      testid: a.testid,
      onclick: a.onclick,
    }))) : null));
  heading.focus();
}

/** Show a stream in a video element (only when it changed, so playback does not restart). */
export function attachStream(el, stream) {
  if (el.srcObject === stream) return;
  el.srcObject = stream || null;
  if (stream) el.play().catch(() => { /* autoplay refused; muted video still starts on its own */ });
}

export function videoElement({ muted = true, testid, label, labelParams, mirrored = false } = {}) {
  return h('video', {
    autoplay: true,
    playsInline: true,
    muted,
    class: mirrored ? 'mirrored' : '',
    testid,
    i18nAttr: label ? { 'aria-label': label } : undefined,
    i18nParams: labelParams,
  });
}

/** A level meter element driven by media.animateMeter (CSS var --level). */
export function levelMeter({ label, labelParams, testid } = {}) {
  return h('div', {
    class: 'level-meter',
    role: 'meter',
    'aria-valuemin': '0',
    'aria-valuemax': '100',
    'aria-valuenow': '0',
    testid,
    i18nAttr: label ? { 'aria-label': label } : undefined,
    i18nParams: labelParams,
  }, h('span', { class: 'level-fill' }));
}
