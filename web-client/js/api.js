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

export function createClass({ title, teacherName }, fetchImpl = globalThis.fetch) {
  return request('/api/classes', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ title, teacher_name: teacherName }),
  }, fetchImpl);
}

export function getClass(classId, token, fetchImpl = globalThis.fetch) {
  return request(`/api/classes/${encodeURIComponent(classId)}?token=${encodeURIComponent(token)}`, { method: 'GET' }, fetchImpl);
}
