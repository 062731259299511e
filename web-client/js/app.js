// Entry point: load translations, pick the page from the URL, expose the test hook.

import { initI18n, t } from './i18n.js';
import { languageSelector, messageScreen } from './ui.js';
import { renderHome } from './home.js';
import { renderTeacher } from './teacher.js';
import { renderClassroom } from './classroom.js';
import { renderPupil } from './pupil.js';

/** `/teach/c_x#token=…` → {page: 'teach', classId: 'c_x', token}. Pure; exported for tests. */
export function route(pathname, hash) {
  const params = new URLSearchParams(String(hash || '').replace(/^#/, ''));
  const token = params.get('token') || '';
  const m = /^\/(teach|join|vote)\/([^/]+)\/?$/.exec(pathname);
  if (m) return { page: m[1], classId: decodeURIComponent(m[2]), token };
  if (pathname === '/' || pathname === '/index.html') return { page: 'home' };
  return { page: 'not_found' };
}

let live = null;
/** The teacher's page keeps its seat when it goes away (a reload takes it back); others leave. */
let keepSeatOnHide = false;

/** Read-only status for end-to-end tests and support: window.tandem. */
function installHook() {
  const hook = {
    state: () => (live ? structuredClone(live.state) : null),
    status: () => (live ? live.status : 'idle'),
    quality: () => (live ? structuredClone(live.quality) : null),
    stats: () => (live ? live.stats() : Promise.resolve([])),
    lang: () => t.lang(),
    board: () => (live && live.board ? structuredClone(live.board.board) : null),
    polls: () => (live && live.polls ? structuredClone(live.polls) : null),
  };
  Object.defineProperty(window, 'tandem', { value: Object.freeze(hook), writable: false, configurable: false });
}

async function main() {
  installHook();
  try {
    await initI18n();
  } catch (err) {
    console.error('cannot load translations', err);
    document.getElementById('app').hidden = true;
    document.getElementById('boot-failure').hidden = false;
    return;
  }
  document.getElementById('language-slot').append(languageSelector());
  const root = document.getElementById('app');
  root.removeAttribute('aria-busy');
  const where = route(location.pathname, location.hash);
  keepSeatOnHide = where.page === 'teach';
  const onLive = (session) => { live = session; };
  if ((where.page === 'teach' || where.page === 'join' || where.page === 'vote') && !where.token) {
    messageScreen(root, { title: 'failure.noToken.title', body: 'failure.noToken.body', tone: 'error', testid: 'failure-no-token', actions: [{ i18n: 'action.home', href: '/', testid: 'go-home' }] });
    return;
  }
  switch (where.page) {
    case 'home':
      renderHome(root);
      break;
    case 'teach':
      await renderTeacher(root, { classId: where.classId, token: where.token, onLive });
      break;
    case 'join':
      await renderClassroom(root, { classId: where.classId, token: where.token, onLive });
      break;
    case 'vote':
      await renderPupil(root, { classId: where.classId, token: where.token, onLive });
      break;
    default:
      messageScreen(root, { title: 'failure.page.title', body: 'failure.page.body', tone: 'error', testid: 'failure-page', actions: [{ i18n: 'action.home', href: '/', testid: 'go-home' }] });
  }
}

if (typeof window !== 'undefined' && typeof document !== 'undefined') {
  window.addEventListener('pagehide', () => {
    if (!live) return;
    if (keepSeatOnHide && live.suspend) live.suspend();
    else live.leave();
  });
  main().catch((err) => {
    console.error(err);
    const root = document.getElementById('app');
    messageScreen(root, { title: 'failure.server.title', body: 'failure.server.body', tone: 'error', testid: 'failure-unexpected', actions: [{ i18n: 'action.reload', onclick: () => location.reload(), testid: 'reload' }] });
  });
}
