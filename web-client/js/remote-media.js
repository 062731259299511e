// What we receive, ready to show: one MediaStream per received track, audio played through hidden
// <audio> elements (which also lets WebAudio meter remote tracks in Chromium).

import { LevelMeter } from './media.js';

export class RemoteMedia {
  constructor(audioContainer) {
    this.container = audioContainer;
    this.entries = new Map(); // track_id -> {info, track, stream, audioEl?, meter?}
    this.volumeMuted = false;
  }

  /** Sync with the list from RtcSession: [{mid, info, track}]. */
  update(tracks) {
    const seen = new Set();
    for (const { info, track } of tracks) {
      seen.add(info.track_id);
      let entry = this.entries.get(info.track_id);
      if (entry && entry.track !== track) {
        this.#drop(info.track_id);
        entry = null;
      }
      if (!entry) {
        entry = { info, track, stream: new MediaStream([track]) };
        if (info.kind === 'audio') {
          entry.audioEl = document.createElement('audio');
          entry.audioEl.autoplay = true;
          entry.audioEl.dataset.testid = 'remote-audio';
          entry.audioEl.dataset.classroomId = info.classroom_id;
          entry.audioEl.srcObject = entry.stream;
          entry.audioEl.muted = this.volumeMuted;
          this.container.append(entry.audioEl);
          entry.audioEl.play().catch(() => {});
        }
        this.entries.set(info.track_id, entry);
      } else {
        entry.info = info;
      }
    }
    for (const id of [...this.entries.keys()]) if (!seen.has(id)) this.#drop(id);
  }

  #drop(trackId) {
    const entry = this.entries.get(trackId);
    if (!entry) return;
    if (entry.audioEl) {
      entry.audioEl.srcObject = null;
      entry.audioEl.remove();
    }
    if (entry.meter) entry.meter.stop();
    this.entries.delete(trackId);
  }

  /** The stream of `classroomId`'s track from `source` (camera, screen, microphone), or null. */
  streamFor(classroomId, source) {
    for (const e of this.entries.values()) {
      if (e.info.classroom_id === classroomId && e.info.source === source) return e.stream;
    }
    return null;
  }

  /** The entry ({info, stream}) of `classroomId`'s track from `source`, or null. */
  entryFor(classroomId, source) {
    for (const e of this.entries.values()) {
      if (e.info.classroom_id === classroomId && e.info.source === source) return e;
    }
    return null;
  }

  /** The audio level (0..1) of a classroom's microphone as received, or 0. */
  levelOf(classroomId) {
    for (const e of this.entries.values()) {
      if (e.info.classroom_id !== classroomId || e.info.kind !== 'audio') continue;
      if (!e.meter) e.meter = new LevelMeter(e.track);
      return e.meter.level();
    }
    return 0;
  }

  clear() {
    for (const id of [...this.entries.keys()]) this.#drop(id);
  }
}
