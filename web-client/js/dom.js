// A tiny element builder. Text that people read is given as i18n keys, so a language switch can
// re-label the page in place (see i18n.applyTranslations).

import { translateElement } from './i18n.js';

/**
 * h('button', {i18n: 'teacher.end', testid: 'end-class', onclick}, ...children)
 * Props: i18n (text key), i18nParams (object), i18nAttr ({'aria-label': key}), testid, class,
 * on<event> handlers, dataset, and anything else as an attribute/property.
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value == null || value === false) continue;
    if (key === 'i18n') el.dataset.i18n = value;
    else if (key === 'i18nParams') el.dataset.i18nParams = JSON.stringify(value);
    else if (key === 'i18nAttr') el.dataset.i18nAttr = Object.entries(value).map(([a, k]) => `${a}:${k}`).join(';');
    else if (key === 'testid') el.dataset.testid = value;
    else if (key === 'class') el.className = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    // Through the CSSOM, not a style attribute: the page's CSP allows no inline style.
    else if (key === 'style') setStyle(el, value);
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key in el && typeof value !== 'string') el[key] = value;
    else el.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  if (el.dataset.i18n || el.dataset.i18nAttr) translateElement(el);
  return el;
}

/** Set `prop: value; …` declarations on an element (custom properties included). */
export function setStyle(el, declarations) {
  for (const declaration of String(declarations).split(';')) {
    const colon = declaration.indexOf(':');
    if (colon > 0) el.style.setProperty(declaration.slice(0, colon).trim(), declaration.slice(colon + 1).trim());
  }
}

/** Change an element's translated text (key and params) and re-label it now. */
export function setText(el, key, params) {
  el.dataset.i18n = key;
  if (params) el.dataset.i18nParams = JSON.stringify(params);
  else delete el.dataset.i18nParams;
  translateElement(el);
}

/** Change a translated attribute (e.g. aria-label) of an element. */
export function setAttrText(el, attr, key, params) {
  const pairs = new Map((el.dataset.i18nAttr || '').split(';').filter(Boolean).map((p) => p.split(':')));
  pairs.set(attr, key);
  el.dataset.i18nAttr = [...pairs].map(([a, k]) => `${a}:${k}`).join(';');
  if (params) el.dataset.i18nParams = JSON.stringify(params);
  translateElement(el);
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}
