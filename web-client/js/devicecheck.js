// The device check before going live: choose a camera and a microphone, see the preview, watch the
// microphone level. Resolves with the tracks to publish (either may be null: "continue without").

import { h, setText, clear } from './dom.js';
import { openMedia, listDevices, stopStream, LevelMeter, animateMeter, MediaError } from './media.js';
import { attachStream, videoElement, levelMeter, announce } from './ui.js';
import { checkNetwork, verdict } from './netcheck.js';

/**
 * Render the check into `root`. `confirmKey`: label of the go-on button ("Go live", "Join class").
 * `netcheck` ({classId, token}): also test which paths of this network reach the media server.
 * Resolves to {stream, camera, microphone}.
 */
export function runDeviceCheck(root, { confirmKey, headingParams, netcheck }) {
  return new Promise((resolve) => {
    const stream = new MediaStream();
    let stopMeter = () => {};
    const video = videoElement({ testid: 'preview', label: 'device.preview', mirrored: true });
    const meter = levelMeter({ label: 'device.micLevel', testid: 'mic-level' });
    const cameraSelect = h('select', { id: 'camera-select', testid: 'camera-select' });
    const micSelect = h('select', { id: 'mic-select', testid: 'mic-select' });
    const problems = h('div', { class: 'problems', testid: 'device-problems', role: 'alert' });
    const confirm = h('button', { type: 'button', class: 'primary', i18n: confirmKey, testid: 'device-confirm' });
    const retry = h('button', { type: 'button', i18n: 'device.retry', testid: 'device-retry', hidden: true });
    const noVideo = h('p', { class: 'no-video', i18n: 'device.noCamera', hidden: true });
    const errors = { camera: null, microphone: null };

    clear(root);
    root.append(h('section', { class: 'device-check', testid: 'device-check', 'aria-labelledby': 'device-heading' },
      h('h1', { id: 'device-heading', i18n: 'device.heading', i18nParams: headingParams, tabindex: '-1' }),
      h('p', { i18n: 'device.intro' }),
      h('div', { class: 'device-grid' },
        h('div', { class: 'preview-box' }, video, noVideo),
        h('div', { class: 'device-controls' },
          h('label', { for: 'camera-select', i18n: 'device.camera' }), cameraSelect,
          h('label', { for: 'mic-select', i18n: 'device.microphone' }), micSelect,
          h('span', { class: 'meter-label', i18n: 'device.micLevel', 'aria-hidden': 'true' }), meter,
          problems,
          h('div', { class: 'actions' }, retry, confirm))),
      netcheck ? networkCheck(netcheck) : null));
    root.querySelector('h1').focus();

    const track = (kind) => (kind === 'camera' ? stream.getVideoTracks()[0] : stream.getAudioTracks()[0]) || null;

    function showProblems() {
      clear(problems);
      for (const [device, kind] of Object.entries(errors)) {
        if (kind) problems.append(h('p', { i18n: `device.error.${kind}.${device}` }));
      }
      const anyProblem = errors.camera || errors.microphone;
      retry.hidden = !anyProblem;
      const nothing = !track('camera') && !track('microphone');
      setText(confirm, nothing ? 'device.continueWithout' : confirmKey);
      noVideo.hidden = !!track('camera');
      video.hidden = !track('camera');
    }

    function useTrack(kind, newTrack) {
      const old = track(kind);
      if (old) {
        stream.removeTrack(old);
        old.stop();
      }
      if (newTrack) stream.addTrack(newTrack);
      if (kind === 'camera') attachStream(video, newTrack ? new MediaStream([newTrack]) : null);
      if (kind === 'microphone') {
        stopMeter();
        stopMeter = newTrack ? animateMeter(new LevelMeter(newTrack), meter) : () => {};
      }
    }

    async function fillSelects() {
      let devices = { cameras: [], microphones: [] };
      try { devices = await listDevices(); } catch { /* shown as errors already */ }
      // Without permission, browsers list devices with empty ids that cannot be chosen: leave them out.
      const usable = (list) => list.filter((d) => d.deviceId);
      for (const [select, list, kind] of [[cameraSelect, usable(devices.cameras), 'camera'], [micSelect, usable(devices.microphones), 'microphone']]) {
        clear(select);
        const current = track(kind)?.getSettings?.().deviceId;
        list.forEach((d, i) => select.append(d.label
          ? h('option', { value: d.deviceId }, d.label)
          : h('option', { value: d.deviceId, i18n: `device.unnamed.${kind}`, i18nParams: { n: i + 1 } })));
        select.append(h('option', { value: '', i18n: 'device.none' }));
        select.value = current && list.some((d) => d.deviceId === current) ? current : (track(kind) ? select.options[0].value : '');
      }
    }

    async function open(kind, deviceId) {
      const asks = { camera: false, microphone: false };
      asks[kind] = deviceId || true;
      try {
        const { stream: s, errors: errs } = await openMedia(asks);
        const t = kind === 'camera' ? s.getVideoTracks()[0] : s.getAudioTracks()[0];
        errors[kind] = errs[kind] || null;
        useTrack(kind, t || null);
      } catch (err) {
        errors[kind] = err instanceof MediaError ? err.kind : 'failed';
        useTrack(kind, null);
      }
    }

    async function openBoth() {
      try {
        const { stream: s, errors: errs } = await openMedia({ camera: true, microphone: true });
        errors.camera = errs.camera || null;
        errors.microphone = errs.microphone || null;
        useTrack('camera', s.getVideoTracks()[0] || null);
        useTrack('microphone', s.getAudioTracks()[0] || null);
      } catch (err) {
        const kind = err instanceof MediaError ? err.kind : 'failed';
        errors.camera = kind;
        errors.microphone = kind;
      }
      await fillSelects();
      showProblems();
      announce(errors.camera || errors.microphone ? 'device.announceProblem' : 'device.announceReady');
    }

    cameraSelect.addEventListener('change', async () => {
      if (cameraSelect.value === '') { errors.camera = null; useTrack('camera', null); } else await open('camera', cameraSelect.value);
      showProblems();
    });
    micSelect.addEventListener('change', async () => {
      if (micSelect.value === '') { errors.microphone = null; useTrack('microphone', null); } else await open('microphone', micSelect.value);
      showProblems();
    });
    retry.addEventListener('click', () => openBoth());
    confirm.addEventListener('click', () => {
      stopMeter();
      attachStream(video, null);
      resolve({ stream, camera: track('camera'), microphone: track('microphone') });
    });
    openBoth();
  });
}

export { stopStream };

/** The school network box: UDP, TCP and TURN, each checked against the server, and the verdict. */
function networkCheck({ classId, token }) {
  const rows = {};
  const list = h('ul', { class: 'network-paths' });
  for (const path of ['udp', 'tcp', 'turn']) {
    const state = h('span', { class: 'network-state', i18n: 'network.state.pending', testid: `network-${path}`, dataset: { state: 'pending' } });
    rows[path] = state;
    list.append(h('li', {}, h('span', { i18n: `network.path.${path}` }), ' ', state));
  }
  const summary = h('p', { class: 'network-verdict', i18n: 'network.checking', testid: 'network-verdict', role: 'status' });
  const post = async (sdp) => {
    const res = await fetch(`/api/classes/${encodeURIComponent(classId)}/netcheck`, {
      method: 'POST',
      headers: { 'content-type': 'application/sdp', authorization: `Bearer ${token}` },
      body: sdp,
    });
    const links = res.headers.get('link');
    return { status: res.status, sdp: await res.text(), links: links ? [links] : [] };
  };
  checkNetwork({
    post,
    onResult: (path, state) => {
      rows[path].dataset.state = state;
      setText(rows[path], `network.state.${state}`);
    },
  }).then((results) => {
    const best = verdict(results);
    summary.dataset.verdict = best;
    setText(summary, `network.verdict.${best}`);
  });
  return h('section', { class: 'network-check', testid: 'network-check', 'aria-labelledby': 'network-heading' },
    h('h2', { id: 'network-heading', i18n: 'network.heading' }),
    h('p', { i18n: 'network.intro' }),
    list, summary);
}
