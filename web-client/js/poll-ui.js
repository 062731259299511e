// Polls on screen: the teacher's poll panel (start, live counts, close, publish), the vote card of a
// classroom or a pupil, and the result bar chart every screen shows once the teacher publishes.

import { h, setText, clear } from './dom.js';
import { t, onLanguageChange } from './i18n.js';
import { announce } from './ui.js';
import {
  POLL_KINDS, TIMER_CHOICES, buildPollSpec, chartRows, formatClock, optionLabels, secondsLeft,
  teacherPanelState, toggleChoice, voteCardState,
} from './poll-model.js';

/** A horizontal bar chart: one row per option with its votes and share of the voters. */
export function resultChart(labels, counts, votersTotal, { testid = 'poll-chart', captionKey = 'poll.votersTotal' } = {}) {
  const rows = chartRows(labels, counts, votersTotal);
  const max = Math.max(1, ...rows.map((r) => r.count));
  return h('figure', { class: 'poll-chart', testid },
    h('ul', { class: 'bars' }, rows.map((r, i) => h('li', { class: 'bar-row', testid: 'poll-bar', dataset: { index: String(i), count: String(r.count) } },
      h('span', { class: 'bar-label' }, r.label),
      h('span', { class: 'bar-track', 'aria-hidden': 'true' }, h('span', { class: 'bar-fill', style: `width: ${(100 * r.count) / max}%` })),
      h('span', { class: 'bar-value', i18n: 'poll.votes', i18nParams: { count: r.count, percent: r.percent } })))),
    h('figcaption', { i18n: captionKey, i18nParams: { count: votersTotal } }));
}

function kindKey(kind) { return `poll.kind.${kind}`; }

/** A one-second ticker while `active()` says so; calls `fn` each second. */
function ticker(fn) {
  let timer = null;
  return {
    run(active) {
      if (active && !timer) timer = setInterval(fn, 1000);
      if (!active && timer) { clearInterval(timer); timer = null; }
    },
  };
}

export function teacherPollPanel(live) {
  const question = h('input', { id: 'poll-question', testid: 'poll-question' });
  const kind = h('select', { id: 'poll-kind', testid: 'poll-kind' }, POLL_KINDS.map((k) => h('option', { value: k, i18n: kindKey(k) })));
  const options = h('textarea', { id: 'poll-options', rows: '4', testid: 'poll-options', 'aria-describedby': 'poll-options-hint' });
  const optionsField = h('div', { class: 'field' },
    h('label', { for: 'poll-options', i18n: 'poll.optionsLabel' }), options,
    h('p', { class: 'hint', id: 'poll-options-hint', i18n: 'poll.optionsHint' }));
  const timer = h('select', { id: 'poll-timer', testid: 'poll-timer' },
    TIMER_CHOICES.map((s) => h('option', { value: String(s), i18n: s ? 'poll.timerSecs' : 'poll.timerNone', i18nParams: s ? { time: formatClock(s) } : undefined })));
  const anonymous = h('input', { type: 'checkbox', id: 'poll-anonymous', checked: true, testid: 'poll-anonymous' });
  const formError = h('p', { class: 'form-error', role: 'alert', hidden: true, testid: 'poll-form-error' });
  const form = h('form', { class: 'poll-form', testid: 'poll-form', novalidate: true },
    h('div', { class: 'field' }, h('label', { for: 'poll-question', i18n: 'poll.questionLabel' }), question),
    h('div', { class: 'field' }, h('label', { for: 'poll-kind', i18n: 'poll.kindLabel' }), kind),
    optionsField,
    h('div', { class: 'field' }, h('label', { for: 'poll-timer', i18n: 'poll.timerLabel' }), timer),
    h('div', { class: 'check' }, anonymous, h('label', { for: 'poll-anonymous', i18n: 'poll.anonymousLabel' })),
    h('p', { class: 'hint', i18n: 'poll.anonymousHint' }),
    formError,
    h('button', { type: 'submit', class: 'primary', i18n: 'poll.start', testid: 'poll-start' }));
  const syncKind = () => { optionsField.hidden = !(kind.value === 'single' || kind.value === 'multiple'); };
  kind.addEventListener('change', syncKind);
  // The question box takes no more than the server accepts (its limit arrives with `welcome`).
  const applyLimits = () => {
    if (live.state.limits) question.maxLength = live.state.limits.max_poll_question_chars;
  };
  live.addEventListener('change', applyLimits);
  applyLimits();
  syncKind();
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const { spec, error } = buildPollSpec({ question: question.value, kind: kind.value, optionsText: options.value, timerSecs: timer.value, anonymous: anonymous.checked }, live.state.limits);
    if (error) {
      setText(formError, error);
      formError.hidden = false;
      (error.startsWith('poll.error.question') ? question : options).focus();
      return;
    }
    formError.hidden = true;
    if (!live.pollStart(spec)) { setText(formError, 'poll.error.offline'); formError.hidden = false; }
  });

  const running = h('div', { class: 'poll-running', testid: 'poll-running' });
  const message = h('p', { class: 'form-error', role: 'alert', hidden: true, testid: 'poll-error' });
  const panel = h('section', { class: 'card poll-panel', 'aria-labelledby': 'poll-heading', testid: 'poll-panel' },
    h('h2', { id: 'poll-heading', i18n: 'poll.heading' }), form, running, message);
  let showForm = false;
  let shownKey = '';
  const tick = ticker(() => render());

  function render() {
    const s = teacherPanelState(live.polls);
    const formVisible = s.view === 'form' || showForm;
    form.hidden = !formVisible;
    running.hidden = formVisible;
    tick.run(!formVisible && s.view === 'open' && s.poll.closes_at_ms != null);
    if (formVisible) { shownKey = ''; return; }
    const { poll, counts } = s;
    const left = secondsLeft(poll, Date.now());
    const key = JSON.stringify([poll, counts, left, t.lang()]);
    if (key === shownKey) return;
    const hadFocus = running.contains(document.activeElement) ? document.activeElement.dataset.testid : null;
    shownKey = key;
    clear(running);
    const labels = optionLabels(poll, t);
    running.append(
      h('p', { class: 'poll-meta' }, h('span', { class: 'badge', testid: 'poll-state', dataset: { state: poll.state }, i18n: `poll.state.${poll.state}` }), ' ',
        h('span', { i18n: kindKey(poll.kind) }), ' · ', h('span', { i18n: poll.anonymous ? 'poll.anonymous' : 'poll.named' }),
        left != null && poll.state === 'open' ? h('span', { class: 'countdown', testid: 'poll-countdown', i18n: 'poll.timeLeft', i18nParams: { time: formatClock(left) } }) : null),
      h('h3', { class: 'poll-question', testid: 'poll-running-question' }, poll.question),
      resultChart(labels, counts.counts, counts.voters_total, { testid: 'poll-live-chart', captionKey: 'poll.votersTotal' }),
      h('p', { class: 'voters-total', testid: 'poll-voters-total', dataset: { count: String(counts.voters_total) }, i18n: 'poll.votedSoFar', i18nParams: { count: counts.voters_total } }));
    if (s.results && s.results.voters) {
      running.append(h('details', { class: 'poll-voters' }, h('summary', { i18n: 'poll.whoVoted' }),
        h('ul', {}, s.results.voters.map((v) => h('li', {}, `${v.display_name}: ${v.choices.map((c) => labels[c]).join(', ')}`)))));
    }
    const actions = h('div', { class: 'actions' });
    if (poll.state === 'open') actions.append(h('button', { type: 'button', i18n: 'poll.close', testid: 'poll-close', onclick: () => live.pollClose(poll.poll_id) }));
    if (poll.state !== 'published') actions.append(h('button', { type: 'button', class: 'primary', i18n: 'poll.publish', testid: 'poll-publish', onclick: () => live.pollPublish(poll.poll_id) }));
    if (poll.state !== 'open') actions.append(h('button', { type: 'button', i18n: 'poll.new', testid: 'poll-new', onclick: () => { showForm = true; render(); question.value = ''; question.focus(); } }));
    running.append(actions);
    if (hadFocus) running.querySelector(`[data-testid="${hadFocus}"]`)?.focus();
  }

  let lastState = null;
  live.addEventListener('polls', () => {
    const s = teacherPanelState(live.polls);
    const stateKey = s.poll ? `${s.poll.poll_id}:${s.poll.state}` : 'none';
    if (stateKey !== lastState) {
      if (s.poll && s.poll.state === 'open' && lastState !== null) { showForm = false; announce('poll.started'); }
      if (s.poll && s.poll.state === 'open') showForm = false;
      lastState = stateKey;
    }
    message.hidden = true;
    render();
  });
  live.addEventListener('poll-error', (e) => {
    setText(message, `poll.serverError.${['forbidden', 'not_found', 'poll_closed', 'poll_already_open', 'limit_exceeded', 'invalid'].includes(e.detail.code) ? e.detail.code : 'other'}`);
    message.hidden = false;
  });
  onLanguageChange(() => { shownKey = ''; render(); });
  render();
  return panel;
}

/**
 * The vote card of a remote classroom or a pupil: waiting, open (choose and vote), voted (can
 * change), closed, result (bar chart). `session` has `polls`, `pollVote` and `polls`/`poll-error`
 * events.
 */
export function voteCard(session, { pupil = false } = {}) {
  const card = h('section', { class: 'card vote-card', 'aria-labelledby': 'vote-heading', testid: 'vote-card' });
  const body = h('div', { class: 'vote-body' });
  const message = h('p', { class: 'form-error', role: 'alert', hidden: true, testid: 'vote-error' });
  card.append(h('h2', { id: 'vote-heading', i18n: pupil ? 'vote.headingPupil' : 'vote.heading' }), body, message);
  let choices = [];
  let choicesFor = null;
  let changing = false;
  let shownKey = '';
  const tick = ticker(() => render());

  function render() {
    const s = voteCardState(session.polls, Date.now());
    card.dataset.view = s.view;
    const poll = s.poll;
    if (poll && choicesFor !== poll.poll_id) { choicesFor = poll.poll_id; choices = s.mine ? [...s.mine] : []; changing = false; }
    const left = poll ? secondsLeft(poll, Date.now()) : null;
    tick.run(!!poll && poll.state === 'open' && left != null);
    const key = JSON.stringify([s, choices, changing, left, t.lang()]);
    if (key === shownKey) return;
    const focused = body.contains(document.activeElement) ? (document.activeElement.id || document.activeElement.dataset.testid) : null;
    shownKey = key;
    clear(body);
    body.dataset.view = s.view;
    if (s.view === 'waiting') {
      body.append(h('p', { class: 'vote-status', testid: 'vote-waiting', i18n: 'vote.waiting' }));
      return;
    }
    const labels = optionLabels(poll, t);
    body.append(h('h3', { class: 'poll-question', testid: 'vote-question' }, poll.question));
    if (s.view === 'result') {
      const r = s.results;
      body.append(h('p', { class: 'vote-status', testid: 'vote-result-title', i18n: 'vote.result' }));
      if (r) body.append(resultChart(labels, r.counts, r.voters_total, { testid: 'poll-result-chart' }));
      return;
    }
    if (s.view === 'closed') {
      body.append(h('p', { class: 'vote-status', testid: 'vote-closed', i18n: 'vote.closed' }));
      if (s.mine) body.append(h('p', { i18n: 'vote.yourVote', i18nParams: { choice: s.mine.map((c) => labels[c]).join(', ') } }));
      return;
    }
    if (left != null) body.append(h('p', { class: 'countdown', testid: 'vote-countdown', i18n: 'poll.timeLeft', i18nParams: { time: formatClock(left) } }));
    if (s.view === 'voted' && !changing) {
      body.append(
        h('p', { class: 'vote-status voted', testid: 'vote-done', i18n: 'vote.yourVote', i18nParams: { choice: s.mine.map((c) => labels[c]).join(', ') } }),
        h('p', { class: 'hint', i18n: 'vote.changeHint' }),
        h('button', { type: 'button', i18n: 'vote.change', testid: 'vote-change', onclick: () => { changing = true; render(); body.querySelector('input')?.focus(); } }));
      return;
    }
    const multiple = poll.kind === 'multiple';
    const name = `vote-${poll.poll_id}`;
    const fieldset = h('fieldset', { class: 'vote-options' },
      h('legend', { i18n: multiple ? 'vote.chooseMany' : 'vote.chooseOne' }),
      labels.map((label, i) => {
        const id = `${name}-${i}`;
        const input = h('input', { type: multiple ? 'checkbox' : 'radio', name, id, value: String(i), checked: choices.includes(i), testid: 'vote-option',
          onchange: () => { choices = toggleChoice(poll.kind, choices, i); render(); } });
        return h('div', { class: 'vote-option' }, input, h('label', { for: id }, label));
      }));
    const submit = h('button', { type: 'submit', class: 'primary', i18n: s.view === 'voted' ? 'vote.submitChange' : 'vote.submit', testid: 'vote-submit', disabled: choices.length === 0 });
    const form = h('form', { class: 'vote-form', testid: 'vote-form' }, fieldset, submit);
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      if (choices.length === 0) return;
      if (!session.pollVote(poll.poll_id, choices)) { setText(message, 'vote.offline'); message.hidden = false; return; }
      message.hidden = true;
      changing = false;
    });
    body.append(form);
    if (focused) (document.getElementById(focused) || body.querySelector(`[data-testid="${focused}"]`))?.focus();
  }

  let lastKey = null;
  session.addEventListener('polls', () => {
    const s = voteCardState(session.polls, Date.now());
    const key = s.poll ? `${s.poll.poll_id}:${s.view}` : 'none';
    if (key !== lastKey && lastKey !== null) {
      if (s.view === 'open') announce('vote.announceOpen', { question: s.poll.question });
      else if (s.view === 'voted') announce('vote.announceVoted');
      else if (s.view === 'closed') announce('vote.announceClosed');
      else if (s.view === 'result') announce('vote.announceResult');
    }
    lastKey = key;
    message.hidden = true;
    render();
  });
  session.addEventListener('poll-error', (e) => {
    setText(message, e.detail.code === 'poll_closed' ? 'vote.closedError' : 'vote.error');
    message.hidden = false;
    render();
  });
  onLanguageChange(() => { shownKey = ''; render(); });
  render();
  return card;
}
