// The lead teacher's page: remote classrooms as tiles, the invite link and its QR code, the
// raise-hand queue, stage, mute and drawing-permission controls, screen share, End class; the
// whiteboard, the poll panel, the pupil voting link (QR code) and the class report.

import { h, setText, setAttrText, clear } from './dom.js';
import { getClass, reportPageUrl, reportCsv } from './api.js';
import { runDeviceCheck } from './devicecheck.js';
import { LiveSession } from './live.js';
import { RemoteMedia } from './remote-media.js';
import { remoteClassrooms, isOnStage, handRaised } from './state.js';
import { openScreen, stopStream, MediaError } from './media.js';
import { encodeQr, qrToSvg } from './qr.js';
import { t, onLanguageChange } from './i18n.js';
import { announce, attachStream, videoElement, levelMeter } from './ui.js';
import { showFailure, openClass } from './errors.js';
import { statusPill, connectStatus } from './status.js';
import { boardPanel } from './board.js';
import { mayDraw } from './board-model.js';
import { teacherPollPanel } from './poll-ui.js';

export async function renderTeacher(root, { classId, token, onLive }) {
  const info = await openClass(root, { classId, token, retry: () => renderTeacher(root, { classId, token, onLive }) });
  if (!info) return;
  const media = await runDeviceCheck(root, { confirmKey: 'teacher.goLive', headingParams: { title: info.title }, netcheck: { classId, token } });
  const live = new LiveSession({
    token,
    name: info.teacher_name,
    local: { microphone: media.microphone, camera: media.camera, stream: media.stream },
  });
  onLive(live);
  buildLivePage(root, { info, classId, token, live, media });
  live.start();
}

/**
 * A class link (`invite` for classrooms, `pupil` for pupils' voting): from the server, which hands
 * it to the teacher token, else as saved on this computer when the class was created.
 */
export function linkFor(kind, classId, info) {
  const field = kind === 'pupil' ? 'pupil_url' : 'invite_url';
  if (info && typeof info[field] === 'string' && info[field]) return info[field];
  try { return localStorage.getItem(`tandem.${kind}.${classId}`); } catch { return null; }
}

/** The invite link (kind `invite`) or the pupil voting link (kind `pupil`), copyable, as a QR code. */
function linkPanel(kind, classId, info) {
  const url = linkFor(kind, classId, info);
  const k = `teacher.${kind}`;
  const section = h('section', { class: `card invite link-${kind}`, 'aria-labelledby': `${kind}-heading`, testid: kind === 'pupil' ? 'pupil-link-panel' : 'invite' },
    h('h2', { id: `${kind}-heading`, i18n: `${k}.heading` }));
  if (!url) {
    section.append(h('p', { i18n: `${k}.unavailable`, testid: `${kind}-unavailable` }));
    return section;
  }
  const inputId = `${kind}-link`;
  const input = h('input', { id: inputId, readOnly: true, value: url, testid: kind === 'pupil' ? 'pupil-link' : 'invite-link' });
  const copied = h('span', { class: 'copied', role: 'status', testid: `${kind}-copied` });
  const copy = h('button', {
    type: 'button',
    i18n: `${k}.copy`,
    testid: kind === 'pupil' ? 'copy-pupil' : 'copy-invite',
    onclick: async () => {
      let ok = false;
      try {
        // What the field shows now: the links are re-signed after a reconnect.
        await navigator.clipboard.writeText(input.value);
        ok = true;
      } catch {
        input.select();
        try { ok = document.execCommand('copy'); } catch { ok = false; }
      }
      setText(copied, ok ? 'teacher.invite.copied' : 'teacher.invite.copyFailed');
    },
  });
  const qr = h('div', { class: 'qr', testid: `${kind}-qr` });
  try {
    qr.innerHTML = qrToSvg(encodeQr(url), { title: t(`${k}.qrLabel`) });
    onLanguageChange(() => qr.firstElementChild?.setAttribute('aria-label', t(`${k}.qrLabel`)));
  } catch {
    qr.append(h('p', { i18n: 'teacher.invite.qrTooLong' }));
  }
  const parts = [
    h('label', { for: inputId, i18n: `${k}.label` }),
    h('div', { class: 'copy-row' }, input, copy),
    copied,
    qr,
    h('p', { class: 'hint', i18n: `${k}.hint` }),
  ];
  if (kind === 'pupil') {
    // The code is big on request, so a class can scan it from the projector.
    const show = h('button', { type: 'button', i18n: 'teacher.pupil.showLarge', testid: 'pupil-qr-large', 'aria-expanded': 'false' });
    show.addEventListener('click', () => {
      const large = qr.classList.toggle('qr-large');
      show.setAttribute('aria-expanded', String(large));
      setText(show, large ? 'teacher.pupil.showSmall' : 'teacher.pupil.showLarge');
    });
    parts.splice(4, 0, show);
  }
  section.append(...parts);
  return section;
}

/**
 * The class report: an HTML page in a new tab (opened with a one-use ticket) and a CSV download
 * (fetched with the token in a header). The teacher token never goes into a URL.
 */
function reportPanel(classId, token) {
  const offset = () => -new Date().getTimezoneOffset();
  const failed = h('p', { class: 'form-error', role: 'alert', testid: 'report-error', hidden: true });
  const fail = () => { setText(failed, 'teacher.report.failed'); failed.hidden = false; };
  const open = h('button', { type: 'button', class: 'button', testid: 'report-html', i18n: 'teacher.report.open', onclick: async () => {
    failed.hidden = true;
    // Opened at once, inside the click, so no popup blocker stops it; pointed at the report
    // once the ticket is there.
    const tab = window.open('', '_blank');
    try {
      const url = await reportPageUrl(classId, token, offset());
      if (tab) { tab.opener = null; tab.location.href = url; } else location.assign(url);
    } catch {
      if (tab) tab.close();
      fail();
    }
  } });
  const csv = h('button', { type: 'button', class: 'button', testid: 'report-csv', i18n: 'teacher.report.csv', onclick: async () => {
    failed.hidden = true;
    try {
      const blob = await reportCsv(classId, token, offset());
      const url = URL.createObjectURL(blob);
      const a = h('a', { href: url, download: `report-${classId}.csv`, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch {
      fail();
    }
  } });
  return h('section', { class: 'card report', 'aria-labelledby': 'report-heading', testid: 'report-panel' },
    h('h2', { id: 'report-heading', i18n: 'teacher.report.heading' }),
    h('p', { class: 'hint', i18n: 'teacher.report.hint' }),
    h('div', { class: 'actions' }, open, csv),
    failed);
}

function buildLivePage(root, { info, classId, token, live, media }) {
  const remote = new RemoteMedia(document.getElementById('remote-audio'));
  const selfVideo = videoElement({ testid: 'self-view', label: 'teacher.selfView', mirrored: true });
  const screenPreview = videoElement({ testid: 'screen-preview', label: 'teacher.screenPreview' });
  attachStream(selfVideo, media.camera ? new MediaStream([media.camera]) : null);

  const micButton = h('button', { type: 'button', testid: 'mic-toggle', 'aria-pressed': 'false', disabled: !media.microphone });
  const camButton = h('button', { type: 'button', testid: 'camera-toggle', 'aria-pressed': 'false', disabled: !media.camera });
  const shareButton = h('button', { type: 'button', testid: 'share-screen', 'aria-pressed': 'false' });
  const endButton = h('button', { type: 'button', class: 'danger', i18n: 'teacher.end', testid: 'end-class' });
  const endConfirm = h('div', { class: 'confirm', hidden: true, role: 'group', 'aria-labelledby': 'end-question' },
    h('p', { id: 'end-question', i18n: 'teacher.endQuestion' }),
    h('button', { type: 'button', class: 'danger', i18n: 'teacher.endConfirm', testid: 'end-confirm', onclick: () => live.endClass() }),
    h('button', { type: 'button', i18n: 'action.cancel', testid: 'end-cancel', onclick: () => { endConfirm.hidden = true; endButton.focus(); } }));
  endButton.addEventListener('click', () => {
    endConfirm.hidden = false;
    endConfirm.querySelector('button').focus();
  });
  const notice = h('p', { class: 'notice', role: 'status', testid: 'notice', hidden: true });
  const banner = h('p', { class: 'banner', role: 'status', testid: 'link-banner', hidden: true });

  const board = boardPanel(live, { isTeacher: true });
  const tilesList = h('ul', { class: 'tiles', testid: 'classroom-tiles' });
  const emptyTiles = h('p', { class: 'empty', i18n: 'teacher.noClassrooms', testid: 'no-classrooms' });
  const classroomsHeading = h('h2', { id: 'classrooms-heading', i18n: 'teacher.classrooms', i18nParams: { count: 0 } });
  const handsList = h('ol', { class: 'hands', testid: 'hands-queue' });
  const handsEmpty = h('p', { class: 'empty', i18n: 'teacher.noHands' });

  clear(root);
  root.append(h('section', { class: 'live teacher', testid: 'teacher-live' },
    h('header', { class: 'live-bar' },
      h('div', {}, h('h1', { class: 'class-title', testid: 'class-title' }, info.title),
        h('p', { class: 'subtitle', i18n: 'teacher.subtitle', i18nParams: { name: info.teacher_name } })),
      statusPill()),
    banner,
    notice,
    h('div', { class: 'teacher-grid' },
      h('section', { class: 'card self-panel', 'aria-labelledby': 'self-heading' },
        h('h2', { id: 'self-heading', i18n: 'teacher.you' }),
        h('div', { class: 'video-box' }, selfVideo),
        h('div', { class: 'video-box', hidden: true, testid: 'screen-preview-box' }, screenPreview),
        h('div', { class: 'controls' }, micButton, camButton, shareButton),
        h('div', { class: 'controls' }, endButton),
        endConfirm),
      h('section', { class: 'classrooms', 'aria-labelledby': 'classrooms-heading' }, classroomsHeading, emptyTiles, tilesList),
      h('div', { class: 'side' },
        linkPanel('invite', classId, info),
        h('section', { class: 'card', 'aria-labelledby': 'hands-heading' },
          h('h2', { id: 'hands-heading', i18n: 'teacher.hands' }), handsEmpty, handsList))),
    h('div', { class: 'work-grid' },
      board.element,
      h('div', { class: 'side' },
        teacherPollPanel(live),
        linkPanel('pupil', classId, info),
        reportPanel(classId, token)))));
  connectStatus(live, root.querySelector('[data-testid="connection-status"]'), banner);

  // --- local controls ---
  function syncButtons() {
    const micOn = !!media.microphone && media.microphone.enabled;
    micButton.setAttribute('aria-pressed', String(!micOn));
    setText(micButton, micOn ? 'control.micMute' : 'control.micUnmute');
    const camOn = !!media.camera && media.camera.enabled;
    camButton.setAttribute('aria-pressed', String(!camOn));
    setText(camButton, camOn ? 'control.cameraOff' : 'control.cameraOn');
    const sharing = !!live.local.screen;
    shareButton.setAttribute('aria-pressed', String(sharing));
    setText(shareButton, sharing ? 'teacher.stopShare' : 'teacher.share');
    screenPreview.hidden = !sharing;
    screenPreview.parentElement.hidden = !sharing;
  }
  micButton.addEventListener('click', () => {
    media.microphone.enabled = !media.microphone.enabled;
    syncButtons();
    announce(media.microphone.enabled ? 'control.micIsOn' : 'control.micIsOff');
  });
  camButton.addEventListener('click', () => {
    media.camera.enabled = !media.camera.enabled;
    syncButtons();
  });
  shareButton.addEventListener('click', async () => {
    if (live.local.screen) {
      const track = live.local.screen;
      await live.stopScreen();
      track.stop();
      attachStream(screenPreview, null);
      syncButtons();
      announce('teacher.shareStopped');
      return;
    }
    let track;
    try {
      track = await openScreen();
    } catch (err) {
      showNotice(err instanceof MediaError && err.kind === 'unsupported' ? 'teacher.shareUnsupported' : 'teacher.shareFailed');
      return;
    }
    if (!track) return; // cancelled in the picker
    track.addEventListener('ended', () => { if (live.local.screen === track) shareButton.click(); });
    await live.startScreen(track);
    attachStream(screenPreview, new MediaStream([track]));
    syncButtons();
    announce('teacher.shareStarted');
  });
  syncButtons();

  function showNotice(key, params) {
    setText(notice, key, params);
    notice.hidden = false;
  }

  // --- classroom tiles ---
  const tiles = new Map(); // classroom_id -> {li, parts}

  function makeTile(p) {
    const video = videoElement({ testid: 'classroom-video', label: 'teacher.tile.video', labelParams: { name: p.name } });
    const name = h('h3', { class: 'tile-name' }, p.name);
    const conn = h('span', { class: 'badge', testid: 'classroom-connection' });
    const quality = h('span', { class: 'badge quality', testid: 'quality', dataset: { quality: 'unknown' }, i18n: 'quality.unknown' });
    const stageBadge = h('span', { class: 'badge stage', i18n: 'teacher.tile.onStage', hidden: true, testid: 'on-stage-badge' });
    const handBadge = h('span', { class: 'badge hand', i18n: 'teacher.tile.hand', hidden: true, testid: 'hand-badge' });
    const meter = levelMeter({ label: 'teacher.tile.level', labelParams: { name: p.name }, testid: 'classroom-level' });
    const stageBtn = h('button', { type: 'button', testid: 'stage-toggle', onclick: () => {
      if (isOnStage(live.state, p.classroom_id)) live.stageRemove(p.classroom_id); else live.stageAdd(p.classroom_id);
    } });
    const muteBtn = h('button', { type: 'button', testid: 'ask-mute', i18n: 'teacher.tile.askMute', onclick: () => {
      live.muteRequest(p.classroom_id);
      announce('teacher.muteAsked', { name: p.name });
    } });
    const drawBtn = h('button', { type: 'button', testid: 'draw-toggle', 'aria-pressed': 'false', onclick: () => {
      live.boardOp({ op: 'set_draw_permission', target: { classroom: p.classroom_id }, allowed: !mayDraw(live.board.board, p.classroom_id) });
    } });
    const drawBadge = h('span', { class: 'badge draw', i18n: 'teacher.tile.mayDraw', hidden: true, testid: 'draw-badge' });
    const noVideo = h('p', { class: 'no-video', i18n: 'teacher.tile.noVideo' });
    const li = h('li', { class: 'tile', testid: 'classroom-tile', dataset: { classroomId: p.classroom_id }, 'aria-label': p.name },
      h('div', { class: 'video-box' }, video, noVideo),
      h('div', { class: 'tile-info' }, name, h('div', { class: 'badges' }, conn, quality, stageBadge, handBadge, drawBadge), meter),
      h('div', { class: 'controls' }, stageBtn, muteBtn, drawBtn));
    return { li, video, name, conn, quality, stageBadge, handBadge, drawBadge, meter, stageBtn, muteBtn, drawBtn, noVideo };
  }

  function renderClassrooms(state) {
    const rooms = remoteClassrooms(state);
    setText(classroomsHeading, 'teacher.classrooms', { count: rooms.length });
    emptyTiles.hidden = rooms.length > 0;
    const ids = new Set(rooms.map((r) => r.classroom_id));
    for (const [id, tile] of tiles) {
      if (!ids.has(id)) {
        tile.li.remove();
        tiles.delete(id);
      }
    }
    for (const p of rooms) {
      let tile = tiles.get(p.classroom_id);
      if (!tile) {
        tile = makeTile(p);
        tiles.set(p.classroom_id, tile);
        tilesList.append(tile.li);
      }
      const onStage = isOnStage(state, p.classroom_id);
      // Signaling first (a page that is away is reconnecting), then its media legs.
      const conn = !p.connected ? 'reconnecting' : p.media_lost ? 'lost' : 'connected';
      setText(tile.conn, { connected: 'teacher.tile.connected', reconnecting: 'teacher.tile.reconnecting', lost: 'teacher.tile.connectionLost' }[conn]);
      tile.conn.dataset.state = conn;
      tile.stageBadge.hidden = !onStage;
      tile.handBadge.hidden = !handRaised(state, p.classroom_id);
      tile.li.classList.toggle('on-stage', onStage);
      setText(tile.stageBtn, onStage ? 'teacher.tile.unstage' : 'teacher.tile.stage');
      setAttrText(tile.stageBtn, 'aria-label', onStage ? 'teacher.tile.unstageLabel' : 'teacher.tile.stageLabel', { name: p.name });
      setAttrText(tile.muteBtn, 'aria-label', 'teacher.tile.askMuteLabel', { name: p.name });
    }
    renderHands(state);
    renderVideos();
    renderDraw();
  }

  function renderDraw() {
    for (const [id, tile] of tiles) {
      const allowed = mayDraw(live.board.board, id);
      const name = live.state.participants[id]?.name || id;
      tile.drawBtn.setAttribute('aria-pressed', String(allowed));
      setText(tile.drawBtn, allowed ? 'teacher.tile.forbidDraw' : 'teacher.tile.allowDraw');
      setAttrText(tile.drawBtn, 'aria-label', allowed ? 'teacher.tile.forbidDrawLabel' : 'teacher.tile.allowDrawLabel', { name });
      tile.drawBadge.hidden = !allowed;
    }
  }
  live.addEventListener('board', () => renderDraw());

  function renderHands(state) {
    clear(handsList);
    handsEmpty.hidden = state.hands.length > 0;
    for (const id of state.hands) {
      const p = state.participants[id];
      const name = p ? p.name : id;
      handsList.append(h('li', { testid: 'hand', dataset: { classroomId: id } },
        h('span', { class: 'hand-name' }, name),
        isOnStage(state, id) ? null : h('button', { type: 'button', i18n: 'teacher.tile.stage', i18nAttr: { 'aria-label': 'teacher.tile.stageLabel' }, i18nParams: { name }, onclick: () => live.stageAdd(id) }),
        h('button', { type: 'button', i18n: 'teacher.lowerHand', i18nAttr: { 'aria-label': 'teacher.lowerHandLabel' }, i18nParams: { name }, onclick: () => live.lowerHand(id) })));
    }
  }

  function renderVideos() {
    for (const [id, tile] of tiles) {
      const stream = remote.streamFor(id, 'camera');
      attachStream(tile.video, stream);
      tile.video.hidden = !stream;
      tile.noVideo.hidden = !!stream;
    }
  }

  let lastHands = [];
  live.addEventListener('change', (e) => {
    const state = e.detail.state;
    const newHands = state.hands.filter((id) => !lastHands.includes(id));
    for (const id of newHands) announce('teacher.handRaised', { name: state.participants[id]?.name || id });
    lastHands = state.hands;
    renderClassrooms(state);
  });
  live.addEventListener('remote-tracks', (e) => {
    remote.update(e.detail.tracks);
    renderVideos();
  });
  live.addEventListener('quality', (e) => {
    for (const [id, tile] of tiles) {
      const q = e.detail.byClassroom[id] || 'unknown';
      tile.quality.dataset.quality = q;
      setText(tile.quality, `quality.${q}`);
    }
  });
  live.addEventListener('server-error', (e) => showNotice(`serverError.${e.detail.code}`));
  live.addEventListener('status', (e) => { if (e.detail.status === 'joined') refreshLinks(); });
  live.addEventListener('fatal', (e) => {
    cleanup();
    showFailure(root, e.detail.code);
  });
  live.addEventListener('ended', () => {
    cleanup();
    showFailure(root, 'ended');
  });
  const meterTimer = setInterval(() => {
    for (const [id, tile] of tiles) {
      const v = Math.round(remote.levelOf(id) * 100);
      tile.meter.style.setProperty('--level', `${v}%`);
      tile.meter.setAttribute('aria-valuenow', String(v));
    }
  }, 150);

  // After a reconnect (e.g. a server restart) the server may hand out freshly signed links.
  async function refreshLinks() {
    try {
      const fresh = await getClass(classId, token);
      for (const kind of ['invite', 'pupil']) {
        const url = linkFor(kind, classId, fresh);
        const input = root.querySelector(`#${kind}-link`);
        if (url && input && input.value !== url) {
          input.value = url;
          const qr = root.querySelector(`[data-testid="${kind}-qr"]`);
          try { qr.innerHTML = qrToSvg(encodeQr(url), { title: t(`teacher.${kind}.qrLabel`) }); } catch { /* keep the old code */ }
        }
      }
    } catch { /* keep the links shown */ }
  }

  function cleanup() {
    board.stop();
    clearInterval(meterTimer);
    remote.clear();
    stopStream(media.stream);
    if (live.local.screen) live.local.screen.stop();
  }
}
