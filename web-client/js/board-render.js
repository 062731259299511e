// Drawing the board model on a canvas (the screen and the PNG export). The SVG export in
// board-model.js draws the same shapes the same way.

import { PAGE_WIDTH, PAGE_HEIGHT, HIGHLIGHTER_OPACITY, arrowHead, colorParts } from './board-model.js';

function style(ctx, color, factor = 1) {
  const { rgb, opacity } = colorParts(color, factor);
  ctx.globalAlpha = opacity;
  return rgb;
}

/** Draw one object (model shape) in board units. */
export function drawObject(ctx, o) {
  ctx.save();
  ctx.lineCap = 'round';
  ctx.lineJoin = 'round';
  switch (o.type) {
    case 'stroke': {
      ctx.strokeStyle = style(ctx, o.color, o.tool === 'highlighter' ? HIGHLIGHTER_OPACITY : 1);
      ctx.lineWidth = o.width;
      ctx.beginPath();
      ctx.moveTo(o.points[0][0], o.points[0][1]);
      if (o.points.length === 1) ctx.lineTo(o.points[0][0], o.points[0][1]);
      for (let i = 1; i < o.points.length; i += 1) ctx.lineTo(o.points[i][0], o.points[i][1]);
      ctx.stroke();
      break;
    }
    case 'line':
    case 'arrow': {
      ctx.strokeStyle = style(ctx, o.color);
      ctx.lineWidth = o.width;
      ctx.beginPath();
      ctx.moveTo(o.from[0], o.from[1]);
      ctx.lineTo(o.to[0], o.to[1]);
      ctx.stroke();
      if (o.type === 'arrow') {
        const [a, b] = arrowHead(o.from, o.to, o.width);
        ctx.fillStyle = style(ctx, o.color);
        ctx.beginPath();
        ctx.moveTo(o.to[0], o.to[1]);
        ctx.lineTo(a[0], a[1]);
        ctx.lineTo(b[0], b[1]);
        ctx.closePath();
        ctx.fill();
      }
      break;
    }
    case 'rect':
    case 'ellipse': {
      ctx.beginPath();
      if (o.type === 'rect') {
        ctx.rect(Math.min(o.from[0], o.to[0]), Math.min(o.from[1], o.to[1]), Math.abs(o.to[0] - o.from[0]), Math.abs(o.to[1] - o.from[1]));
      } else {
        ctx.ellipse((o.from[0] + o.to[0]) / 2, (o.from[1] + o.to[1]) / 2, Math.abs(o.to[0] - o.from[0]) / 2, Math.abs(o.to[1] - o.from[1]) / 2, 0, 0, Math.PI * 2);
      }
      if (o.fill) {
        ctx.fillStyle = style(ctx, o.fill);
        ctx.fill();
      }
      ctx.strokeStyle = style(ctx, o.color);
      ctx.lineWidth = o.width;
      ctx.stroke();
      break;
    }
    case 'text': {
      ctx.fillStyle = style(ctx, o.color);
      ctx.font = `${o.size}px sans-serif`;
      ctx.textBaseline = 'alphabetic';
      o.text.split('\n').forEach((line, i) => ctx.fillText(line, o.at[0], o.at[1] + o.size * (1 + 1.25 * i)));
      break;
    }
    default:
      break;
  }
  ctx.restore();
}

function drawLaser(ctx, point, color = '#e00000') {
  ctx.save();
  ctx.fillStyle = color;
  ctx.globalAlpha = 0.25;
  ctx.beginPath();
  ctx.arc(point[0], point[1], 22, 0, Math.PI * 2);
  ctx.fill();
  ctx.globalAlpha = 1;
  ctx.beginPath();
  ctx.arc(point[0], point[1], 9, 0, Math.PI * 2);
  ctx.fill();
  ctx.strokeStyle = '#ffffff';
  ctx.lineWidth = 2;
  ctx.stroke();
  ctx.restore();
}

/**
 * Paint page `page` of `board` onto a 2D context whose size is `width` × `height` pixels.
 * extras: {hideId, draft (object drawn instead of hideId), preview (object), lasers: [[x, y]]}.
 */
export function paintBoard(ctx, board, page, width, height, extras = {}) {
  ctx.save();
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(0, 0, width, height);
  ctx.scale(width / PAGE_WIDTH, height / PAGE_HEIGHT);
  const objects = board.pages[page]?.objects || [];
  for (const o of objects) {
    if (extras.hideId && o.id === extras.hideId) continue;
    drawObject(ctx, o);
  }
  if (extras.draft) drawObject(ctx, extras.draft);
  if (extras.preview) drawObject(ctx, extras.preview);
  for (const p of extras.lasers || []) drawLaser(ctx, p);
  ctx.restore();
}

/** The page as a PNG Blob (1600 × 900, white background). */
export function pageToPng(board, page) {
  const canvas = document.createElement('canvas');
  canvas.width = PAGE_WIDTH;
  canvas.height = PAGE_HEIGHT;
  paintBoard(canvas.getContext('2d'), board, page, PAGE_WIDTH, PAGE_HEIGHT);
  return new Promise((resolve, reject) => canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error('toBlob failed'))), 'image/png'));
}
