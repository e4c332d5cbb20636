'use strict';
// HyperSDK, the client with the old HyperSDK TypeScript SDK's API.
// - Requests and answers against a loopback RECORDER (an http server that records each request and
//   replies with what the test set for the route; it checks what the client sends and how it reads
//   answers, and simulates nothing of hypervisord).
// - Against the real hypervisord ($HSDK_BUILD_DIR or build/default, tools/hypervisord/hypervisord),
//   started with --no-auth on a free 127.0.0.1 port; skipped when the daemon is not built.
// - In-process (new HyperSDK()): the addon's serviceRequest.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const hypersdk = require('..');
const native = require('../lib/native');
const { ROOT } = require('./helpers');

const { HyperSDK, HyperSDKError, AuthenticationError, JobNotFoundError, APIError, JobStatus, ExportFormat } = hypersdk;
const T0 = '2026-12-07T10:00:00Z';
const BUILD = process.env.HSDK_BUILD_DIR ? path.resolve(process.env.HSDK_BUILD_DIR) : path.join(ROOT, 'build', 'default');
const HYPERVISORD = path.join(BUILD, 'tools', 'hypervisord', 'hypervisord');

function daemonJob(id = 'job-1', status = 'running', extra = {}) {
  return {
    id, name: 'web', status, operation: 'export',
    definition: { id, name: 'web', vm_path: '/DC0/vm/web', output_dir: '/out', format: 'ova', provider: 'vsphere' },
    progress: { job_id: id, status, phase: 'downloading', percent_complete: 42.5, percentage: 42.5, bytes_downloaded: 100,
      bytes_transferred: 100, total_bytes: 1000, estimated_remaining: '1m30s', files_downloaded: 0, total_files: 2 },
    created_at: T0, updated_at: T0, priority: 0, depends_on: [], retries: 0, brand_new_field: 1,
    ...extra,
  };
}

// ---- the recorder ------------------------------------------------------------------------------

async function recorder(t) {
  const requests = [];
  const routes = new Map();
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url, 'http://x');
      const entry = { method: req.method, path: url.pathname, query: Object.fromEntries(url.searchParams), headers: req.headers, body: Buffer.concat(chunks) };
      requests.push(entry);
      // Unset routes: what hypervisord's router answers for a path it does not know.
      let [status, answer, type] = routes.get(`${req.method} ${url.pathname}`)
        || [404, { error: `not found: ${decodeURIComponent(url.pathname)}`, timestamp: T0 }];
      if (typeof answer === 'function') answer = answer(entry);
      const text = typeof answer === 'string' ? answer : JSON.stringify(answer);
      res.writeHead(status, { 'Content-Type': type || (typeof answer === 'string' ? 'text/plain; charset=utf-8' : 'application/json') });
      res.end(text);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise((resolve) => server.close(resolve)));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    requests,
    route(method, p, answer, status = 200, type = undefined) {
      routes.set(`${method} ${p}`, [status, answer, type]);
    },
    last() {
      return requests[requests.length - 1];
    },
    lastJson() {
      return JSON.parse(requests[requests.length - 1].body.toString());
    },
  };
}

test('the package exports the client beside the library (its Job stays the library\'s)', () => {
  assert.equal(typeof HyperSDK, 'function');
  assert.equal(hypersdk.Job, require('../lib/ops').Job);
  for (const E of [AuthenticationError, JobNotFoundError, APIError, hypersdk.ValidationError, hypersdk.WebSocketError]) {
    assert.ok(new E('x') instanceof HyperSDKError);
    assert.ok(!(new E('x') instanceof hypersdk.HypersdkError));
    assert.equal(new E('x').name, E.name);
  }
  assert.equal(JobStatus.COMPLETED, 'completed');
  assert.equal(ExportFormat.OVF, 'ovf');
  assert.ok(Object.isFrozen(JobStatus));
});

test('API key, login token and logout', async (t) => {
  const r = await recorder(t);
  r.route('GET', '/health', { status: 'healthy', version: '0.2.0', uptime: '1s', timestamp: T0 });
  r.route('POST', '/api/login', { token: 'tok-1', expires_at: T0, role: 'admin' });
  r.route('POST', '/api/logout', { status: 'logged out' });
  const c = new HyperSDK(`${r.url}/`, { apiKey: 'key-1' });
  assert.equal((await c.health()).status, 'healthy');
  assert.equal(r.last().headers['x-api-key'], 'key-1');
  assert.equal(r.last().headers.authorization, undefined);
  assert.equal(await c.login('admin', 'pw'), 'tok-1');
  assert.deepEqual(r.lastJson(), { username: 'admin', password: 'pw' });
  assert.equal(c.token, 'tok-1');
  await c.health();
  assert.equal(r.last().headers.authorization, 'Bearer tok-1');
  await c.logout();
  assert.equal(r.last().body.length, 0);
  await c.health();
  assert.equal(r.last().headers.authorization, undefined);
  // The old SDK's config object works too.
  const old = new HyperSDK({ baseURL: r.url, apiKey: 'key-2', headers: { 'X-Trace': 't' } });
  await old.health();
  assert.equal(r.last().headers['x-api-key'], 'key-2');
  assert.equal(r.last().headers['x-trace'], 't');
});

test('jobs: submit, get, query, list, progress, logs, ETA, cancel', async (t) => {
  const r = await recorder(t);
  r.route('POST', '/jobs/submit', (req) => {
    const body = JSON.parse(req.body);
    const n = Array.isArray(body) ? body.length : 1;
    return { job_ids: ['j1', 'j2'].slice(0, n), accepted: n, rejected: 0, errors: [], timestamp: T0 };
  });
  r.route('GET', '/jobs/job-1', daemonJob());
  r.route('POST', '/jobs/query', { jobs: [daemonJob(), daemonJob('job-0', 'completed')], total: 2, timestamp: T0 });
  r.route('GET', '/jobs/query', { jobs: [daemonJob()], total: 1, timestamp: T0 });
  r.route('GET', '/jobs/progress/job-1', daemonJob().progress);
  r.route('GET', '/jobs/logs/job-1', `${T0} INFO started\n`);
  r.route('GET', '/jobs/eta/job-1', { job_id: 'job-1', status: 'running', estimated_remaining: '1m30s', eta_seconds: 90, percent_complete: 42.5 });
  r.route('POST', '/jobs/cancel', (req) => {
    const ids = JSON.parse(req.body).job_ids;
    return { cancelled: ids.filter((i) => i === 'job-1'), failed: ids.filter((i) => i === 'job-0'), errors: { 'job-0': 'job already completed' }, timestamp: T0 };
  });
  const c = new HyperSDK(r.url);
  const def = { vm_path: '/DC0/vm/web', output_dir: '/out', format: ExportFormat.OVA };
  assert.equal(await c.submitJob(def), 'j1');
  assert.deepEqual(r.lastJson(), def);
  assert.equal(r.last().headers['content-type'], 'application/json');
  assert.deepEqual(await c.submitJobs([def, { vm_path: '/b' }]), ['j1', 'j2']);
  const job = await c.getJob('job-1');
  assert.equal(job.status, JobStatus.RUNNING);
  assert.equal(job.brand_new_field, 1);
  const jobs = await c.queryJobs({ job_ids: ['job-1', 'job-0'], status: [JobStatus.RUNNING], all: true, limit: 2 });
  assert.deepEqual(r.lastJson(), { job_ids: ['job-1', 'job-0'], status: ['running'], all: true, limit: 2 });
  assert.deepEqual(jobs.map((j) => j.id), ['job-1', 'job-0']);
  assert.equal((await c.listJobs()).length, 1);
  assert.deepEqual(r.last().query, { all: 'true' });
  await c.listJobs(false);
  assert.deepEqual(r.last().query, {});
  assert.equal((await c.getJobProgress('job-1')).percent_complete, 42.5);
  assert.equal(await c.getJobLogs('job-1'), `${T0} INFO started\n`);
  assert.equal(await c.getJobETA('job-1'), '1m30s');
  assert.equal(await c.getJobEta('job-1'), '1m30s');
  assert.equal(await c.cancelJob('job-1'), true);
  assert.deepEqual(r.lastJson(), { job_ids: ['job-1'] });
  await assert.rejects(c.cancelJob('job-0'), (e) => e instanceof APIError && /job already completed/.test(e.message));
  assert.equal(await c.cancelJob('job-9'), false);
  assert.deepEqual((await c.cancelJobs(['job-0'])).failed, ['job-0']);

  r.route('POST', '/jobs/submit', { job_ids: [], accepted: 0, rejected: 1, errors: ['vm_path is required'], timestamp: T0 });
  await assert.rejects(c.submitJob({ name: 'x' }), (e) => e instanceof APIError && e.message === 'Job submission failed: vm_path is required');
  r.route('POST', '/jobs/submit', { error: "invalid format 'qed'", timestamp: T0 }, 400);
  await assert.rejects(c.submitJob({ vm_path: '/v', format: 'qed' }),
    (e) => e instanceof APIError && e.statusCode === 400 && /invalid format/.test(e.message) && e.response.error === "invalid format 'qed'");
});

test('error mapping: 401, 404 of an id, 403, 500, ids escaped', async (t) => {
  const r = await recorder(t);
  r.route('GET', '/status', { error: 'missing credentials', timestamp: T0 }, 401);
  r.route('POST', '/jobs/cancel', { error: 'role read may not cancel jobs', timestamp: T0 }, 403);
  r.route('GET', '/capabilities', 'upstream exploded', 500);
  for (const p of ['/jobs/nope', '/jobs/progress/nope', '/jobs/logs/nope', '/schedules/nope']) r.route('GET', p, { error: 'job not found: nope' }, 404);
  r.route('DELETE', '/webhooks/nope', { error: 'webhook not found: nope' }, 404);
  r.route('POST', '/vms/info', { error: 'not found: VM /DC0/vm/x' }, 404);
  r.route('POST', '/jobs/query', { error: 'job not found: x' }, 404);
  r.route('DELETE', '/webhooks/w1', { error: 'method DELETE not allowed on /webhooks/w1' }, 405);
  const c = new HyperSDK(r.url);
  await assert.rejects(c.status(), (e) => e instanceof AuthenticationError && e.statusCode === 401 && /missing credentials/.test(e.message));
  for (const call of [() => c.getJob('nope'), () => c.getJobProgress('nope'), () => c.getJobLogs('nope'), () => c.getSchedule('nope'),
    () => c.deleteWebhook('nope'), () => c.getVMInfo(null, '/DC0/vm/x'), () => c.queryJobs({ job_ids: ['x'] })]) {
    await assert.rejects(call(), (e) => e instanceof JobNotFoundError && e.statusCode === 404);
  }
  // A route the router does not know (an older daemon), or a 405: an APIError naming the route.
  await assert.rejects(c.getJobETA('j1'), (e) => e instanceof APIError && e.route === 'GET /jobs/eta/j1' && /is not served/.test(e.message));
  await assert.rejects(c.deleteWebhook('w1'), (e) => e instanceof APIError && e.statusCode === 405 && /DELETE \/webhooks\/w1 is not served/.test(e.message));
  await assert.rejects(c.cancelJob('j'), (e) => e instanceof APIError && e.statusCode === 403 && e.route === 'POST /jobs/cancel');
  await assert.rejects(c.capabilities(), (e) => e instanceof APIError && e.statusCode === 500 && /upstream exploded/.test(e.message));
  await assert.rejects(c.getJob('../status'), APIError);
  assert.equal(r.last().path, '/jobs/..%2Fstatus');
  await assert.rejects(c.getJob(''), hypersdk.ValidationError);
  assert.throws(() => new HyperSDK('localhost:8080'), hypersdk.ValidationError);
});

const UNSERVED = [
  [(c) => c.enableCBT('/v'), 'POST /cbt/enable'],
  [(c) => c.disableCBT('/v'), 'POST /cbt/disable'],
  [(c) => c.getCBTStatus('/v'), 'POST /cbt/status'],
  [(c) => c.analyzeIncrementalExport('/v'), 'POST /incremental/analyze'],
  [(c) => c.projectYearlyCost({ provider: 's3', storageClass: 's3_standard', storageGB: 100 }), 'POST /cost/project'],
  [(c) => c.estimateExportSize({ diskSizeGB: 100 }), 'POST /cost/estimate-size'],
  [(c) => c.shutdownVM({ server: 'vc', username: 'u', password: 'p' }, '/v'), 'POST /vms/shutdown'],
  [(c) => c.listDomains(), 'GET /libvirt/domains'],
  [(c) => c.getDomain('d'), 'GET /libvirt/domain'],
  [(c) => c.startDomain('d'), 'POST /libvirt/domain/start'],
  [(c) => c.shutdownDomain('d'), 'POST /libvirt/domain/shutdown'],
  [(c) => c.listSnapshots('d'), 'GET /libvirt/snapshots'],
  [(c) => c.createSnapshot('d', 's'), 'POST /libvirt/snapshot/create'],
  [(c) => c.convertVM('/a.ovf', '/b.qcow2'), 'POST /convert/vm'],
  [(c) => c.getConversionStatus('c'), 'GET /convert/status'],
  [(c) => c.createAdvancedSchedule({ name: 'n', schedule: '0 2 * * *', jobTemplate: {} }), 'POST /schedules/advanced/create'],
  [(c) => c.getDependencyStatus('j'), 'GET /schedules/dependencies'],
  [(c) => c.getRetryStatus('j'), 'GET /schedules/retry'],
  [(c) => c.getTimeWindowStatus('j'), 'GET /schedules/timewindow'],
  [(c) => c.getJobQueueStatus(), 'GET /schedules/queue'],
  [(c) => c.validateSchedule({ name: 'n', schedule: '0 2 * * *', jobTemplate: {} }), 'POST /schedules/validate'],
  [(c) => c.getCarbonStatus(), 'POST /carbon/status'],
  [(c) => c.listCarbonZones(), 'GET /carbon/zones'],
  [(c) => c.estimateCarbonSavings('DE', 10), 'POST /carbon/estimate'],
  [(c) => c.getCarbonReport('j', T0, T0, 10), 'POST /carbon/report'],
];

test('the old SDK\'s routes the daemon does not serve reject with an APIError naming the route', async (t) => {
  const r = await recorder(t);
  const c = new HyperSDK(r.url);
  for (const [call, route] of UNSERVED) {
    await assert.rejects(call(c), (e) => {
      assert.ok(e instanceof APIError && !(e instanceof JobNotFoundError), `${route}: ${e}`);
      assert.equal(e.route, route);
      assert.equal(e.statusCode, 404);
      assert.ok(e.message.includes(`${route} is not served`) && e.message.includes(`not found: ${route.split(' ')[1]}`), e.message);
      return true;
    });
    assert.equal(`${r.last().method} ${r.last().path}`, route);
  }
});

test('VMs: the old bare vCenter argument is wrapped, the list unwrapped', async (t) => {
  const r = await recorder(t);
  const vm = { name: 'web', path: '/DC0/vm/web', power_state: 'poweredOn', num_cpu: 2, memory_mb: 4096 };
  r.route('POST', '/vms/list', { vms: [vm], total: 1, timestamp: T0 });
  r.route('POST', '/vms/info', { ...vm, disks: [], nics: [] });
  const c = new HyperSDK(r.url);
  const vc = { server: 'https://127.0.0.1:1/sdk', username: 'u', password: 'p', insecure: true };
  assert.deepEqual(await c.listVMs(vc), [vm]);
  assert.deepEqual(r.lastJson(), { vcenter: vc });
  assert.deepEqual(await c.listVMs(vc, { provider: 'vsphere', filter: { name_pattern: 'web*' } }), [vm]);
  assert.deepEqual(r.lastJson(), { vcenter: vc, provider: 'vsphere', filter: { name_pattern: 'web*' } });
  await c.listVMs();
  assert.deepEqual(r.lastJson(), {});
  assert.deepEqual((await c.getVMInfo(vc, '/DC0/vm/web')).disks, []);
  assert.deepEqual(r.lastJson(), { vm_path: '/DC0/vm/web', vcenter: vc });
});

test('schedules and webhooks', async (t) => {
  const r = await recorder(t);
  const made = { id: 's-1', name: 'nightly', schedule: '0 2 * * *', enabled: true, job_template: { vm_path: '/v' }, next_run: T0 };
  r.route('POST', '/schedules', made, 201);
  r.route('GET', '/schedules', [made]);
  r.route('GET', '/schedules/s-1', made);
  r.route('PUT', '/schedules/s-1', { ...made, enabled: false });
  r.route('DELETE', '/schedules/s-1', { status: 'deleted' });
  r.route('POST', '/schedules/s-1/enable', made);
  r.route('POST', '/schedules/s-1/disable', made);
  r.route('POST', '/schedules/s-1/trigger', { schedule_id: 's-1', job_id: 'j-7' });
  const hook = { id: 'wh-1', url: 'http://127.0.0.1:9/hook', events: ['job_failed'], headers: { 'X-Token': '********' }, enabled: true };
  r.route('GET', '/webhooks', [hook]);
  r.route('POST', '/webhooks', hook, 201);
  r.route('DELETE', '/webhooks/wh-1', { status: 'deleted' });
  r.route('POST', '/webhooks/test', (req) => {
    const ok = JSON.parse(req.body).url.endsWith('good');
    return { url: 'u', status_code: ok ? 200 : 500, success: ok, duration_ms: 2 };
  });
  const c = new HyperSDK(r.url);
  const created = await c.createSchedule({ name: 'nightly', schedule: '0 2 * * *', job_template: { vm_path: '/v' }, enabled: true });
  assert.equal(created.id, 's-1');
  assert.deepEqual(r.lastJson(), { name: 'nightly', schedule: '0 2 * * *', job_template: { vm_path: '/v' }, enabled: true });
  assert.deepEqual((await c.listSchedules()).map((s) => s.id), ['s-1']);
  assert.equal((await c.getSchedule('s-1')).name, 'nightly');
  assert.equal((await c.updateSchedule('s-1', created)).enabled, false);
  assert.equal(await c.enableSchedule('s-1'), undefined);
  assert.equal(await c.disableSchedule('s-1'), undefined);
  assert.deepEqual(await c.triggerSchedule('s-1'), { schedule_id: 's-1', job_id: 'j-7' });
  assert.equal(await c.deleteSchedule('s-1'), undefined);
  assert.equal(r.last().method, 'DELETE');

  assert.equal((await c.addWebhook({ url: hook.url, events: ['job_failed'], headers: { 'X-Token': 't' } })).id, 'wh-1');
  assert.deepEqual((await c.listWebhooks())[0].headers, { 'X-Token': '********' });
  assert.equal((await c.testWebhook('http://127.0.0.1:9/good')).success, true);
  await assert.rejects(c.testWebhook('http://127.0.0.1:9/bad'), /Webhook test failed/);
  assert.equal(await c.deleteWebhook('wh-1'), undefined);
});

test('CBT: the old body, optionally a vCenter; a served route\'s 501 is an APIError without "not served"', async (t) => {
  const r = await recorder(t);
  r.route('POST', '/cbt/enable', { provider: 'vsphere', vm: '/v', enabled: true, disks: [], vm_path: '/v', success: true });
  r.route('POST', '/cbt/status', { error: 'unsupported: no CBT here' }, 501);
  const c = new HyperSDK(r.url);
  assert.equal((await c.enableCBT('/v')).enabled, true);
  assert.deepEqual(r.lastJson(), { vm_path: '/v' });
  const vc = { server: 'https://vc/sdk', username: 'u', password: 'p' };
  await c.enableCBT('/v', vc);
  assert.deepEqual(r.lastJson(), { vm_path: '/v', vcenter: vc });
  await assert.rejects(c.getCBTStatus('/v'), (e) => e instanceof APIError && e.statusCode === 501 && !/is not served/.test(e.message));
});

test('jobs read back get definition.id from the job id when the daemon leaves it out', async (t) => {
  const r = await recorder(t);
  const job = daemonJob();
  delete job.definition.id;
  r.route('GET', '/jobs/job-1', job);
  r.route('GET', '/jobs/query', { jobs: [job], total: 1, timestamp: T0 });
  const c = new HyperSDK(r.url);
  assert.equal((await c.getJob('job-1')).definition.id, 'job-1');
  assert.equal((await c.listJobs())[0].definition.id, 'job-1');
});

test('carbon-aware submit carries the old metadata', async (t) => {
  const r = await recorder(t);
  r.route('POST', '/jobs/submit', { job_ids: ['j1'], accepted: 1, rejected: 0, errors: [], timestamp: T0 });
  const c = new HyperSDK(r.url);
  assert.equal(await c.submitCarbonAwareJob({ vm_path: '/v', output_dir: '/o' }, 'DE', 150, 1), 'j1');
  assert.deepEqual(r.lastJson().metadata, { carbon_aware: true, carbon_zone: 'DE', carbon_max_intensity: 150, carbon_max_delay: 3.6e12 });
});

test('an unreachable daemon and a timeout are APIErrors', async (t) => {
  const port = await freePort();
  await assert.rejects(new HyperSDK(`http://127.0.0.1:${port}`).health(), (e) => e instanceof APIError && /Request failed/.test(e.message));
  // A listener that accepts and never answers.
  const sockets = [];
  const silent = net.createServer((s) => sockets.push(s));
  await new Promise((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    for (const s of sockets) s.destroy();
    silent.close();
  });
  await assert.rejects(new HyperSDK(`http://127.0.0.1:${silent.address().port}`, { timeout: 200 }).health(),
    (e) => e instanceof APIError && /timeout/i.test(e.message));
});

test('in-process requests go to the addon\'s serviceRequest (replaced here by a recorder)', async (t) => {
  const saved = Object.getOwnPropertyDescriptor(native, 'serviceRequest');
  t.after(() => {
    if (saved) Object.defineProperty(native, 'serviceRequest', saved);
    else delete native.serviceRequest;
  });
  const calls = [];
  native.serviceRequest = async (method, target, body, headers) => {
    calls.push({ method, target, body, headers });
    if (target === '/status') {
      return { status: 200, contentType: 'application/json', body: Buffer.from(JSON.stringify({ version: '0.2.0', total_jobs: 0 })) };
    }
    return { status: 404, contentType: 'application/json', body: Buffer.from(JSON.stringify({ error: `not found: ${target}` })) };
  };
  const local = new HyperSDK(undefined, { apiKey: 'k' });
  assert.equal(local.inProcess, true);
  assert.equal((await local.status()).version, '0.2.0');
  assert.equal(calls[0].method, 'GET');
  assert.ok(Buffer.isBuffer(calls[0].body) && calls[0].body.length === 0);
  assert.equal(calls[0].headers['x-api-key'], 'k');
  assert.ok(Object.keys(calls[0].headers).every((k) => k === k.toLowerCase()));
  await assert.rejects(local.enableCBT('/v'), (e) => e instanceof APIError && e.route === 'POST /cbt/enable');
  assert.deepEqual(JSON.parse(calls[1].body), { vm_path: '/v' });
  assert.equal(calls[1].headers['content-type'], 'application/json');
});

// ---- the real daemon -------------------------------------------------------------------------

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function startDaemon(t, { args = ['--no-auth'] } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hypersdk-client-'));
  const port = await freePort();
  const config = path.join(dir, 'config.yaml');
  fs.writeFileSync(config, [
    'daemon:',
    `  address: ${JSON.stringify(`127.0.0.1:${port}`)}`,
    `  state_dir: ${JSON.stringify(path.join(dir, 'state'))}`,
    'database:',
    `  path: ${JSON.stringify(path.join(dir, 'hypersdk.db'))}`,
    '',
  ].join('\n'));
  const logFile = path.join(dir, 'hypervisord.log');
  const log = fs.openSync(logFile, 'a');
  const child = spawn(HYPERVISORD, ['--config', config, ...args], { stdio: ['ignore', log, log] });
  let exited = null;
  child.on('exit', (code, signal) => { exited = { code, signal }; });
  t.after(async () => {
    if (exited === null) {
      const done = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 30000);
      await done;
      clearTimeout(timer);
    }
    fs.closeSync(log);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30000;
  for (;;) {
    if (exited) throw new Error(`hypervisord exited ${JSON.stringify(exited)}:\n${fs.readFileSync(logFile, 'utf8')}`);
    try {
      const res = await fetch(`${url}/health`);
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`hypervisord did not answer /health:\n${fs.readFileSync(logFile, 'utf8')}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { url, dir };
}

async function waitJob(client, id, states = ['completed', 'failed', 'cancelled'], timeout = 60000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const job = await client.getJob(id);
    if (states.includes(job.status)) return job;
    if (['completed', 'failed', 'cancelled'].includes(job.status)) throw new Error(`job ${id} ended ${job.status} (${job.error}), not ${states}`);
    if (Date.now() > deadline) throw new Error(`job ${id} stayed ${job.status}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

// A vCenter address that accepts connections and never answers: an export against it stays
// running (in its TLS handshake) until cancelled.
async function tarpit(t) {
  const sockets = [];
  const server = net.createServer((s) => sockets.push(s));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return { server: `https://127.0.0.1:${server.address().port}/sdk`, username: 'u', password: 'p', insecure: true, sockets };
}

// With HSDK_BUILD_DIR given (scripts/test) a missing daemon fails the tests instead of skipping them.
const noDaemon = fs.existsSync(HYPERVISORD) || process.env.HSDK_BUILD_DIR ? false : `${HYPERVISORD} is not built`;

test('against hypervisord: health, status, capabilities, jobs, progress, logs, ETA, cancel', { skip: noDaemon }, async (t) => {
  const { url, dir } = await startDaemon(t);
  const c = new HyperSDK(url);
  const health = await c.health();
  assert.equal(health.status, 'healthy');
  const status = await c.status();
  assert.equal(typeof status.version, 'string');
  assert.equal(typeof status.uptime, 'string');
  for (const k of ['total_jobs', 'running_jobs', 'completed_jobs', 'failed_jobs', 'cancelled_jobs']) assert.equal(typeof status[k], 'number', k);
  const caps = await c.capabilities();
  assert.ok(caps.providers.includes('vsphere'));

  // A job against a closed port fails, with its error, log and progress.
  const closed = await freePort();
  const failedId = await c.submitJob({ name: 'doomed', vm_path: '/DC0/vm/x', output_dir: path.join(dir, 'out'),
    vcenter: { server: `https://127.0.0.1:${closed}/sdk`, username: 'u', password: 'p', insecure: true } });
  const failed = await waitJob(c, failedId);
  assert.equal(failed.status, JobStatus.FAILED);
  assert.ok(failed.error);
  assert.equal(failed.definition.vm_path, '/DC0/vm/x');
  assert.equal(failed.definition.id, failedId);
  const logs = await c.getJobLogs(failedId);
  assert.ok(logs.trim().split('\n').every((l) => /^\S+ [A-Z]+ \S/.test(l)), logs);
  assert.equal(typeof (await c.getJobProgress(failedId)).percent_complete, 'number');
  assert.equal(typeof await c.getJobETA(failedId), 'string');
  assert.deepEqual((await c.queryJobs({ job_ids: [failedId] })).map((j) => j.id), [failedId]);
  assert.ok((await c.queryJobs({ status: [JobStatus.FAILED], all: true })).some((j) => j.id === failedId));
  assert.ok((await c.listJobs(true)).some((j) => j.id === failedId));
  await assert.rejects(c.cancelJob(failedId), APIError);  // already finished: in `failed`

  // A running job is cancelled.
  const vc = await tarpit(t);
  const runningId = await c.submitJob({ vm_path: '/DC0/vm/x', output_dir: path.join(dir, 'out2'), vcenter: vc });
  await waitJob(c, runningId, ['running']);
  assert.equal(await c.cancelJob(runningId), true);
  assert.equal((await waitJob(c, runningId)).status, JobStatus.CANCELLED);

  await assert.rejects(c.getJob('no-such-job'), JobNotFoundError);
  await assert.rejects(c.listDomains(), (e) => e instanceof APIError && e.route === 'GET /libvirt/domains' && e.statusCode === 404);
  const estimate = await c.estimateCost({ provider: 's3', region: 'us-east-1', storageClass: 's3_standard', storageGB: 500, durationDays: 30 });
  assert.equal(estimate.provider, 's3');
  assert.equal(estimate.storage_class, 'standard');
  assert.ok(estimate.total_usd > 11 && estimate.total_usd < 12.5, JSON.stringify(estimate.total_usd));
  const compared = await c.compareProviders({ storageGB: 100 });
  assert.ok(compared.estimates.length >= 15);
  assert.ok(compared.estimates[0].total_usd <= compared.estimates[compared.estimates.length - 1].total_usd);
  await assert.rejects(c.validateSchedule({ name: 'n', schedule: '0 2 * * *', jobTemplate: {} }),
    (e) => e instanceof APIError && e.route === 'POST /schedules/validate' && e.statusCode === 405);
});

test('against hypervisord: schedules and webhooks', { skip: noDaemon }, async (t) => {
  const { url, dir } = await startDaemon(t);
  const c = new HyperSDK(url, { timeout: 10000 });
  const template = { vm_path: '/DC0/vm/x', output_dir: path.join(dir, 's'),
    vcenter: { server: `https://127.0.0.1:${await freePort()}/sdk`, username: 'u', password: 'p', insecure: true } };
  const created = await c.createSchedule({ name: 'nightly', schedule: '0 2 * * *', job_template: template, enabled: true, tags: ['prod'] });
  assert.ok(created.id);
  assert.equal(created.schedule, '0 2 * * *');
  assert.equal(created.job_template.vm_path, '/DC0/vm/x');
  assert.ok((await c.listSchedules()).some((s) => s.id === created.id));
  assert.equal((await c.updateSchedule(created.id, { ...created, description: 'changed' })).description, 'changed');
  await c.disableSchedule(created.id);
  assert.equal((await c.getSchedule(created.id)).enabled, false);
  await c.enableSchedule(created.id);
  assert.equal((await c.getSchedule(created.id)).enabled, true);
  const { job_id: jobId } = await c.triggerSchedule(created.id);
  assert.equal((await waitJob(c, jobId)).schedule_id, created.id);
  await c.deleteSchedule(created.id);
  await assert.rejects(c.getSchedule(created.id), JobNotFoundError);

  const r = await recorder(t);
  r.route('POST', '/hook', { ok: true });
  const hook = await c.addWebhook({ url: `${r.url}/hook`, events: ['job_completed', 'job_failed'], headers: { 'X-Token': 'secret' } });
  assert.ok(hook.id);
  const listed = (await c.listWebhooks()).find((w) => w.id === hook.id);
  assert.deepEqual(listed.headers, { 'X-Token': '********' });
  assert.equal((await c.testWebhook(`${r.url}/hook`)).success, true);
  assert.ok(r.requests.some((q) => q.path === '/hook'));
  await c.deleteWebhook(hook.id);
  assert.ok(!(await c.listWebhooks()).some((w) => w.id === hook.id));
});

// ---- in-process ------------------------------------------------------------------------------

test('in-process: new HyperSDK() runs the service inside this process', async (t) => {
  assert.equal(typeof native.serviceRequest, 'function',
    'the addon has no serviceRequest: rebuild bindings/node (npm run build) with the in-process service');
  const local = new HyperSDK();
  assert.equal((await local.health()).status, 'healthy');
  assert.equal(typeof (await local.status()).total_jobs, 'number');
  assert.ok((await local.capabilities()).providers.includes('vsphere'));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hypersdk-local-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const id = await local.submitJob({ vm_path: '/DC0/vm/x', output_dir: path.join(dir, 'out'),
    vcenter: { server: `https://127.0.0.1:${await freePort()}/sdk`, username: 'u', password: 'p', insecure: true } });
  const job = await waitJob(local, id);
  assert.equal(job.status, JobStatus.FAILED);
  assert.ok(job.error);
  await assert.rejects(local.listDomains(), (e) => e instanceof APIError && e.route === 'GET /libvirt/domains');
});
