// Polls as a screen knows them: a pure reducer over the poll messages, and the small decisions the
// poll panel, the vote card and the result chart make. No DOM, no I/O.

export const POLL_KINDS = ['single', 'multiple', 'yes_no', 'quick_abcd'];
export const TIMER_CHOICES = [0, 30, 60, 120, 300];

/** {polls: {id: poll}, counts: {id: {counts, voters_total}}, results: {id: results}, mine: {id: choices}} */
export function initialPolls() {
  return { polls: {}, counts: {}, results: {}, mine: {} };
}

/** Apply one server message; returns a new state (or the same one when nothing changed). */
export function reducePolls(state, m) {
  switch (m.type) {
    case 'welcome':
      // After every (re)join the server sends every poll again, oldest first.
      return initialPolls();
    case 'poll':
      return { ...state, polls: { ...state.polls, [m.poll.poll_id]: { ...m.poll } } };
    case 'poll_counts':
      return { ...state, counts: { ...state.counts, [m.poll_id]: { counts: [...m.counts], voters_total: m.voters_total } } };
    case 'poll_voted':
      return { ...state, mine: { ...state.mine, [m.poll_id]: [...m.choices] } };
    case 'poll_result': {
      const r = m.results;
      const id = r.poll.poll_id;
      return {
        ...state,
        polls: { ...state.polls, [id]: { ...r.poll } },
        results: { ...state.results, [id]: structuredClone(r) },
        counts: { ...state.counts, [id]: { counts: [...r.counts], voters_total: r.voters_total } },
      };
    }
    default:
      return state;
  }
}

/** The newest poll, or null. */
export function latestPoll(state) {
  const ids = Object.keys(state.polls).map(Number).sort((a, b) => a - b);
  return ids.length ? state.polls[ids[ids.length - 1]] : null;
}

/** Whether the poll takes votes at `nowMs` (open and its timer not run out). */
export function acceptsVotes(poll, nowMs) {
  return !!poll && poll.state === 'open' && (poll.closes_at_ms == null || nowMs < poll.closes_at_ms);
}

/** Whole seconds left on the poll's timer, or null without a timer. */
export function secondsLeft(poll, nowMs) {
  if (!poll || poll.closes_at_ms == null) return null;
  return Math.max(0, Math.ceil((poll.closes_at_ms - nowMs) / 1000));
}

/** `m:ss` for a countdown. */
export function formatClock(secs) {
  const s = Math.max(0, Math.floor(secs));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/**
 * What a voter's card shows: `waiting` (no poll yet), `open` (vote now), `voted` (vote stored,
 * still changeable), `closed` (no more votes, result not shown yet), `result` (published).
 */
export function voteCardState(state, nowMs) {
  const poll = latestPoll(state);
  if (!poll) return { view: 'waiting', poll: null };
  if (poll.state === 'published') return { view: 'result', poll, results: state.results[poll.poll_id] || null };
  if (!acceptsVotes(poll, nowMs)) return { view: 'closed', poll, mine: state.mine[poll.poll_id] || null };
  const mine = state.mine[poll.poll_id] || null;
  return { view: mine ? 'voted' : 'open', poll, mine };
}

/** What the teacher's panel shows: `form` (start a poll) or the poll being run. */
export function teacherPanelState(state) {
  const poll = latestPoll(state);
  if (!poll) return { view: 'form', poll: null };
  const counts = state.counts[poll.poll_id] || { counts: poll.options.map(() => 0), voters_total: 0 };
  return { view: poll.state, poll, counts, results: state.results[poll.poll_id] || null };
}

/** Choosing option `i`: one choice for single-choice kinds, a toggle for multiple choice. */
export function toggleChoice(kind, choices, i) {
  if (kind !== 'multiple') return [i];
  const set = new Set(choices);
  if (set.has(i)) set.delete(i); else set.add(i);
  return [...set].sort((a, b) => a - b);
}

/** Option labels to show: yes/no and A–D polls with the server's default labels are translated. */
export function optionLabels(poll, t) {
  if (poll.kind === 'yes_no' && poll.options.length === 2 && poll.options[0] === 'Yes' && poll.options[1] === 'No') {
    return [t('poll.yes'), t('poll.no')];
  }
  return [...poll.options];
}

/**
 * The teacher's form → a `poll_start` spec, or {error: i18n key}. `optionsText`: one option per line
 * (single and multiple choice only). `limits`: the server's, from `welcome` (`max_poll_options`,
 * `max_poll_question_chars`, `max_poll_option_chars`).
 */
export function buildPollSpec({ question, kind, optionsText = '', timerSecs = 0, anonymous = true }, limits) {
  const q = String(question || '').trim();
  if (!POLL_KINDS.includes(kind)) return { error: 'poll.error.kind' };
  if (!q) return { error: 'poll.error.question' };
  if (q.length > limits.max_poll_question_chars) return { error: 'poll.error.questionLong' };
  const spec = { question: q, kind, anonymous: !!anonymous };
  if (kind === 'single' || kind === 'multiple') {
    const options = String(optionsText).split('\n').map((s) => s.trim()).filter(Boolean);
    if (options.length < 2) return { error: 'poll.error.fewOptions' };
    if (options.length > limits.max_poll_options) return { error: 'poll.error.manyOptions' };
    if (options.some((o) => o.length > limits.max_poll_option_chars)) return { error: 'poll.error.optionLong' };
    if (new Set(options).size !== options.length) return { error: 'poll.error.duplicate' };
    spec.options = options;
  }
  const timer = Number(timerSecs) || 0;
  if (timer > 0) spec.timer_secs = timer;
  return { spec };
}

/** Bars for a chart: [{label, count, percent}] with percent of the voters (rounded). */
export function chartRows(labels, counts, votersTotal) {
  return labels.map((label, i) => {
    const count = counts[i] || 0;
    const percent = votersTotal > 0 ? Math.round((100 * count) / votersTotal) : 0;
    return { label, count, percent };
  });
}
