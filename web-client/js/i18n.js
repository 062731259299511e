// Translations: lookup with fallback to English, `{name}` interpolation, language choice.
// Locale files live in /locales/<lang>.json; the DOM part marks elements with data-i18n attributes
// so a language switch re-labels the page in place, without rebuilding live video.

export const LANGUAGES = ['en', 'zh-CN'];
export const FALLBACK = 'en';
const STORAGE_KEY = 'tandem.lang';

/** Pick a supported language: the stored choice, else the browser's preferences, else English. */
export function pickLanguage(stored, preferred = []) {
  if (LANGUAGES.includes(stored)) return stored;
  for (const lang of preferred) {
    const lower = String(lang).toLowerCase();
    if (lower.startsWith('zh')) return 'zh-CN';
    if (lower.startsWith('en')) return 'en';
  }
  return FALLBACK;
}

/** Replace `{name}` placeholders; unknown placeholders stay visible rather than vanish. */
export function interpolate(template, params = {}) {
  return template.replace(/\{(\w+)\}/g, (whole, key) => (key in params ? String(params[key]) : whole));
}

/** A translator over `catalogs` = {en: {...}, 'zh-CN': {...}}. */
export function createTranslator(catalogs, lang = FALLBACK) {
  let current = lang;
  const t = (key, params) => {
    const text = catalogs[current]?.[key] ?? catalogs[FALLBACK]?.[key];
    return text == null ? key : interpolate(text, params);
  };
  t.lang = () => current;
  t.setLang = (next) => {
    if (!catalogs[next]) throw new Error(`no catalog for ${next}`);
    current = next;
  };
  return t;
}

// --- Browser side ---------------------------------------------------------------------------

const catalogs = {};
export const t = createTranslator(catalogs, FALLBACK);
const listeners = new Set();

async function loadCatalog(lang) {
  if (catalogs[lang]) return;
  const res = await fetch(`/locales/${lang}.json`, { cache: 'no-cache' });
  if (!res.ok) throw new Error(`locale ${lang}: HTTP ${res.status}`);
  catalogs[lang] = await res.json();
}

function storedLanguage() {
  try { return globalThis.localStorage?.getItem(STORAGE_KEY); } catch { return null; }
}

/** Load English (the fallback) and the chosen language; set <html lang>. */
export async function initI18n() {
  await loadCatalog(FALLBACK);
  const lang = pickLanguage(storedLanguage(), globalThis.navigator?.languages || [globalThis.navigator?.language]);
  await setLanguage(lang, { remember: false });
}

export async function setLanguage(lang, { remember = true } = {}) {
  await loadCatalog(lang);
  t.setLang(lang);
  if (remember) {
    try { globalThis.localStorage?.setItem(STORAGE_KEY, lang); } catch { /* private mode */ }
  }
  if (globalThis.document) {
    document.documentElement.lang = lang;
    applyTranslations(document);
  }
  for (const fn of listeners) fn(lang);
}

export function onLanguageChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/**
 * Re-label every element under `root` that carries:
 * - `data-i18n="key"` (text content), with optional `data-i18n-params='{"name":"…"}'`;
 * - `data-i18n-attr="aria-label:key;placeholder:key2"` (attributes, same params).
 */
export function applyTranslations(root) {
  const nodes = root.querySelectorAll('[data-i18n], [data-i18n-attr]');
  for (const el of nodes) translateElement(el);
  if (root.nodeType === 1) translateElement(root);
}

export function translateElement(el) {
  let params;
  try { params = el.dataset.i18nParams ? JSON.parse(el.dataset.i18nParams) : undefined; } catch { params = undefined; }
  if (el.dataset.i18n) el.textContent = t(el.dataset.i18n, params);
  if (el.dataset.i18nAttr) {
    for (const pair of el.dataset.i18nAttr.split(';')) {
      const [attr, key] = pair.split(':');
      if (attr && key) el.setAttribute(attr.trim(), t(key.trim(), params));
    }
  }
}
