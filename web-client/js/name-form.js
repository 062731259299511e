// "Who is this?": the name form a classroom or a pupil fills in before joining. The name is kept
// in localStorage so the next lesson starts with it.

import { h, clear } from './dom.js';

/**
 * Shows the form in `root` and resolves to the trimmed name.
 * `form` names what differs between pages: `storageKey`, `inputId` (also the input's test id),
 * `maxlength`, `autocomplete`, `testid` of the form and `continueTestid` of its button, and the
 * i18n `keys` { heading, intro, label, hint, missing, continue } (heading and intro get the class
 * title and the teacher's name).
 */
export function askName(root, info, form) {
  const { storageKey, inputId, maxlength, autocomplete, testid, continueTestid, keys } = form;
  return new Promise((resolve) => {
    let saved = '';
    try { saved = localStorage.getItem(storageKey) || ''; } catch { /* private mode */ }
    const hintId = `${inputId}-hint`;
    const input = h('input', { id: inputId, required: true, maxlength, autocomplete, value: saved, testid: inputId, 'aria-describedby': hintId });
    const error = h('p', { class: 'form-error', role: 'alert', hidden: true, i18n: keys.missing });
    const el = h('form', { class: 'card start-form', testid, novalidate: true },
      h('h1', { i18n: keys.heading, i18nParams: { title: info.title } }),
      h('p', { class: 'lead', i18n: keys.intro, i18nParams: { teacher: info.teacher_name } }),
      h('div', { class: 'field' },
        h('label', { for: inputId, i18n: keys.label }), input,
        h('p', { class: 'hint', id: hintId, i18n: keys.hint })),
      error,
      h('button', { type: 'submit', class: 'primary', i18n: keys.continue, testid: continueTestid }));
    el.addEventListener('submit', (e) => {
      e.preventDefault();
      const value = input.value.trim();
      if (!value) {
        error.hidden = false;
        input.focus();
        return;
      }
      try { localStorage.setItem(storageKey, value); } catch { /* private mode */ }
      resolve(value);
    });
    clear(root);
    root.append(el);
    input.focus();
  });
}
