// hypervisord's dashboard: sign-in, the status strip, the views and their live updates.
// Plain ES modules, no framework and no build step; every action is a call of the REST API.

import { ApiError, credential, get, onUnauthorized, post } from './api.js';
import { LiveUpdates } from './live.js';
import * as fmt from './format.js';
import { setText } from './dom.js';
import { createJobsView } from './views/jobs.js';
import { createVmsView } from './views/vms.js';
import { createSchedulesView } from './views/schedules.js';
import { createBackupsView } from './views/backups.js';

const STATUS_REFRESH_MS = 10000;
const VIEWS = ['jobs', 'vms', 'schedules', 'backups'];
const $ = (id) => document.getElementById(id);

const state = {
  who: null,
  views: {},
  live: null,
  statusTimer: null,
  uptimeTimer: null,
  uptime: null, // {seconds, at}: the daemon's uptime and when it was read
  status: null,
  capabilities: null,
};

// ---- announcements for screen readers ----------------------------------------------------------

function announce(text) {
  const el = $('announcer');
  el.textContent = '';
  // A new text node after a tick is read out even when the text repeats.
  setTimeout(() => { el.textContent = text; }, 50);
}

// ---- the status strip ---------------------------------------------------------------------------

function showStatus(st) {
  if (!st) return;
  state.status = st;
  setText($('st-version'), st.version || '—');
  setText($('st-running'), fmt.count(st.running_jobs));
  setText($('st-queued'), fmt.count(st.pending_jobs));
  const space = $('st-space');
  if (st.export_free_bytes === null || st.export_free_bytes === undefined) {
    setText(space, st.export_path ? 'unknown' : 'not set');
  } else {
    setText(space, `${fmt.bytes(st.export_free_bytes)} free`);
  }
  space.title = st.export_path ? `free space of ${st.export_path}` : 'export.base_path is not configured';
  if (typeof st.uptime_seconds === 'number') {
    state.uptime = { seconds: st.uptime_seconds, at: performance.now() };
    tickUptime();
  }
}

function tickUptime() {
  if (!state.uptime) return;
  const seconds = state.uptime.seconds + (performance.now() - state.uptime.at) / 1000;
  setText($('st-uptime'), fmt.duration(seconds));
}

async function refreshStatus() {
  try {
    showStatus(await get('status'));
  } catch {
    // shown as stale; a 401 has sent the page to its login form
  }
}

function showLiveMode(mode) {
  const words = { connecting: 'connecting…', live: 'live', polling: 'polling', stopped: 'off' };
  setText($('st-live'), words[mode] || mode);
  $('st-live').dataset.mode = mode;
}

// ---- views and navigation -----------------------------------------------------------------------

function viewFromHash() {
  const name = location.hash.replace(/^#\/?/, '');
  return VIEWS.includes(name) ? name : 'jobs';
}

function showView(name, { focus = false } = {}) {
  for (const v of VIEWS) $(`view-${v}`).hidden = v !== name;
  for (const link of document.querySelectorAll('#views-nav a')) {
    if (link.dataset.view === name) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  document.title = `${name[0].toUpperCase()}${name.slice(1)} · hypervisord`;
  state.views[name].show();
  if (focus) {
    const heading = $(`view-${name}`).querySelector('h1');
    if (heading) heading.focus();
  }
}

function ctx() {
  return {
    announce,
    status: () => state.status,
    capabilities: () => state.capabilities,
    canOperate: () => ['operate', 'admin'].includes(state.who && state.who.role),
  };
}

async function enter(who) {
  state.who = who;
  $('boot-message').hidden = true;
  $('login').hidden = true;
  $('status-strip').hidden = false;
  $('views-nav').hidden = false;
  $('who').hidden = false;
  setText($('who-name'), `${who.principal} (${who.role})`);
  $('logout').hidden = !who.auth_required;

  // The views' defaults (formats, providers, the export folder) come from these two.
  const [capabilities] = await Promise.all([get('capabilities').catch(() => null), refreshStatus()]);
  state.capabilities = capabilities;
  const c = ctx();
  state.views = {
    jobs: createJobsView($('view-jobs'), c),
    vms: createVmsView($('view-vms'), c),
    schedules: createSchedulesView($('view-schedules'), c),
    backups: createBackupsView($('view-backups'), c),
  };
  state.live = new LiveUpdates({
    jobs: (list) => state.views.jobs.replace(list),
    job: (job) => {
      state.views.jobs.upsert(job);
      refreshStatusSoon();
    },
    status: showStatus,
    mode: showLiveMode,
  });
  state.live.start();
  state.statusTimer = setInterval(refreshStatus, STATUS_REFRESH_MS);
  state.uptimeTimer = setInterval(tickUptime, 1000);
  showView(viewFromHash());
}

let statusSoon = null;
function refreshStatusSoon() {
  // Job changes come in bursts: one /status call for each burst.
  if (statusSoon) return;
  statusSoon = setTimeout(() => {
    statusSoon = null;
    refreshStatus();
  }, 500);
}

// Leaves the signed-in state: nothing of what was shown stays in the page.
function leave(message, kind = 'info') {
  if (state.live) state.live.stop();
  state.live = null;
  clearInterval(state.statusTimer);
  clearInterval(state.uptimeTimer);
  state.who = null;
  state.views = {};
  state.uptime = null;
  for (const v of VIEWS) {
    $(`view-${v}`).replaceChildren();
    $(`view-${v}`).hidden = true;
  }
  $('status-strip').hidden = true;
  $('views-nav').hidden = true;
  $('who').hidden = true;
  showLogin(message, kind);
}

function showLogin(message, kind = 'info') {
  $('boot-message').hidden = true;
  $('login').hidden = false;
  const msg = $('login-message');
  msg.hidden = !message;
  msg.textContent = message || '';
  msg.className = `message ${kind}`;
  msg.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  document.title = 'Sign in · hypervisord';
  $('login-username').focus();
}

// ---- sign-in -------------------------------------------------------------------------------------

async function signInWithPassword(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const username = form.elements.username.value.trim();
  const password = form.elements.password.value;
  form.elements.password.value = '';
  setBusy(form, true);
  try {
    const answer = await post('api/login', { username, password }, { token: '' });
    credential.set(answer.token, 'session');
    await enter(await get('api/whoami'));
  } catch (e) {
    credential.clear();
    showLogin(e.status === 401 ? 'Wrong username or password.' : `Sign-in failed: ${e.message}`, 'error');
  } finally {
    setBusy(form, false);
  }
}

async function signInWithKey(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const key = form.elements.api_key.value.trim();
  form.elements.api_key.value = '';
  setBusy(form, true);
  try {
    const who = await get('api/whoami', { token: key });
    credential.set(key, 'key');
    await enter(who);
  } catch (e) {
    showLogin(e.status === 401 ? 'The daemon does not know this API key.' : `Sign-in failed: ${e.message}`, 'error');
    $('login-apikey').focus();
  } finally {
    setBusy(form, false);
  }
}

async function logout() {
  if (credential.kind === 'session') {
    try {
      await post('api/logout');
    } catch {
      // the session is forgotten here either way
    }
  }
  credential.clear();
  leave('You are signed out.');
}

function setBusy(form, busy) {
  for (const el of form.elements) el.disabled = busy;
  form.setAttribute('aria-busy', String(busy));
}

// ---- start ---------------------------------------------------------------------------------------

async function boot() {
  $('login-password').addEventListener('submit', signInWithPassword);
  $('login-key').addEventListener('submit', signInWithKey);
  $('logout').addEventListener('click', logout);
  window.addEventListener('hashchange', () => {
    if (state.who) showView(viewFromHash(), { focus: true });
  });
  onUnauthorized(() => {
    credential.clear();
    if (state.who) leave('Your session has ended: sign in again.', 'error');
  });
  try {
    await enter(await get('api/whoami'));
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) showLogin();
    else showLogin(`The daemon did not answer: ${e.message}`, 'error');
  }
}

boot();
