// The connection status a person sees: a pill in the page header (connecting, live, weak link,
// reconnecting), announced in the live region when it changes.

import { h, setText } from './dom.js';
import { announce } from './ui.js';

export function statusPill() {
  return h('p', { class: 'status-pill', testid: 'connection-status', dataset: { status: 'connecting' }, i18n: 'status.connecting' });
}

/** Failed connection attempts in a row after which we say the server cannot be reached. */
export const UNREACHABLE_AFTER = 4;

/**
 * What to show from the signaling status, the worst media leg state and the link quality.
 * Pure, so tests can check it: returns one of connecting, live, weak, reconnecting, unreachable, closed.
 */
export function displayStatus({ signaling, legs = [], quality = 'unknown', failedAttempts = 0 }) {
  if ((signaling === 'connecting' || signaling === 'reconnecting') && failedAttempts >= UNREACHABLE_AFTER) return 'unreachable';
  if (signaling === 'reconnecting') return 'reconnecting';
  if (signaling === 'connecting' || signaling === 'idle') return 'connecting';
  if (signaling === 'closed') return 'closed';
  if (legs.includes('failed') || legs.includes('disconnected')) return 'reconnecting';
  if (quality === 'poor') return 'weak';
  return 'live';
}

/** Keep `pill` (and optionally a banner for bad states) in step with a LiveSession. */
export function connectStatus(live, pill, banner) {
  let signaling = live.status;
  const legs = {};
  let quality = 'unknown';
  let failedAttempts = 0;
  let shown = null;
  const update = () => {
    const s = displayStatus({ signaling, legs: Object.values(legs), quality, failedAttempts });
    if (s === shown) return;
    shown = s;
    pill.dataset.status = s;
    setText(pill, `status.${s}`);
    if (banner) {
      banner.hidden = !(s === 'weak' || s === 'reconnecting' || s === 'unreachable');
      banner.dataset.status = s;
      if (!banner.hidden) setText(banner, `status.banner.${s}`);
    }
    if (s !== 'connecting') announce(`status.${s}`);
  };
  live.addEventListener('status', (e) => {
    signaling = e.detail.status;
    if (signaling === 'joined') {
      for (const k of Object.keys(legs)) delete legs[k]; // fresh legs after a resume
      failedAttempts = 0;
    }
    update();
  });
  live.addEventListener('retry', (e) => { failedAttempts = e.detail.attempt; update(); });
  live.addEventListener('leg-state', (e) => { legs[e.detail.leg] = e.detail.state; update(); });
  live.addEventListener('quality', (e) => { quality = e.detail.overall; update(); });
  update();
}
