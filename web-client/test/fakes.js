// Test doubles: a WebSocket we drive by hand and timers we advance by hand.

export class FakeWebSocket {
  static instances = [];
  static last() { return FakeWebSocket.instances[FakeWebSocket.instances.length - 1]; }
  static reset() { FakeWebSocket.instances = []; }

  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    this.closedWith = null;
    FakeWebSocket.instances.push(this);
  }

  send(text) {
    if (this.readyState !== 1) throw new Error('send on a socket that is not open');
    this.sent.push(JSON.parse(text));
  }

  close(code) {
    this.closedWith = code;
    this.readyState = 3;
  }

  // --- the server side ---
  serverOpen() { this.readyState = 1; this.onopen?.({}); }
  serverSend(message) { this.onmessage?.({ data: typeof message === 'string' ? message : JSON.stringify(message) }); }
  serverDrop() { this.readyState = 3; this.onclose?.({ code: 1006 }); }
}

export class FakeClock {
  constructor() { this.now = 0; this.timers = new Map(); this.nextId = 1; }
  setTimeout = (fn, ms) => { const id = this.nextId++; this.timers.set(id, { at: this.now + ms, fn }); return id; };
  clearTimeout = (id) => { this.timers.delete(id); };
  /** Run every timer due within `ms`, in time order. */
  advance(ms) {
    const end = this.now + ms;
    for (;;) {
      let next = null;
      for (const [id, t] of this.timers) if (t.at <= end && (!next || t.at < next[1].at)) next = [id, t];
      if (!next) break;
      this.timers.delete(next[0]);
      this.now = next[1].at;
      next[1].fn();
    }
    this.now = end;
  }
  pending() { return [...this.timers.values()].map((t) => t.at - this.now).sort((a, b) => a - b); }
}

/** `welcome.limits` as the server sends it with its default settings (`ClientLimits`). */
export const DEFAULT_LIMITS = {
  max_points_per_stroke: 5000, max_text_chars: 2000, max_pages: 50,
  max_poll_options: 10, max_poll_question_chars: 500, max_poll_option_chars: 200, max_poll_timer_secs: 3600,
};

export function welcome(overrides = {}) {
  return {
    type: 'welcome', v: 1, session: 's_1',
    you: { classroom_id: 'r_2', name: 'Grade 2, Hotan No. 3 School', role: 'classroom', connected: true },
    class: { class_id: 'c_1', title: 'Grade 2 Maths', teacher_name: 'Ms Li' },
    participants: [{ classroom_id: 'r_1', name: 'Ms Li', role: 'teacher', connected: true }],
    stage: [], hands: [], tracks: [], limits: { ...DEFAULT_LIMITS },
    ...overrides,
  };
}
