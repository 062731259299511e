// The class as this page knows it: a pure reducer over server messages. No DOM, no I/O.
//
// State shape:
// { joined, ended, mutedByTeacher (count of mute requests), you, class, session,
//   participants: {classroom_id: {classroom_id, name, role, connected, media_lost?}},
//   tracks: {track_id: {track_id, classroom_id, kind, source}},
//   stage: [classroom_id], hands: [classroom_id], subscribed: {mid: track},
//   speaking: classroom_id | null (the loudest microphone, as the server hears it), lastError }

export function initialState() {
  return {
    joined: false,
    ended: false,
    muteRequests: 0,
    you: null,
    class: null,
    session: null,
    participants: {},
    tracks: {},
    stage: [],
    hands: [],
    subscribed: {},
    speaking: null,
    lastError: null,
    // The server's limits from `welcome` (see `ClientLimits` in docs/protocol.md); null until then.
    limits: null,
  };
}

function byId(list, key) {
  const out = {};
  for (const item of list) if (item && typeof item[key] === 'string') out[item[key]] = { ...item };
  return out;
}

function withoutKeys(obj, pred) {
  const out = {};
  for (const [k, v] of Object.entries(obj)) if (!pred(k, v)) out[k] = v;
  return out;
}

/** Apply one server message; returns a new state (the old one is never changed). */
export function reduce(state, m) {
  switch (m.type) {
    case 'welcome': {
      const participants = byId(m.participants, 'classroom_id');
      if (m.you && m.you.classroom_id) participants[m.you.classroom_id] = { ...m.you };
      return {
        ...initialState(),
        joined: true,
        muteRequests: state.muteRequests,
        you: { ...m.you },
        class: { ...m.class },
        session: m.session,
        participants,
        tracks: byId(m.tracks, 'track_id'),
        stage: [...m.stage],
        hands: [...m.hands],
        limits: { ...m.limits },
        // Kept media legs receive what they received before the WebSocket dropped.
        subscribed: m.media_kept ? state.subscribed : {},
      };
    }
    case 'participant_joined': {
      const p = m.participant;
      return { ...state, participants: { ...state.participants, [p.classroom_id]: { ...p } } };
    }
    case 'participant_left': {
      const id = m.classroom_id;
      return {
        ...state,
        participants: withoutKeys(state.participants, (k) => k === id),
        tracks: withoutKeys(state.tracks, (_, t) => t.classroom_id === id),
        stage: state.stage.filter((c) => c !== id),
        hands: state.hands.filter((c) => c !== id),
        subscribed: withoutKeys(state.subscribed, (_, t) => t.classroom_id === id),
        speaking: state.speaking === id ? null : state.speaking,
      };
    }
    case 'participant_state': {
      const p = state.participants[m.classroom_id];
      if (!p) return state;
      return { ...state, participants: { ...state.participants, [m.classroom_id]: { ...p, connected: m.connected } } };
    }
    case 'media_state': {
      const p = state.participants[m.classroom_id];
      if (!p) return state;
      return { ...state, participants: { ...state.participants, [m.classroom_id]: { ...p, media_lost: !m.connected } } };
    }
    case 'track_published':
      return { ...state, tracks: { ...state.tracks, [m.track.track_id]: { ...m.track } } };
    case 'track_unpublished':
      return {
        ...state,
        tracks: withoutKeys(state.tracks, (k) => k === m.track_id),
        subscribed: withoutKeys(state.subscribed, (_, t) => t.track_id === m.track_id),
      };
    case 'subscribe_offer': {
      const subscribed = {};
      for (const { mid, track } of m.tracks) if (track && mid != null) subscribed[String(mid)] = { ...track };
      // An offer also tells us about tracks we may not have heard of yet.
      const tracks = { ...state.tracks };
      for (const t of Object.values(subscribed)) if (!tracks[t.track_id]) tracks[t.track_id] = { ...t };
      return { ...state, subscribed, tracks };
    }
    case 'speaking':
      return { ...state, speaking: typeof m.classroom_id === 'string' ? m.classroom_id : null };
    case 'hands':
      return { ...state, hands: [...m.hands] };
    case 'stage':
      return { ...state, stage: [...m.stage] };
    case 'mute_requested':
      return { ...state, muteRequests: state.muteRequests + 1 };
    case 'class_ended':
      return { ...state, ended: true };
    case 'error':
      return {
        ...state,
        ended: state.ended || m.code === 'class_ended',
        lastError: { code: m.code, message: m.message, in_reply_to: m.in_reply_to ?? null },
      };
    default:
      return state;
  }
}

// --- Selectors ------------------------------------------------------------------------------

/** Remote classrooms (not the teacher), in join order as far as the server told us. */
export function remoteClassrooms(state) {
  return Object.values(state.participants).filter((p) => p.role === 'classroom');
}

export function teacherOf(state) {
  return Object.values(state.participants).find((p) => p.role === 'teacher') || null;
}

export function isOnStage(state, classroomId) {
  return state.stage.includes(classroomId);
}

export function handRaised(state, classroomId) {
  return state.hands.includes(classroomId);
}

/** The published track this page receives on transceiver `mid`, or null. */
export function trackForMid(state, mid) {
  return state.subscribed[String(mid)] || null;
}

/**
 * Of the received tracks ([{mid, info, track}]), those published now: a transceiver whose track
 * ended but which the server keeps for its source's return (a stopped screen share) shows nothing.
 */
export function publishedOnly(state, tracks) {
  return tracks.filter(({ info }) => !!(info && state.tracks[info.track_id]));
}

/** Whether the teacher currently shares a screen. */
export function teacherIsSharing(state) {
  const teacher = teacherOf(state);
  return !!teacher && Object.values(state.tracks).some((t) => t.classroom_id === teacher.classroom_id && t.source === 'screen');
}

/** The participant speaking now (the server's active speaker), if it is still in the class. */
export function speakingParticipant(state) {
  return (state.speaking && state.participants[state.speaking]) || null;
}
