// Screens for failures a person can hit opening a link or during a class.

import { messageScreen } from './ui.js';
import { getClass } from './api.js';

/** For an ApiError kind or a fatal WebSocket code. */
export function showFailure(root, kind, { retry } = {}) {
  const known = ['unauthorized', 'ended', 'class_ended', 'not_found', 'unreachable', 'bad_request', 'bad_message'];
  const k = kind === 'class_ended' ? 'ended' : (known.includes(kind) ? kind : 'server');
  const actions = [];
  if (retry && (k === 'unreachable' || k === 'server')) actions.push({ i18n: 'action.retry', onclick: retry, testid: 'retry', primary: true });
  actions.push({ i18n: 'action.home', href: '/', testid: 'go-home' });
  messageScreen(root, {
    title: `failure.${k}.title`,
    body: `failure.${k}.body`,
    actions,
    tone: k === 'ended' ? 'info' : 'error',
    testid: k === 'ended' ? 'class-ended' : `failure-${k}`,
  });
}

/**
 * The class a page was opened for: shows "loading", then resolves to the class info, or shows
 * why it cannot be joined (with `retry` where trying again may help, or "class ended") and
 * resolves to null.
 */
export async function openClass(root, { classId, token, retry }) {
  messageScreen(root, { title: 'common.loading', testid: 'loading' });
  let info;
  try {
    info = await getClass(classId, token);
  } catch (err) {
    showFailure(root, err.kind, { retry });
    return null;
  }
  if (info.state === 'ended') {
    showFailure(root, 'ended');
    return null;
  }
  return info;
}
