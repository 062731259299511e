// The school network check of the device check page: which paths reach the media server?
//
// Three test connections at once, each to a short-lived probe leg on the server
// (POST /api/classes/{id}/netcheck, answered like a lesson's leg):
// - udp: the server's answer with only its UDP candidate;
// - tcp: the same with only its ICE-TCP candidate (RFC 6544), for networks that block UDP;
// - turn: relay candidates only (iceTransportPolicy "relay") through the TURN servers the server
//   names in its `Link: <turn:…>; rel="ice-server"` headers (RFC 9725), if it has any.
// A path works when its connection's ICE state reaches connected. The verdict is the best one
// that works; no path at all means classrooms on this network will get no media.

/** How long each test connection may take to connect (a relay on a slow network needs a few s). */
export const CHECK_TIMEOUT_MS = 8000;

/** The SDP with only the candidates `keep(line)` accepts (`a=candidate:` lines). */
export function filterCandidates(sdp, keep) {
  return sdp.split('\r\n').filter((line) => !line.startsWith('a=candidate:') || keep(line)).join('\r\n');
}

const transportOf = (line) => (line.split(' ')[2] || '').toLowerCase();

/** RFC 9725 `Link` header values to RTCIceServer entries (only `rel="ice-server"` ones). */
export function iceServersFromLinks(values) {
  const servers = [];
  for (const value of values) {
    for (const link of value.split(/,(?=\s*<)/)) {
      const m = /^\s*<([^>]+)>(.*)$/.exec(link);
      if (!m) continue;
      const params = {};
      for (const p of m[2].matchAll(/;\s*([a-zA-Z-]+)\s*=\s*"((?:[^"\\]|\\.)*)"/g)) params[p[1].toLowerCase()] = p[2].replace(/\\(.)/g, '$1');
      if (params.rel !== 'ice-server') continue;
      const server = { urls: [m[1]] };
      if (params.username !== undefined) server.username = params.username;
      if (params.credential !== undefined) server.credential = params.credential;
      servers.push(server);
    }
  }
  return servers;
}

/** The best path that worked: 'udp', 'tcp', 'turn' or 'none'. */
export function verdict(results) {
  for (const path of ['udp', 'tcp', 'turn']) if (results[path] === 'ok') return path;
  return 'none';
}

/**
 * Run the check. `post(sdp)` sends the offer and resolves to {status, sdp, links: [Link values]}.
 * `onResult(path, state)` is called as each path finishes: state 'ok', 'failed' or 'unavailable'
 * (no TURN server configured). Resolves to {udp, tcp, turn}.
 */
export async function checkNetwork({ post, onResult = () => {}, RTCPeerConnectionImpl = globalThis.RTCPeerConnection, timeoutMs = CHECK_TIMEOUT_MS }) {
  const results = {};
  // The TURN servers come with the first answer (its Link headers).
  let learnLinks;
  const links = new Promise((resolve) => { learnLinks = resolve; });
  const finish = (path, state) => { results[path] = state; onResult(path, state); return state; };

  async function attempt(path, { keep, relayServers }) {
    const config = relayServers ? { iceServers: relayServers, iceTransportPolicy: 'relay' } : { iceServers: [] };
    const pc = new RTCPeerConnectionImpl(config);
    try {
      pc.addTransceiver('audio', { direction: 'recvonly' });
      const connected = new Promise((resolve) => {
        const check = () => {
          if (['connected', 'completed'].includes(pc.iceConnectionState)) resolve(true);
          if (pc.iceConnectionState === 'failed') resolve(false);
        };
        pc.addEventListener('iceconnectionstatechange', check);
        setTimeout(() => resolve(false), timeoutMs);
      });
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc, relayServers ? timeoutMs / 2 : 1000);
      const answer = await post(pc.localDescription.sdp);
      // A refusal names no TURN servers either: the relay path must not wait for ever.
      learnLinks(answer.status === 201 ? answer.links || [] : []);
      if (answer.status !== 201) return finish(path, 'failed');
      await pc.setRemoteDescription({ type: 'answer', sdp: filterCandidates(answer.sdp, keep) });
      return finish(path, (await connected) ? 'ok' : 'failed');
    } catch (err) {
      console.warn('network check', path, err);
      learnLinks([]);
      return finish(path, 'failed');
    } finally {
      pc.close();
    }
  }

  const relay = links.then((values) => {
    const servers = iceServersFromLinks(values).filter((s) => s.urls.some((u) => /^turns?:/.test(u)));
    return servers.length ? attempt('turn', { keep: () => true, relayServers: servers }) : finish('turn', 'unavailable');
  });
  await Promise.all([
    attempt('udp', { keep: (line) => transportOf(line) === 'udp' }),
    attempt('tcp', { keep: (line) => transportOf(line) === 'tcp' }),
    relay,
  ]);
  return results;
}

/** Wait for ICE gathering to complete, at most `ms` (the offer then carries every candidate). */
function gathered(pc, ms) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { if (pc.iceGatheringState === 'complete') resolve(); };
    pc.addEventListener('icegatheringstatechange', done);
    setTimeout(resolve, ms);
  });
}
