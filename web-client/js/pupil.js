// The pupil voting page (`/vote/{class_id}#token=…`, opened from the teacher's QR code on a pupil's
// own phone or tablet): a name, then the open poll. Vote only: no camera, no microphone, no media
// connection at all.

import { h, clear } from './dom.js';
import { SignalingClient, msg, wsUrl } from './protocol.js';
import { initialState, reduce } from './state.js';
import { initialPolls, reducePolls } from './poll-model.js';
import { showFailure, openClass } from './errors.js';
import { statusPill, connectStatus } from './status.js';
import { voteCard } from './poll-ui.js';
import { askName } from './name-form.js';

const NAME_FORM = {
  storageKey: 'tandem.pupilName',
  inputId: 'pupil-name',
  maxlength: '100',
  autocomplete: 'given-name',
  testid: 'pupil-form',
  continueTestid: 'pupil-continue',
  keys: {
    heading: 'pupil.heading',
    intro: 'pupil.intro',
    label: 'pupil.nameLabel',
    hint: 'pupil.nameHint',
    missing: 'pupil.nameMissing',
    continue: 'pupil.continue',
  },
};

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
  const info = await openClass(root, { classId, token, retry: () => renderPupil(root, { classId, token, onLive }) });
  if (!info) return;
  const name = await askName(root, info, NAME_FORM);
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

