// The daemon's REST API as the page calls it: the credential (an API key or a login session's
// token, kept in sessionStorage) goes as "Authorization: Bearer …", answers are parsed as JSON and
// an error answer ({error}) becomes an ApiError. Every call here is one anyone could make with curl.

const TOKEN_KEY = 'hypervisord.token';
const KIND_KEY = 'hypervisord.credential';

// The page is served at <root>/dashboard/; the API lives at <root>/.
export const apiRoot = new URL('../', import.meta.url);

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export const credential = {
  get token() {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  },
  // "key" or "session": a session is ended with POST /api/logout, a key is only forgotten.
  get kind() {
    return sessionStorage.getItem(KIND_KEY) || '';
  },
  set(token, kind) {
    sessionStorage.setItem(TOKEN_KEY, token);
    sessionStorage.setItem(KIND_KEY, kind);
  },
  clear() {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(KIND_KEY);
  },
};

let unauthorizedHandler = () => {};

// Called when the daemon answers 401 to a call made with a stored credential (expired session,
// key removed by a config reload).
export function onUnauthorized(handler) {
  unauthorizedHandler = handler;
}

export async function request(method, path, body, { token = credential.token } = {}) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const init = { method, headers, cache: 'no-store', credentials: 'omit' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(new URL(path.replace(/^\//, ''), apiRoot), init);
  } catch {
    throw new ApiError(0, 'the daemon cannot be reached');
  }
  const text = await response.text();
  let data = text;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    // a text answer (GET /jobs/logs without format=json, /metrics)
  }
  if (!response.ok) {
    const message = data && typeof data === 'object' && data.error ? data.error : `${response.status} ${response.statusText}`;
    if (response.status === 401 && token && token === credential.token) unauthorizedHandler(message);
    throw new ApiError(response.status, message);
  }
  return data;
}

export const get = (path, options) => request('GET', path, undefined, options);
export const post = (path, body = {}, options) => request('POST', path, body, options);

// The /ws address; a browser cannot set headers on a WebSocket, so the credential rides as
// ?access_token= (the daemon accepts it on the upgrade only).
export function socketUrl() {
  const url = new URL('ws', apiRoot);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  if (credential.token) url.searchParams.set('access_token', credential.token);
  return url.href;
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}
