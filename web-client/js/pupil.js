// The pupil voting page (`/vote/{class_id}#token=…`, opened from the teacher's QR code on a pupil's
// own phone or tablet): a name, then the open poll. Vote only: no camera, no microphone, no media
// connection at all.

import { h, clear } from './dom.js';
import { getClass } from './api.js';
import { SignalingClient, msg, wsUrl } from './protocol.js';
import { initialState, reduce } from './state.js';
import { initialPolls, reducePolls } from './poll-model.js';
import { messageScreen } from './ui.js';
import { showFailure } from './errors.js';
import { statusPill, connectStatus } from './status.js';
import { voteCard } from './poll-ui.js';

const NAME_KEY = 'tandem.pupilName';

/** A signaling connection that only follows polls and votes (same events as LiveSession). */
export class PupilSession extends EventTarget {
  constructor({ token, name }) {
    super();
    this.state = initialState();
    this.polls = initialPolls();
    this.quality = { byClassroom: {}, overall: 'unknown' };
    this.signaling = new SignalingClient({ url: wsUrl(location), token, name });
    this.signaling.addEventListener('welcome', (e) => this.#onMessage(e.detail));
    this.signaling.addEventListener('message', (e) => this.#onMessage(e.detail));
    this.signaling.addEventListener('status', (e) => this.#emit('status', e.detail));
    this.signaling.addEventListener('retry', (e) => this.#emit('retry', e.detail));
    this.signaling.addEventListener('fatal', (e) => this.#emit(e.detail.code === 'class_ended' ? 'ended' : 'fatal', e.detail));
  }

  start() { this.signaling.connect(); }
  get status() { return this.signaling.status; }
  stats() { return Promise.resolve([]); }
  leave() { this.signaling.leave(); }

  #emit(type, detail) {
    this.dispatchEvent(Object.assign(new Event(type), { detail }));
  }

  #onMessage(m) {
    this.state = reduce(this.state, m);
    const polls = reducePolls(this.polls, m);
    if (polls !== this.polls) {
      this.polls = polls;
      this.#emit('polls', { polls });
    }
    if (m.type === 'class_ended' || (m.type === 'error' && m.code === 'class_ended')) {
      this.signaling.close();
      this.#emit('ended', {});
    } else if (m.type === 'error' && m.in_reply_to === 'poll_vote') {
      this.#emit('poll-error', m);
    }
  }

  pollVote(pollId, choices) { return this.signaling.send(msg.pollVote(pollId, choices)); }
}

export async function renderPupil(root, { classId, token, onLive }) {
  messageScreen(root, { title: 'common.loading', testid: 'loading' });
  let info;
  try {
    info = await getClass(classId, token);
  } catch (err) {
    showFailure(root, err.kind, { retry: () => renderPupil(root, { classId, token, onLive }) });
    return;
  }
  if (info.state === 'ended') {
    showFailure(root, 'ended');
    return;
  }
  const name = await askName(root, info);
  const session = new PupilSession({ token, name });
  onLive(session);
  clear(root);
  root.append(h('section', { class: 'pupil', testid: 'pupil-live' },
    h('header', { class: 'live-bar' },
      h('div', {}, h('h1', { class: 'class-title', testid: 'class-title' }, info.title),
        h('p', { class: 'subtitle', i18n: 'pupil.subtitle', i18nParams: { name, teacher: info.teacher_name } })),
      statusPill()),
    h('p', { class: 'banner', role: 'status', testid: 'link-banner', hidden: true }),
    voteCard(session, { pupil: true }),
    h('p', { class: 'hint', i18n: 'pupil.privacy' })));
  connectStatus(session, root.querySelector('[data-testid="connection-status"]'), root.querySelector('[data-testid="link-banner"]'));
  session.addEventListener('fatal', (e) => showFailure(root, e.detail.code));
  session.addEventListener('ended', () => showFailure(root, 'ended'));
  session.start();
}

function askName(root, info) {
  return new Promise((resolve) => {
    let saved = '';
    try { saved = localStorage.getItem(NAME_KEY) || ''; } catch { /* private mode */ }
    const input = h('input', { id: 'pupil-name', required: true, maxlength: '100', autocomplete: 'given-name', value: saved, testid: 'pupil-name', 'aria-describedby': 'pupil-name-hint' });
    const error = h('p', { class: 'form-error', role: 'alert', hidden: true, i18n: 'pupil.nameMissing' });
    const form = h('form', { class: 'card start-form', testid: 'pupil-form', novalidate: true },
      h('h1', { i18n: 'pupil.heading', i18nParams: { title: info.title } }),
      h('p', { class: 'lead', i18n: 'pupil.intro', i18nParams: { teacher: info.teacher_name } }),
      h('div', { class: 'field' },
        h('label', { for: 'pupil-name', i18n: 'pupil.nameLabel' }), input,
        h('p', { class: 'hint', id: 'pupil-name-hint', i18n: 'pupil.nameHint' })),
      error,
      h('button', { type: 'submit', class: 'primary', i18n: 'pupil.continue', testid: 'pupil-continue' }));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const value = input.value.trim();
      if (!value) {
        error.hidden = false;
        input.focus();
        return;
      }
      try { localStorage.setItem(NAME_KEY, value); } catch { /* private mode */ }
      resolve(value);
    });
    clear(root);
    root.append(form);
    input.focus();
  });
}
