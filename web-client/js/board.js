// The whiteboard panel: a canvas showing the class's board (the page the teacher shows), the tools
// palette, colours and widths, undo/redo, pages and clear (teacher), PNG and SVG export, and the
// laser pointer. Strokes stream while they are drawn; every change comes back from the server as a
// numbered op and is drawn from the model (board-model.js), so every screen shows the same board.

import { h, setText, setAttrText } from './dom.js';
import { t } from './i18n.js';
import { announce } from './ui.js';
import { PAGE_WIDTH, PAGE_HEIGHT, mayDraw, hitTest, boardToSvg } from './board-model.js';
import { paintBoard, pageToPng } from './board-render.js';

export const TOOLS = ['pen', 'highlighter', 'eraser', 'line', 'arrow', 'rect', 'ellipse', 'text', 'laser'];
export const COLORS = [
  { value: '#000000', key: 'board.color.black' },
  { value: '#e53935', key: 'board.color.red' },
  { value: '#1e88e5', key: 'board.color.blue' },
  { value: '#43a047', key: 'board.color.green' },
  { value: '#fb8c00', key: 'board.color.orange' },
  { value: '#8e24aa', key: 'board.color.purple' },
  { value: '#fdd835', key: 'board.color.yellow' },
];
export const WIDTHS = [
  { value: 2, key: 'board.width.thin', text: 24 },
  { value: 4, key: 'board.width.medium', text: 32 },
  { value: 8, key: 'board.width.thick', text: 48 },
  { value: 16, key: 'board.width.extra', text: 72 },
];
const FLUSH_MS = 40;
const LASER_MS = 60;
const LASER_FADE_MS = 4000;

const round = (v) => Math.round(v * 100) / 100;

/**
 * live: a LiveSession (board replica in live.board, events `board`, `laser`, `board-error`).
 * isTeacher: the teacher's page (pages, clear, always draws).
 */
export function boardPanel(live, { isTeacher }) {
  const idPrefix = Math.random().toString(36).slice(2, 8);
  let counter = 0;
  const tool = { name: 'pen', color: COLORS[0].value, width: WIDTHS[1].value };
  let draft = null; // our stroke while it streams: {id, points, sentPoints, done}
  let pending = [];
  let flushTimer = null;
  let preview = null; // a shape being dragged
  let erasing = null; // ids already sent while dragging the eraser
  let textAt = null;
  let lastLaser = 0;
  let ownLaser = null;
  const lasers = new Map(); // classroom_id -> {page, point, at}
  let lastAction = null;

  const me = () => live.state.you?.classroom_id || '';
  const board = () => live.board.board;
  const canDraw = () => live.state.joined && mayDraw(board(), me(), isTeacher);
  const page = () => Math.min(board().current_page, board().pages.length - 1);

  // --- elements ---
  const canvas = h('canvas', { class: 'board-canvas', tabindex: '0', role: 'img', testid: 'board-canvas', width: 1600, height: 900 });
  const wrap = h('div', { class: 'board-wrap' }, canvas);
  const toolButtons = TOOLS.map((name) => h('button', {
    type: 'button', class: `tool tool-${name}`, i18n: `board.tool.${name}`, 'aria-pressed': String(name === tool.name), testid: `tool-${name}`,
    onclick: () => selectTool(name),
  }));
  const colorButtons = COLORS.map((c) => h('button', {
    type: 'button', class: 'swatch', style: `--swatch: ${c.value}`, 'aria-pressed': String(c.value === tool.color), testid: `color-${c.value.slice(1)}`,
    i18nAttr: { 'aria-label': c.key, title: c.key }, onclick: () => { tool.color = c.value; syncTools(); },
  }));
  const widthButtons = WIDTHS.map((w) => h('button', {
    type: 'button', class: 'width', 'aria-pressed': String(w.value === tool.width), testid: `width-${w.value}`,
    i18nAttr: { 'aria-label': w.key, title: w.key }, onclick: () => { tool.width = w.value; syncTools(); },
  }, h('span', { class: 'width-dot', style: `--dot: ${Math.min(4 + w.value, 20)}px`, 'aria-hidden': 'true' })));
  const undoButton = h('button', { type: 'button', i18n: 'board.undo', testid: 'board-undo', onclick: () => undo() });
  const redoButton = h('button', { type: 'button', i18n: 'board.redo', testid: 'board-redo', onclick: () => redo() });
  const textInput = h('input', { id: 'board-text', testid: 'board-text', 'aria-describedby': 'board-text-hint' });
  const textRow = h('form', { class: 'board-text-row', hidden: true, onsubmit: (e) => { e.preventDefault(); placeText(textAt || [80, 120]); } },
    h('label', { for: 'board-text', i18n: 'board.textLabel' }), textInput,
    h('button', { type: 'submit', i18n: 'board.textPlace', testid: 'board-text-place' }),
    h('p', { class: 'hint', id: 'board-text-hint', i18n: 'board.textHint' }));
  const permission = h('p', { class: 'board-permission', role: 'status', testid: 'board-permission' });
  const message = h('p', { class: 'board-message', role: 'status', testid: 'board-message' });
  const pageLabel = h('span', { class: 'page-label', testid: 'board-page', 'aria-live': 'polite' });
  const exportPng = h('button', { type: 'button', i18n: 'board.exportPng', testid: 'export-png', onclick: () => exportPage('png') });
  const exportSvg = h('button', { type: 'button', i18n: 'board.exportSvg', testid: 'export-svg', onclick: () => exportPage('svg') });

  const pageControls = [];
  let clearConfirm = null;
  let allowAll = null;
  if (isTeacher) {
    const prev = h('button', { type: 'button', i18n: 'board.prevPage', testid: 'page-prev', onclick: () => setPage(page() - 1) });
    const next = h('button', { type: 'button', i18n: 'board.nextPage', testid: 'page-next', onclick: () => setPage(page() + 1) });
    const add = h('button', { type: 'button', i18n: 'board.addPage', testid: 'page-add', onclick: () => {
      const index = board().pages.length;
      if (send({ op: 'add_page' })) send({ op: 'set_page', page: index });
    } });
    const clearButton = h('button', { type: 'button', class: 'danger', i18n: 'board.clear', testid: 'board-clear' });
    clearConfirm = h('span', { class: 'inline-confirm', hidden: true, role: 'group', 'aria-labelledby': 'clear-question' },
      h('span', { id: 'clear-question', i18n: 'board.clearQuestion' }),
      h('button', { type: 'button', class: 'danger', i18n: 'board.clearConfirm', testid: 'board-clear-confirm', onclick: () => {
        send({ op: 'clear_page', page: page() });
        lastAction = 'clear';
        clearConfirm.hidden = true;
        clearButton.focus();
      } }),
      h('button', { type: 'button', i18n: 'action.cancel', onclick: () => { clearConfirm.hidden = true; clearButton.focus(); } }));
    clearButton.addEventListener('click', () => { clearConfirm.hidden = false; clearConfirm.querySelector('button').focus(); });
    allowAll = h('button', { type: 'button', testid: 'allow-all-draw', 'aria-pressed': 'false', onclick: () => {
      send({ op: 'set_draw_permission', target: 'all', allowed: !board().permissions.all });
    } });
    pageControls.push(prev, pageLabel, next, add, clearButton, clearConfirm);
    Object.assign(pageControls, { prev, next });
  } else {
    pageControls.push(pageLabel);
  }

  const panel = h('section', { class: 'card board-panel', 'aria-labelledby': 'board-heading', testid: 'board' },
    h('div', { class: 'board-head' },
      h('h2', { id: 'board-heading', i18n: 'board.heading' }),
      permission,
      allowAll),
    h('div', { class: 'board-toolbar', role: 'toolbar', i18nAttr: { 'aria-label': 'board.tools' } },
      h('div', { class: 'tool-group', role: 'group', i18nAttr: { 'aria-label': 'board.toolsGroup' } }, toolButtons),
      h('div', { class: 'tool-group', role: 'group', i18nAttr: { 'aria-label': 'board.colors' } }, colorButtons),
      h('div', { class: 'tool-group', role: 'group', i18nAttr: { 'aria-label': 'board.widths' } }, widthButtons),
      h('div', { class: 'tool-group', role: 'group', i18nAttr: { 'aria-label': 'board.history' } }, undoButton, redoButton)),
    textRow,
    wrap,
    h('div', { class: 'board-footer' },
      h('div', { class: 'tool-group', role: 'group', i18nAttr: { 'aria-label': 'board.pages' } }, pageControls),
      h('div', { class: 'tool-group', role: 'group', i18nAttr: { 'aria-label': 'board.export' } }, exportPng, exportSvg)),
    message);

  // --- sending ---
  function send(op) {
    return live.boardOp(op);
  }

  function newId() {
    counter += 1;
    return `${me()}:${idPrefix}-${counter}`;
  }

  function say(key, params) {
    setText(message, key, params);
  }

  // --- tools ---
  function selectTool(name) {
    if (tool.name === 'laser' && name !== 'laser') laserOff();
    tool.name = name;
    syncTools();
    if (name === 'text') textInput.focus();
  }

  function syncTools() {
    const allowed = canDraw();
    for (const [i, b] of toolButtons.entries()) {
      b.setAttribute('aria-pressed', String(TOOLS[i] === tool.name));
      b.disabled = !allowed;
    }
    for (const [i, b] of colorButtons.entries()) { b.setAttribute('aria-pressed', String(COLORS[i].value === tool.color)); b.disabled = !allowed; }
    for (const [i, b] of widthButtons.entries()) { b.setAttribute('aria-pressed', String(WIDTHS[i].value === tool.width)); b.disabled = !allowed; }
    undoButton.disabled = !allowed;
    redoButton.disabled = !allowed;
    textRow.hidden = !(allowed && tool.name === 'text');
    canvas.dataset.tool = allowed ? tool.name : 'none';
  }

  function syncMeta() {
    const b = board();
    // The text box takes no more than the server accepts (its limit arrives with `welcome`).
    if (live.state.limits) textInput.maxLength = live.state.limits.max_text_chars;
    setText(pageLabel, 'board.pageOf', { page: page() + 1, pages: b.pages.length });
    if (isTeacher) {
      pageControls.prev.disabled = page() <= 0;
      pageControls.next.disabled = page() >= b.pages.length - 1;
      allowAll.setAttribute('aria-pressed', String(!!b.permissions.all));
      setText(allowAll, b.permissions.all ? 'board.forbidAll' : 'board.allowAll');
      setText(permission, 'board.teacherDraws');
    } else {
      setText(permission, canDraw() ? 'board.youMayDraw' : 'board.onlyTeacher');
      permission.dataset.allowed = String(canDraw());
    }
    const count = b.pages[page()]?.objects.length || 0;
    setAttrText(canvas, 'aria-label', 'board.canvasLabel', { page: page() + 1, pages: b.pages.length, count });
    syncTools();
  }

  function setPage(p) {
    if (p < 0 || p >= board().pages.length || p === page()) return;
    send({ op: 'set_page', page: p });
  }

  function undo() {
    if (!canDraw()) return;
    lastAction = 'undo';
    send({ op: 'undo' });
  }

  function redo() {
    if (!canDraw()) return;
    lastAction = 'redo';
    send({ op: 'redo' });
  }

  function placeText(at) {
    const text = textInput.value.replace(/\r/g, '');
    if (!text.trim()) {
      textInput.focus();
      say('board.textEmpty');
      return;
    }
    const size = WIDTHS.find((w) => w.value === tool.width)?.text || 32;
    if (send({ op: 'text_add', object_id: newId(), page: page(), at: [round(at[0]), round(at[1])], text, color: tool.color, size })) {
      lastAction = 'draw';
      textInput.value = '';
      textAt = null;
      announce('board.textPlaced');
    }
  }

  async function exportPage(kind) {
    const p = page();
    const name = `board-page-${p + 1}.${kind}`;
    const blob = kind === 'png'
      ? await pageToPng(board(), p)
      : new Blob([boardToSvg(board(), p)], { type: 'image/svg+xml' });
    const url = URL.createObjectURL(blob);
    const a = h('a', { href: url, download: name, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
    say('board.exported', { name });
  }

  // --- pointer input ---
  function toBoard(e) {
    const r = canvas.getBoundingClientRect();
    return [round(((e.clientX - r.left) / r.width) * PAGE_WIDTH), round(((e.clientY - r.top) / r.height) * PAGE_HEIGHT)];
  }

  function flush() {
    if (!draft || pending.length === 0) return;
    const points = pending;
    pending = [];
    if (!send({ op: 'stroke_append', object_id: draft.id, points })) dropDraft();
  }

  function dropDraft() {
    draft = null;
    pending = [];
    clearInterval(flushTimer);
    flushTimer = null;
    render();
  }

  function endStroke() {
    if (!draft || draft.done) return;
    flush();
    if (draft) {
      send({ op: 'stroke_end', object_id: draft.id });
      draft.done = true;
    }
    clearInterval(flushTimer);
    flushTimer = null;
    render();
  }

  function erase(point) {
    const ids = hitTest(board(), page(), point, { tolerance: 10, filter: (o) => isTeacher || o.author === me() })
      .filter((id) => !erasing.has(id));
    if (ids.length === 0) return;
    for (const id of ids) erasing.add(id);
    if (send({ op: 'erase', object_ids: ids })) lastAction = 'draw';
  }

  function sendLaser(point) {
    const now = Date.now();
    ownLaser = { page: page(), point, at: now };
    render();
    if (now - lastLaser < LASER_MS) return;
    lastLaser = now;
    live.laser(page(), point);
  }

  function laserOff() {
    if (!ownLaser) return;
    ownLaser = null;
    live.laserOff();
    render();
  }

  canvas.addEventListener('pointerdown', (e) => {
    if (!canDraw() || e.button > 0) return;
    canvas.setPointerCapture?.(e.pointerId);
    const p = toBoard(e);
    const name = tool.name;
    if (name === 'pen' || name === 'highlighter') {
      const width = name === 'highlighter' ? Math.max(tool.width * 3, 12) : tool.width;
      const color = name === 'highlighter' && tool.color === '#000000' ? '#fdd835' : tool.color;
      const id = newId();
      if (!send({ op: 'stroke_begin', object_id: id, page: page(), tool: name, color, width, point: p })) return;
      lastAction = 'draw';
      draft = { id, type: 'stroke', tool: name, color, width, points: [p], done: false, page: page() };
      pending = [];
      flushTimer = setInterval(flush, FLUSH_MS);
    } else if (name === 'eraser') {
      erasing = new Set();
      erase(p);
    } else if (name === 'text') {
      textAt = p;
      if (textInput.value.trim()) placeText(p);
      else { textInput.focus(); say('board.textWhere'); }
    } else if (name === 'laser') {
      sendLaser(p);
    } else {
      preview = { type: name, color: tool.color, width: tool.width, from: p, to: p };
    }
    render();
  });

  canvas.addEventListener('pointermove', (e) => {
    const name = tool.name;
    if (name === 'laser' && canDraw()) {
      if (e.pointerType === 'mouse' || e.buttons) sendLaser(toBoard(e));
      return;
    }
    if (draft && !draft.done) {
      const p = toBoard(e);
      const last = draft.points[draft.points.length - 1];
      if (Math.hypot(p[0] - last[0], p[1] - last[1]) < 1.5) return;
      draft.points.push(p);
      pending.push(p);
      // The server refuses a stroke longer than its limit: end this one there.
      if (draft.points.length >= live.state.limits.max_points_per_stroke) endStroke();
      render();
    } else if (erasing) {
      erase(toBoard(e));
    } else if (preview) {
      preview.to = toBoard(e);
      render();
    }
  });

  function pointerUp() {
    if (draft && !draft.done) endStroke();
    erasing = null;
    if (preview) {
      const { from, to } = preview;
      if (Math.hypot(to[0] - from[0], to[1] - from[1]) > 3) {
        const op = { op: 'shape_add', object_id: newId(), page: page(), shape: preview.type, color: preview.color, width: preview.width, from, to };
        if (send(op)) lastAction = 'draw';
      }
      preview = null;
      render();
    }
    if (tool.name === 'laser' && ownLaser && !canvas.matches(':hover')) laserOff();
  }
  canvas.addEventListener('pointerup', pointerUp);
  canvas.addEventListener('pointercancel', pointerUp);
  canvas.addEventListener('pointerleave', () => { if (tool.name === 'laser') laserOff(); });
  canvas.addEventListener('keydown', (e) => {
    const mod = e.ctrlKey || e.metaKey;
    if (mod && e.key.toLowerCase() === 'z') { e.preventDefault(); if (e.shiftKey) redo(); else undo(); }
    else if (mod && e.key.toLowerCase() === 'y') { e.preventDefault(); redo(); }
    else if (isTeacher && e.key === 'PageDown') { e.preventDefault(); setPage(page() + 1); }
    else if (isTeacher && e.key === 'PageUp') { e.preventDefault(); setPage(page() - 1); }
  });

  // --- rendering ---
  let frame = 0;
  function render() {
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      paint();
    });
  }

  function paint() {
    const rect = canvas.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(rect.width * dpr)) || PAGE_WIDTH;
    const hgt = Math.max(1, Math.round((w * PAGE_HEIGHT) / PAGE_WIDTH));
    if (canvas.width !== w || canvas.height !== hgt) { canvas.width = w; canvas.height = hgt; }
    const now = Date.now();
    const shownLasers = [];
    for (const [id, l] of lasers) {
      if (now - l.at > LASER_FADE_MS) lasers.delete(id);
      else if (l.page === page()) shownLasers.push(l.point);
    }
    if (ownLaser && ownLaser.page === page()) shownLasers.push(ownLaser.point);
    let showDraft = draft && draft.page === page() ? draft : null;
    if (draft && draft.done) {
      const have = board().pages[draft.page]?.objects.find((o) => o.id === draft.id);
      if (have && have.points.length >= draft.points.length) { draft = null; showDraft = null; }
    }
    paintBoard(canvas.getContext('2d'), board(), page(), canvas.width, canvas.height, {
      hideId: showDraft ? showDraft.id : null, draft: showDraft, preview, lasers: shownLasers,
    });
  }

  // --- events from the session ---
  let lastPage = null;
  live.addEventListener('board', (e) => {
    const applied = e.detail.applied;
    if (applied && applied.author.classroom_id === me() && (applied.op.op === 'undo' || applied.op.op === 'redo')) {
      const effect = applied.op.effect || { remove: [], restore: [] };
      say(applied.op.op === 'undo' ? 'board.undone' : 'board.redone', { count: effect.remove.length + effect.restore.length });
    }
    if (lastPage !== null && lastPage !== page()) announce('board.pageShown', { page: page() + 1, pages: board().pages.length });
    lastPage = page();
    syncMeta();
    render();
  });
  live.addEventListener('laser', (e) => {
    const { classroom_id: id, page: p, point } = e.detail;
    if (point) lasers.set(id, { page: p, point, at: Date.now() }); else lasers.delete(id);
    render();
  });
  live.addEventListener('board-error', (e) => {
    const code = e.detail.code;
    if (draft) dropDraft();
    if (code === 'invalid' && (lastAction === 'undo' || lastAction === 'redo')) say(lastAction === 'undo' ? 'board.nothingToUndo' : 'board.nothingToRedo');
    else say(`board.error.${['forbidden', 'rate_limited', 'limit_exceeded', 'not_found'].includes(code) ? code : 'other'}`);
  });
  live.addEventListener('change', () => syncMeta());
  live.addEventListener('status', (e) => { if (e.detail.status !== 'joined') { if (draft) dropDraft(); preview = null; } });
  const laserTimer = setInterval(() => { if (lasers.size) render(); }, 500);
  new ResizeObserver(() => render()).observe(wrap);
  syncMeta();
  render();

  return { element: panel, stop: () => clearInterval(laserTimer) };
}
