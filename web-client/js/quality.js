// Connection quality from WebRTC stats: pure functions over getStats() snapshots.

export const THRESHOLDS = {
  // good when all are below the first number, poor when any is above the second.
  lossPercent: [2, 8],
  rttMs: [250, 600],
  jitterMs: [30, 100],
};

/**
 * Grade a link from measured loss (percent of packets over the last interval), round-trip time (ms)
 * and jitter (ms). Missing measurements are ignored; nothing measured yet gives 'unknown'.
 */
export function grade({ lossPercent, rttMs, jitterMs }) {
  const measured = [['lossPercent', lossPercent], ['rttMs', rttMs], ['jitterMs', jitterMs]]
    .filter(([, v]) => typeof v === 'number' && Number.isFinite(v));
  if (measured.length === 0) return 'unknown';
  if (measured.some(([k, v]) => v > THRESHOLDS[k][1])) return 'poor';
  if (measured.every(([k, v]) => v < THRESHOLDS[k][0])) return 'good';
  return 'fair';
}

/**
 * Loss over the interval between two cumulative readings of one inbound stream
 * ({packetsReceived, packetsLost}); null when nothing new arrived.
 */
export function intervalLoss(prev, next) {
  const received = (next.packetsReceived || 0) - (prev ? prev.packetsReceived || 0 : 0);
  const lost = Math.max(0, (next.packetsLost || 0) - (prev ? prev.packetsLost || 0 : 0));
  if (received + lost <= 0) return null;
  return (100 * lost) / (received + lost);
}

/** The worst of several grades ('unknown' only if all are unknown). */
export function worst(grades) {
  const order = ['good', 'fair', 'poor'];
  let result = 'unknown';
  for (const g of grades) {
    if (g === 'unknown') continue;
    if (result === 'unknown' || order.indexOf(g) > order.indexOf(result)) result = g;
  }
  return result;
}
