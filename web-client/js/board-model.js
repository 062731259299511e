// The shared whiteboard as every screen keeps it: a port of the server's reducer
// (`BoardSnapshot::apply` in signaling/src/classboard/board/model.rs), the catch-up logic around it, hit
// testing for the stroke eraser and the SVG export (the same drawing as the server's `board_svg`).
// Pure: no DOM, no I/O, so Node tests feed it the server's own JSON.

/** Logical page size in board units (16:9), origin top left. */
export const PAGE_WIDTH = 1600;
export const PAGE_HEIGHT = 900;
/** Highlighter strokes are drawn at this opacity. */
export const HIGHLIGHTER_OPACITY = 0.4;

/** The board of a new class: one empty page, nobody but the teacher may draw, seq 0. */
export function emptyBoard() {
  return { seq: 0, pages: [{ objects: [] }], current_page: 0, permissions: { all: false, classrooms: {} } };
}

/** Whether a classroom may draw (the teacher always may). */
export function mayDraw(board, classroomId, isTeacher = false) {
  if (isTeacher) return true;
  const own = board.permissions.classrooms[classroomId];
  return typeof own === 'boolean' ? own : !!board.permissions.all;
}

/** The object with `id` and its page index, or null. */
export function findObject(board, id) {
  for (let p = 0; p < board.pages.length; p += 1) {
    const object = board.pages[p].objects.find((o) => o.id === id);
    if (object) return { page: p, object };
  }
  return null;
}

function pushObject(board, page, object) {
  const p = board.pages[page];
  if (p) p.objects.push(object);
}

function removeObjects(board, ids) {
  if (!ids || ids.length === 0) return;
  const gone = new Set(ids);
  for (const page of board.pages) page.objects = page.objects.filter((o) => !gone.has(o.id));
}

/** Newest first on the known page, else the first match anywhere (as the server looks it up). */
function objectFor(board, page, id) {
  const objects = page != null && board.pages[page] ? board.pages[page].objects : null;
  if (objects) {
    for (let i = objects.length - 1; i >= 0; i -= 1) if (objects[i].id === id) return objects[i];
  }
  return findObject(board, id)?.object || null;
}

const clonePoint = (p) => [p[0], p[1]];

function shapeObject(op) {
  const base = { color: op.color, width: op.width, from: clonePoint(op.from), to: clonePoint(op.to) };
  if ((op.shape === 'rect' || op.shape === 'ellipse') && op.fill != null) base.fill = op.fill;
  return { type: op.shape, ...base };
}

/** Insert into a page keeping `z` order (after objects with a smaller z). */
function insertByZ(objects, object) {
  let at = 0;
  while (at < objects.length && objects[at].z < object.z) at += 1;
  objects.splice(at, 0, object);
}

/**
 * Apply one accepted op (`{seq, author: {classroom_id, is_teacher}, op}`) to `board`, in place.
 * Returns `applied`, `duplicate` (an op the board already has: ignore it) or `gap` (ops are
 * missing: nothing changed; ask the server for a catch-up).
 */
export function applyOp(board, applied) {
  if (applied.seq <= board.seq) return 'duplicate';
  if (applied.seq !== board.seq + 1) return 'gap';
  reduce(board, applied);
  return 'applied';
}

function reduce(board, { seq, author, op }) {
  board.seq = seq;
  const make = (id, shape) => ({ id, author: author.classroom_id, z: seq, ...shape });
  switch (op.op) {
    case 'stroke_begin':
      pushObject(board, op.page, make(op.object_id, {
        type: 'stroke', tool: op.tool, color: op.color, width: op.width, points: [clonePoint(op.point)],
      }));
      break;
    case 'stroke_append': {
      const o = objectFor(board, op.page, op.object_id);
      if (o && o.type === 'stroke') for (const p of op.points) o.points.push(clonePoint(p));
      break;
    }
    case 'stroke_end':
      break;
    case 'shape_add':
      pushObject(board, op.page, make(op.object_id, shapeObject(op)));
      break;
    case 'text_add':
      pushObject(board, op.page, make(op.object_id, { type: 'text', color: op.color, size: op.size, at: clonePoint(op.at), text: op.text }));
      break;
    case 'erase':
      removeObjects(board, op.object_ids);
      break;
    case 'undo':
    case 'redo':
      if (op.effect) {
        removeObjects(board, op.effect.remove);
        for (const r of op.effect.restore || []) {
          const page = board.pages[r.page];
          if (page) insertByZ(page.objects, structuredClone(r.object));
        }
      }
      break;
    case 'clear_page':
      if (board.pages[op.page]) board.pages[op.page].objects = [];
      break;
    case 'add_page':
      board.pages.push({ objects: [] });
      break;
    case 'set_page':
      board.current_page = op.page;
      break;
    case 'set_draw_permission': {
      const perms = board.permissions;
      if (op.target === 'all') {
        perms.all = op.allowed;
        perms.classrooms = {};
      } else if (op.target && typeof op.target.classroom === 'string') {
        const id = op.target.classroom;
        if (op.allowed === perms.all) delete perms.classrooms[id];
        else perms.classrooms[id] = op.allowed;
      }
      break;
    }
    default:
      break; // an op this client does not know changes nothing it can draw
  }
}

/**
 * A screen's copy of the board, kept in step with the server: applies `board_op` in order, asks
 * for a catch-up (`board_sync`) on a gap and takes `board_catchup` (a snapshot or the missed ops).
 * `send(message)` sends a protocol message; `onChange(board, what)` after every change.
 */
export class BoardReplica {
  constructor({ send, onChange = () => {} } = {}) {
    this.board = emptyBoard();
    this.send = send;
    this.onChange = onChange;
    this.syncing = false;
    this.synced = false; // a snapshot or catch-up has arrived since the last (re)join
  }

  /** After every welcome: the server follows it with a catch-up; until then ops are held off. */
  rejoined() {
    this.synced = false;
    this.syncing = true;
  }

  #requestSync() {
    this.syncing = true;
    this.send({ type: 'board_sync', since_seq: this.board.seq });
  }

  /** A live `board_op`'s `applied`. */
  onApplied(applied) {
    if (this.syncing) {
      // Everything up to the server's seq when it answers comes inside the catch-up; a stray op
      // that still fits is applied, the rest is a duplicate of what the catch-up brings.
      if (applied.seq !== this.board.seq + 1 || !this.synced) return 'held';
    }
    const result = applyOp(this.board, applied);
    if (result === 'gap') this.#requestSync();
    if (result === 'applied') this.onChange(this.board, applied);
    return result;
  }

  /** A `board_catchup`'s `catchup`. */
  onCatchup(catchup) {
    this.syncing = false;
    this.synced = true;
    if (catchup.kind === 'snapshot') {
      this.board = normaliseSnapshot(catchup.snapshot);
      this.onChange(this.board, null);
      return 'snapshot';
    }
    let changed = false;
    for (const applied of catchup.ops || []) {
      const result = applyOp(this.board, applied);
      if (result === 'gap') {
        if (changed) this.onChange(this.board, null);
        this.#requestSync();
        return 'gap';
      }
      if (result === 'applied') changed = true;
    }
    if (changed) this.onChange(this.board, null);
    return 'delta';
  }
}

/** A snapshot as the server sends it, with every field this client relies on present. */
export function normaliseSnapshot(s) {
  const board = structuredClone(s);
  board.pages = Array.isArray(board.pages) && board.pages.length ? board.pages : [{ objects: [] }];
  for (const p of board.pages) if (!Array.isArray(p.objects)) p.objects = [];
  board.current_page = board.current_page || 0;
  board.permissions = { all: !!board.permissions?.all, classrooms: { ...(board.permissions?.classrooms || {}) } };
  board.seq = board.seq || 0;
  return board;
}

// --- Hit testing (stroke eraser) ----------------------------------------------------------

function distToSegment(p, a, b) {
  const dx = b[0] - a[0];
  const dy = b[1] - a[1];
  const len2 = dx * dx + dy * dy;
  let t = len2 ? ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / len2 : 0;
  t = Math.max(0, Math.min(1, t));
  return Math.hypot(p[0] - (a[0] + t * dx), p[1] - (a[1] + t * dy));
}

function distToPolyline(p, points) {
  if (points.length === 1) return Math.hypot(p[0] - points[0][0], p[1] - points[0][1]);
  let best = Infinity;
  for (let i = 1; i < points.length; i += 1) best = Math.min(best, distToSegment(p, points[i - 1], points[i]));
  return best;
}

/** Approximate width of a text object for hit testing (no font metrics in Node). */
function textBox(o) {
  const lines = o.text.split('\n');
  const longest = Math.max(...lines.map((l) => l.length));
  return { x0: o.at[0], y0: o.at[1], x1: o.at[0] + longest * o.size * 0.6, y1: o.at[1] + o.size * (1 + 1.25 * (lines.length - 1)) + o.size * 0.3 };
}

/** Whether `point` touches object `o` (within `tolerance` board units of its outline). */
export function hitObject(o, point, tolerance = 8) {
  const reach = (o.width || 0) / 2 + tolerance;
  switch (o.type) {
    case 'stroke':
      return distToPolyline(point, o.points) <= reach;
    case 'line':
    case 'arrow':
      return distToSegment(point, o.from, o.to) <= reach;
    case 'rect': {
      const [x0, x1] = [Math.min(o.from[0], o.to[0]), Math.max(o.from[0], o.to[0])];
      const [y0, y1] = [Math.min(o.from[1], o.to[1]), Math.max(o.from[1], o.to[1])];
      const inside = point[0] >= x0 && point[0] <= x1 && point[1] >= y0 && point[1] <= y1;
      if (inside && o.fill) return true;
      const corners = [[x0, y0], [x1, y0], [x1, y1], [x0, y1]];
      return corners.some((c, i) => distToSegment(point, c, corners[(i + 1) % 4]) <= reach);
    }
    case 'ellipse': {
      const cx = (o.from[0] + o.to[0]) / 2;
      const cy = (o.from[1] + o.to[1]) / 2;
      const rx = Math.abs(o.to[0] - o.from[0]) / 2;
      const ry = Math.abs(o.to[1] - o.from[1]) / 2;
      if (rx < 1 || ry < 1) return distToSegment(point, o.from, o.to) <= reach;
      const r = Math.hypot((point[0] - cx) / rx, (point[1] - cy) / ry);
      if (r <= 1 && o.fill) return true;
      return Math.abs(r - 1) * Math.min(rx, ry) <= reach;
    }
    case 'text': {
      const b = textBox(o);
      return point[0] >= b.x0 - tolerance && point[0] <= b.x1 + tolerance && point[1] >= b.y0 - tolerance && point[1] <= b.y1 + tolerance;
    }
    default:
      return false;
  }
}

/** Ids of the objects on `page` under `point`, topmost first; `filter(o)` limits which count. */
export function hitTest(board, page, point, { tolerance = 8, filter = () => true } = {}) {
  const objects = board.pages[page]?.objects || [];
  const ids = [];
  for (let i = objects.length - 1; i >= 0; i -= 1) {
    const o = objects[i];
    if (filter(o) && hitObject(o, point, tolerance)) ids.push(o.id);
  }
  return ids;
}

// --- Geometry shared by the canvas and the SVG ---------------------------------------------

/** The two back corners of an arrow head at `to` (same as the server's SVG). */
export function arrowHead(from, to, width) {
  const angle = Math.atan2(to[1] - from[1], to[0] - from[0]);
  const head = Math.max(width * 4, 12);
  const spread = 0.45;
  return [
    [to[0] - head * Math.cos(angle - spread), to[1] - head * Math.sin(angle - spread)],
    [to[0] - head * Math.cos(angle + spread), to[1] - head * Math.sin(angle + spread)],
  ];
}

/** `#rrggbb[aa]` and an extra factor → {rgb, opacity}. */
export function colorParts(color, factor = 1) {
  const rgb = typeof color === 'string' && /^#[0-9a-fA-F]{6}/.test(color) ? color.slice(0, 7) : '#000000';
  const alphaHex = typeof color === 'string' && color.length >= 9 ? color.slice(7, 9) : null;
  const alpha = alphaHex && /^[0-9a-fA-F]{2}$/.test(alphaHex) ? parseInt(alphaHex, 16) / 255 : 1;
  return { rgb, opacity: alpha * factor };
}

// --- SVG export (mirrors the server's board_svg, so both exports look the same) -------------

export function xmlEscape(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

const round2 = (v) => Math.round(v * 100) / 100;
const num = (v) => String(round2(v) + 0); // + 0 turns -0 into 0

function paint(attr, color, factor = 1) {
  const { rgb, opacity } = colorParts(color, factor);
  let out = ` ${attr}="${xmlEscape(rgb)}"`;
  if (opacity < 1) out += ` ${attr}-opacity="${Math.round(opacity * 1000) / 1000}"`;
  return out;
}

const fillPaint = (fill) => (fill ? paint('fill', fill) : ' fill="none"');

function svgObject(o) {
  switch (o.type) {
    case 'stroke': {
      let d = o.points.map((p, i) => `${i === 0 ? 'M' : ' L'}${num(p[0])} ${num(p[1])}`).join('');
      if (o.points.length === 1) d += ` L${num(o.points[0][0])} ${num(o.points[0][1])}`;
      const factor = o.tool === 'highlighter' ? HIGHLIGHTER_OPACITY : 1;
      return `<path d="${d}" fill="none"${paint('stroke', o.color, factor)} stroke-width="${num(o.width)}" stroke-linecap="round" stroke-linejoin="round"/>`;
    }
    case 'line':
      return `<line x1="${num(o.from[0])}" y1="${num(o.from[1])}" x2="${num(o.to[0])}" y2="${num(o.to[1])}"${paint('stroke', o.color)} stroke-width="${num(o.width)}" stroke-linecap="round"/>`;
    case 'arrow': {
      const [a, b] = arrowHead(o.from, o.to, o.width);
      return `<line x1="${num(o.from[0])}" y1="${num(o.from[1])}" x2="${num(o.to[0])}" y2="${num(o.to[1])}"${paint('stroke', o.color)} stroke-width="${num(o.width)}" stroke-linecap="round"/>`
        + `<polygon points="${num(o.to[0])},${num(o.to[1])} ${num(a[0])},${num(a[1])} ${num(b[0])},${num(b[1])}"${paint('fill', o.color)}/>`;
    }
    case 'rect':
      return `<rect x="${num(Math.min(o.from[0], o.to[0]))}" y="${num(Math.min(o.from[1], o.to[1]))}" width="${num(Math.abs(o.to[0] - o.from[0]))}" height="${num(Math.abs(o.to[1] - o.from[1]))}"${fillPaint(o.fill)}${paint('stroke', o.color)} stroke-width="${num(o.width)}"/>`;
    case 'ellipse':
      return `<ellipse cx="${num((o.from[0] + o.to[0]) / 2)}" cy="${num((o.from[1] + o.to[1]) / 2)}" rx="${num(Math.abs(o.to[0] - o.from[0]) / 2)}" ry="${num(Math.abs(o.to[1] - o.from[1]) / 2)}"${fillPaint(o.fill)}${paint('stroke', o.color)} stroke-width="${num(o.width)}"/>`;
    case 'text': {
      const spans = o.text.split('\n').map((line, i) => `<tspan x="${num(o.at[0])}" y="${num(o.at[1] + o.size * (1 + 1.25 * i))}">${xmlEscape(line)}</tspan>`).join('');
      return `<text font-family="sans-serif" font-size="${num(o.size)}"${paint('fill', o.color)} xml:space="preserve">${spans}</text>`;
    }
    default:
      return '';
  }
}

/** One page as a standalone SVG document (white background, 1600 × 900 view box). */
export function boardToSvg(board, page) {
  const objects = board.pages[page]?.objects || [];
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${PAGE_WIDTH}" height="${PAGE_HEIGHT}" viewBox="0 0 ${PAGE_WIDTH} ${PAGE_HEIGHT}"><rect width="${PAGE_WIDTH}" height="${PAGE_HEIGHT}" fill="#ffffff"/>`
    + objects.map(svgObject).join('') + '</svg>\n';
}
