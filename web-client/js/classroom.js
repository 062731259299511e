// A remote classroom's big screen: the teacher's screen share (or camera) large, the teacher's
// camera picture-in-picture, the classroom on stage beside it, our own picture small; below, the
// shared whiteboard (drawing when the teacher allows it) and the vote card.

import { h, setText, clear } from './dom.js';
import { runDeviceCheck } from './devicecheck.js';
import { LiveSession } from './live.js';
import { RemoteMedia } from './remote-media.js';
import { teacherOf, handRaised, isOnStage } from './state.js';
import { stopStream } from './media.js';
import { announce, attachStream, videoElement, messageScreen } from './ui.js';
import { showFailure, openClass } from './errors.js';
import { statusPill, connectStatus } from './status.js';
import { boardPanel } from './board.js';
import { voteCard } from './poll-ui.js';
import { askName } from './name-form.js';

const NAME_FORM = {
  storageKey: 'tandem.classroomName',
  inputId: 'classroom-name',
  maxlength: '200',
  autocomplete: 'organization',
  testid: 'join-form',
  continueTestid: 'name-continue',
  keys: {
    heading: 'classroom.joinHeading',
    intro: 'classroom.joinIntro',
    label: 'classroom.nameLabel',
    hint: 'classroom.nameHint',
    missing: 'classroom.nameMissing',
    continue: 'classroom.continue',
  },
};

export async function renderClassroom(root, { classId, token, onLive }) {
  const info = await openClass(root, { classId, token, retry: () => renderClassroom(root, { classId, token, onLive }) });
  if (!info) return;
  const name = await askName(root, info, NAME_FORM);
  const media = await runDeviceCheck(root, { confirmKey: 'classroom.join', headingParams: { title: info.title }, netcheck: { classId, token } });
  const live = new LiveSession({
    token,
    name,
    local: { microphone: media.microphone, camera: media.camera, stream: media.stream },
  });
  onLive(live);
  buildLivePage(root, { info, name, live, media, rejoin: () => renderClassroom(root, { classId, token, onLive }) });
  live.start();
}


function buildLivePage(root, { info, name, live, media, rejoin }) {
  const remote = new RemoteMedia(document.getElementById('remote-audio'));
  const mainVideo = videoElement({ testid: 'main-video', label: 'classroom.mainVideo' });
  const mainCaption = h('figcaption', { testid: 'main-caption' });
  const mainEmpty = h('p', { class: 'no-video', testid: 'main-empty', i18n: 'classroom.waitingTeacher' });
  const pipVideo = videoElement({ testid: 'pip-video', label: 'classroom.pipVideo' });
  const pip = h('figure', { class: 'pip', hidden: true }, pipVideo);
  const stageList = h('div', { class: 'stage-list', testid: 'stage-list' });
  const selfVideo = videoElement({ testid: 'self-view', label: 'classroom.selfView', mirrored: true });
  const selfBadge = h('span', { class: 'badge stage', i18n: 'classroom.youOnStage', hidden: true, testid: 'self-on-stage' });
  attachStream(selfVideo, media.camera ? new MediaStream([media.camera]) : null);
  const banner = h('p', { class: 'banner', role: 'status', testid: 'link-banner', hidden: true });
  const notice = h('p', { class: 'notice', role: 'alert', testid: 'notice', hidden: true });
  const handButton = h('button', { type: 'button', class: 'primary', testid: 'hand-toggle', 'aria-pressed': 'false' });
  const micButton = h('button', { type: 'button', testid: 'mic-toggle', 'aria-pressed': 'false', disabled: !media.microphone });
  const audioOnlyButton = h('button', { type: 'button', testid: 'audio-only', 'aria-pressed': 'false' });
  const leaveButton = h('button', { type: 'button', class: 'danger', i18n: 'classroom.leave', testid: 'leave' });
  const audioOnlyNote = h('p', { class: 'hint', i18n: 'classroom.audioOnlyNote', hidden: true, testid: 'audio-only-note' });
  let audioOnly = false;
  const board = boardPanel(live, { isTeacher: false });

  clear(root);
  root.append(h('section', { class: 'live classroom', testid: 'classroom-live' },
    h('header', { class: 'live-bar' },
      h('div', {}, h('h1', { class: 'class-title', testid: 'class-title' }, info.title),
        h('p', { class: 'subtitle', i18n: 'classroom.subtitle', i18nParams: { name, teacher: info.teacher_name } })),
      statusPill()),
    banner,
    notice,
    h('div', { class: 'bigscreen' },
      h('figure', { class: 'main-video' }, mainVideo, mainEmpty, mainCaption, pip),
      h('div', { class: 'side-videos' },
        stageList,
        h('figure', { class: 'self' }, selfVideo,
          h('figcaption', {}, h('span', { i18n: 'classroom.selfCaption' }), ' ', selfBadge)))),
    h('div', { class: 'controls classroom-controls', role: 'toolbar', 'aria-label': '', i18nAttr: { 'aria-label': 'classroom.controls' } },
      handButton, micButton, audioOnlyButton, leaveButton),
    audioOnlyNote,
    h('div', { class: 'work-grid' }, board.element, h('div', { class: 'side' }, voteCard(live)))));
  connectStatus(live, root.querySelector('[data-testid="connection-status"]'), banner);

  function syncControls() {
    const state = live.state;
    const me = state.you && state.you.classroom_id;
    const raised = !!me && handRaised(state, me);
    handButton.setAttribute('aria-pressed', String(raised));
    setText(handButton, raised ? 'classroom.lowerHand' : 'classroom.raiseHand');
    const micOn = !!media.microphone && media.microphone.enabled;
    micButton.setAttribute('aria-pressed', String(!micOn));
    setText(micButton, micOn ? 'control.micMute' : 'control.micUnmute');
    audioOnlyButton.setAttribute('aria-pressed', String(audioOnly));
    setText(audioOnlyButton, audioOnly ? 'classroom.videoBack' : 'classroom.audioOnly');
    audioOnlyNote.hidden = !audioOnly;
    selfBadge.hidden = !(me && isOnStage(state, me));
  }

  handButton.addEventListener('click', () => {
    const me = live.state.you && live.state.you.classroom_id;
    if (me && handRaised(live.state, me)) live.lowerHand(); else live.raiseHand();
  });
  micButton.addEventListener('click', () => {
    media.microphone.enabled = !media.microphone.enabled;
    notice.hidden = true;
    syncControls();
    announce(media.microphone.enabled ? 'control.micIsOn' : 'control.micIsOff');
  });
  audioOnlyButton.addEventListener('click', () => {
    audioOnly = !audioOnly;
    live.setAudioOnly(audioOnly);
    syncControls();
    renderVideos();
    announce(audioOnly ? 'classroom.audioOnlyOn' : 'classroom.audioOnlyOff');
  });
  leaveButton.addEventListener('click', () => {
    live.leave();
    cleanup();
    messageScreen(root, {
      title: 'classroom.leftTitle',
      body: 'classroom.leftBody',
      testid: 'left',
      actions: [{ i18n: 'classroom.rejoin', onclick: rejoin, primary: true, testid: 'rejoin' }],
    });
  });

  function renderVideos() {
    const state = live.state;
    const teacher = teacherOf(state);
    const tid = teacher && teacher.classroom_id;
    // A share that stopped sending (while the server still lists it) gives the screen back to the camera.
    const screenEntry = tid ? remote.entryFor(tid, 'screen') : null;
    const screen = screenEntry && !live.isStalled(screenEntry.info.track_id) ? screenEntry.stream : null;
    const camera = tid ? remote.streamFor(tid, 'camera') : null;
    const main = screen || camera;
    attachStream(mainVideo, audioOnly ? null : main);
    mainVideo.hidden = audioOnly || !main;
    mainEmpty.hidden = !mainVideo.hidden;
    setText(mainEmpty, audioOnly ? 'classroom.audioOnlyNote' : 'classroom.waitingTeacher');
    const teacherName = teacher ? teacher.name : info.teacher_name;
    if (main && !audioOnly) setText(mainCaption, screen ? 'classroom.teacherScreen' : 'classroom.teacherCamera', { name: teacherName });
    else mainCaption.textContent = '';
    pip.hidden = audioOnly || !(screen && camera);
    attachStream(pipVideo, pip.hidden ? null : camera);

    // Classrooms on stage (other than us), beside the teacher.
    const me = state.you && state.you.classroom_id;
    const onStage = state.stage.filter((id) => id !== me);
    const wanted = new Set(onStage);
    for (const fig of [...stageList.children]) {
      if (!wanted.has(fig.dataset.classroomId)) {
        const v = fig.querySelector('video');
        if (v) attachStream(v, null);
        fig.remove();
      }
    }
    for (const id of onStage) {
      let fig = stageList.querySelector(`[data-classroom-id="${CSS.escape(id)}"]`);
      const p = state.participants[id];
      const pname = p ? p.name : id;
      if (!fig) {
        fig = h('figure', { class: 'stage-item', testid: 'stage-item', dataset: { classroomId: id } },
          videoElement({ testid: 'stage-video', label: 'classroom.stageVideo', labelParams: { name: pname } }),
          h('p', { class: 'no-video', i18n: 'classroom.stageNoVideo' }),
          h('figcaption', { i18n: 'classroom.onStage', i18nParams: { name: pname } }));
        stageList.append(fig);
      }
      const stream = audioOnly ? null : remote.streamFor(id, 'camera');
      const v = fig.querySelector('video');
      attachStream(v, stream);
      v.hidden = !stream;
      fig.querySelector('.no-video').hidden = !!stream;
      setText(fig.querySelector('.no-video'), audioOnly ? 'classroom.audioOnlyShort' : 'classroom.stageNoVideo');
    }
  }

  let lastStage = [];
  live.addEventListener('change', (e) => {
    const state = e.detail.state;
    for (const id of state.stage) {
      if (!lastStage.includes(id)) announce('classroom.stageAnnounce', { name: state.participants[id]?.name || id });
    }
    lastStage = state.stage;
    syncControls();
    renderVideos();
  });
  live.addEventListener('remote-tracks', (e) => {
    remote.update(e.detail.tracks);
    renderVideos();
  });
  live.addEventListener('stalled', () => renderVideos());
  live.addEventListener('mute-requested', () => {
    if (media.microphone) media.microphone.enabled = false;
    setText(notice, media.microphone ? 'classroom.mutedByTeacher' : 'classroom.muteRequestedNoMic');
    notice.hidden = false;
    syncControls();
  });
  live.addEventListener('server-error', (e) => {
    setText(notice, `serverError.${e.detail.code}`);
    notice.hidden = false;
  });
  live.addEventListener('fatal', (e) => {
    cleanup();
    showFailure(root, e.detail.code);
  });
  live.addEventListener('ended', () => {
    cleanup();
    showFailure(root, 'ended');
  });
  syncControls();
  renderVideos();

  function cleanup() {
    board.stop();
    remote.clear();
    stopStream(media.stream);
  }
}
