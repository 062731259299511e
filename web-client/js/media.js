// Local media: cameras and microphones, level meters, screen share. Errors become a `kind`
// the pages explain: denied, missing, busy, insecure, unsupported, failed.

export class MediaError extends Error {
  constructor(kind, cause) {
    super(kind);
    this.kind = kind;
    this.cause = cause;
  }
}

export function mediaErrorKind(err) {
  switch (err && err.name) {
    case 'NotAllowedError':
    case 'SecurityError':
    case 'PermissionDeniedError':
      return 'denied';
    case 'NotFoundError':
    case 'OverconstrainedError':
    case 'DevicesNotFoundError':
      return 'missing';
    case 'NotReadableError':
    case 'TrackStartError':
    case 'AbortError':
      return 'busy';
    default:
      return 'failed';
  }
}

function mediaDevices() {
  if (!globalThis.isSecureContext) throw new MediaError('insecure');
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) throw new MediaError('unsupported');
  return navigator.mediaDevices;
}

/** Cameras and microphones (labels are only known after permission was given). */
export async function listDevices() {
  const devices = await mediaDevices().enumerateDevices();
  return {
    cameras: devices.filter((d) => d.kind === 'videoinput'),
    microphones: devices.filter((d) => d.kind === 'audioinput'),
  };
}

/**
 * Open camera and/or microphone. `camera`/`microphone`: false (skip), true (any) or a deviceId.
 * If both are asked and only one works, returns what works and the error of the other.
 */
export async function openMedia({ camera = true, microphone = true } = {}) {
  const md = mediaDevices();
  const constraint = (v, extra = {}) => (v === true ? { ...extra } : { deviceId: { exact: v }, ...extra });
  const video = camera ? constraint(camera, { width: { ideal: 1280 }, height: { ideal: 720 } }) : false;
  const audio = microphone ? constraint(microphone, { echoCancellation: true, noiseSuppression: true }) : false;
  if (!video && !audio) return { stream: new MediaStream(), errors: {} };
  try {
    return { stream: await md.getUserMedia({ video, audio }), errors: {} };
  } catch (err) {
    if (!(video && audio)) {
      const kind = mediaErrorKind(err);
      return { stream: new MediaStream(), errors: video ? { camera: kind } : { microphone: kind } };
    }
    // Try each on its own, so a missing camera does not take the microphone down with it.
    const stream = new MediaStream();
    const errors = {};
    for (const [name, c] of [['microphone', { audio }], ['camera', { video }]]) {
      try {
        const s = await md.getUserMedia(c);
        for (const track of s.getTracks()) stream.addTrack(track);
      } catch (e) {
        errors[name] = mediaErrorKind(e);
      }
    }
    return { stream, errors };
  }
}

export function stopStream(stream) {
  if (stream) for (const track of stream.getTracks()) track.stop();
}

/** Ask for a screen to share; resolves to a video track, or null if the person cancelled. */
export async function openScreen() {
  const md = navigator.mediaDevices;
  if (!md || !md.getDisplayMedia) throw new MediaError('unsupported');
  try {
    const stream = await md.getDisplayMedia({ video: { frameRate: { ideal: 15 } }, audio: false });
    const track = stream.getVideoTracks()[0];
    if (track && 'contentHint' in track) track.contentHint = 'detail';
    return track || null;
  } catch (err) {
    if (err && err.name === 'NotAllowedError') return null; // cancelled in the picker
    throw new MediaError(mediaErrorKind(err), err);
  }
}

let sharedContext = null;
function audioContext() {
  if (!sharedContext) {
    const Ctx = globalThis.AudioContext || globalThis.webkitAudioContext;
    if (!Ctx) return null;
    sharedContext = new Ctx();
  }
  if (sharedContext.state === 'suspended') sharedContext.resume().catch(() => {});
  return sharedContext;
}

/** Root-mean-square level of time-domain samples (bytes centred on 128), scaled to 0..1. */
export function rmsLevel(samples) {
  if (!samples.length) return 0;
  let sum = 0;
  for (const s of samples) {
    const v = (s - 128) / 128;
    sum += v * v;
  }
  // Speech RMS rarely exceeds ~0.3; stretch so a normal voice fills most of the meter.
  return Math.min(1, Math.sqrt(sum / samples.length) * 3);
}

/** A live level (0..1) of an audio track, read with a WebAudio AnalyserNode. */
export class LevelMeter {
  constructor(track) {
    const ctx = audioContext();
    this.ctx = ctx;
    if (!ctx || !track) return;
    this.source = ctx.createMediaStreamSource(new MediaStream([track]));
    this.analyser = ctx.createAnalyser();
    this.analyser.fftSize = 512;
    this.buffer = new Uint8Array(this.analyser.fftSize);
    this.source.connect(this.analyser);
  }

  level() {
    if (!this.analyser) return 0;
    if (this.ctx.state === 'suspended') this.ctx.resume().catch(() => {});
    this.analyser.getByteTimeDomainData(this.buffer);
    return rmsLevel(this.buffer);
  }

  stop() {
    if (this.source) this.source.disconnect();
    this.source = null;
    this.analyser = null;
  }
}

/** Drive a meter element from a LevelMeter ten times a second; returns a stop function. */
export function animateMeter(meter, el) {
  let last = -1;
  const timer = setInterval(() => {
    const value = Math.round(meter.level() * 100);
    if (value === last) return;
    last = value;
    el.style.setProperty('--level', `${value}%`);
    el.setAttribute('aria-valuenow', String(value));
  }, 100);
  return () => { clearInterval(timer); meter.stop(); };
}
