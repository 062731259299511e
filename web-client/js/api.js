// The HTTP API (same origin): create a class, look one up by link. Failures become ApiError with a
// `kind` the pages turn into a message: unreachable, unauthorized, ended, not_found, bad_request, server.

export class ApiError extends Error {
  constructor(kind, status, message) {
    super(message || kind);
    this.kind = kind;
    this.status = status;
  }
}

export function errorKind(status, code) {
  if (status === 401 || code === 'unauthorized') return 'unauthorized';
  if (status === 410 || code === 'class_ended') return 'ended';
  if (status === 404 || code === 'not_found') return 'not_found';
  if (status === 400 || status === 413 || code === 'bad_request') return 'bad_request';
  if (status === 429 || code === 'rate_limited') return 'rate_limited';
  return 'server';
}

async function request(path, options, fetchImpl) {
  let res;
  try {
    res = await fetchImpl(path, { ...options, headers: { Accept: 'application/json', ...(options.headers || {}) } });
  } catch (err) {
    throw new ApiError('unreachable', 0, err && err.message);
  }
  let body = null;
  try { body = await res.json(); } catch { body = null; }
  if (!res.ok) {
    const code = body && body.error && body.error.code;
    throw new ApiError(errorKind(res.status, code), res.status, body && body.error && body.error.message);
  }
  return body;
}

/** What the home page needs to know: whether starting a class takes the server's key. */
export function serverInfo(fetchImpl = globalThis.fetch) {
  return request('/api/server', { method: 'GET' }, fetchImpl);
}

export function createClass({ title, teacherName, createKey }, fetchImpl = globalThis.fetch) {
  const headers = { 'Content-Type': 'application/json' };
  if (createKey) headers['X-Tandem-Create-Key'] = createKey;
  return request('/api/classes', {
    method: 'POST',
    headers,
    body: JSON.stringify({ title, teacher_name: teacherName }),
  }, fetchImpl);
}

const reportBase = (classId) => `/api/classes/${encodeURIComponent(classId)}`;

/**
 * A one-use ticket that opens the class report once, within a minute: the teacher token travels
 * in a header, never in a URL. Resolves to the report page's URL.
 */
export async function reportPageUrl(classId, token, utcOffsetMinutes, fetchImpl = globalThis.fetch) {
  const { ticket } = await request(`${reportBase(classId)}/report-ticket`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}` },
  }, fetchImpl);
  return `${reportBase(classId)}/report?ticket=${encodeURIComponent(ticket)}&utc_offset_minutes=${utcOffsetMinutes}`;
}

/** The class report as CSV (a Blob), fetched with the teacher token in a header. */
export async function reportCsv(classId, token, utcOffsetMinutes, fetchImpl = globalThis.fetch) {
  let res;
  try {
    res = await fetchImpl(`${reportBase(classId)}/report.csv?utc_offset_minutes=${utcOffsetMinutes}`, {
      headers: { Authorization: `Bearer ${token}` },
    });
  } catch (err) {
    throw new ApiError('unreachable', 0, err && err.message);
  }
  if (!res.ok) throw new ApiError(errorKind(res.status), res.status);
  return res.blob();
}

export function getClass(classId, token, fetchImpl = globalThis.fetch) {
  return request(`/api/classes/${encodeURIComponent(classId)}?token=${encodeURIComponent(token)}`, { method: 'GET' }, fetchImpl);
}
