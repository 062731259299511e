// The home page: "Start a class" (title, teacher name) → POST /api/classes → the teacher page.

import { h, setText, clear } from './dom.js';
import { createClass, serverInfo } from './api.js';
import { announce } from './ui.js';

const NAME_KEY = 'tandem.teacherName';

export function renderHome(root) {
  let savedName = '';
  try { savedName = localStorage.getItem(NAME_KEY) || ''; } catch { /* private mode */ }
  const title = h('input', { id: 'class-title', name: 'title', required: true, maxlength: '200', autocomplete: 'off', testid: 'class-title' });
  const name = h('input', { id: 'teacher-name', name: 'teacher_name', required: true, maxlength: '200', autocomplete: 'name', testid: 'teacher-name', value: savedName });
  // Shown only when the server asks for its key to start a class (`--create-key`).
  const key = h('input', { id: 'create-key', name: 'create_key', type: 'password', autocomplete: 'current-password', testid: 'create-key' });
  const keyField = h('div', { class: 'field', hidden: true, testid: 'create-key-field' },
    h('label', { for: 'create-key', i18n: 'home.keyLabel' }), key,
    h('p', { class: 'hint', id: 'create-key-hint', i18n: 'home.keyHint' }));
  key.setAttribute('aria-describedby', 'create-key-hint');
  let keyRequired = false;
  serverInfo().then((info) => {
    keyRequired = Boolean(info && info.create_key_required);
    keyField.hidden = !keyRequired;
  }).catch(() => { /* an old server or a blip: creation will say what is wrong */ });
  const error = h('p', { class: 'form-error', role: 'alert', testid: 'form-error', hidden: true });
  const submit = h('button', { type: 'submit', class: 'primary', i18n: 'home.start', testid: 'start-class' });

  const form = h('form', { class: 'card start-form', testid: 'start-form', novalidate: true },
    h('h1', { i18n: 'home.heading' }),
    h('p', { class: 'lead', i18n: 'home.intro' }),
    h('div', { class: 'field' }, h('label', { for: 'class-title', i18n: 'home.titleLabel' }), title,
      h('p', { class: 'hint', id: 'class-title-hint', i18n: 'home.titleHint' })),
    h('div', { class: 'field' }, h('label', { for: 'teacher-name', i18n: 'home.nameLabel' }), name),
    keyField,
    error,
    submit);
  title.setAttribute('aria-describedby', 'class-title-hint');

  function showError(key) {
    setText(error, key);
    error.hidden = false;
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.hidden = true;
    const titleValue = title.value.trim();
    const nameValue = name.value.trim();
    if (!titleValue) { showError('home.error.titleMissing'); title.focus(); return; }
    if (!nameValue) { showError('home.error.nameMissing'); name.focus(); return; }
    if (keyRequired && !key.value) { showError('home.error.keyMissing'); key.focus(); return; }
    submit.disabled = true;
    setText(submit, 'home.starting');
    announce('home.starting');
    try {
      const created = await createClass({ title: titleValue, teacherName: nameValue, createKey: keyRequired ? key.value : '' });
      try {
        localStorage.setItem(NAME_KEY, nameValue);
        // A fallback for the teacher page's links (it asks the server for them first).
        localStorage.setItem(`tandem.invite.${created.class_id}`, created.invite_url);
        if (created.pupil_url) localStorage.setItem(`tandem.pupil.${created.class_id}`, created.pupil_url);
      } catch { /* private mode: the teacher page says the link is unavailable */ }
      location.assign(created.teacher_url);
    } catch (err) {
      const kind = err.kind === 'unauthorized' && keyRequired ? 'wrongKey' : (err.kind || 'server');
      showError(`home.error.${kind}`);
      if (kind === 'wrongKey') { keyField.hidden = false; key.focus(); }
      submit.disabled = false;
      setText(submit, 'home.start');
    }
  });

  clear(root);
  root.append(form);
  title.focus();
}
