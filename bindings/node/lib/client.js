'use strict';
// HyperSDK: the client of the original HyperSDK TypeScript SDK (same class, method names,
// arguments and resolved shapes), talking to hypervisord over HTTP, or, without a URL, to the same
// service inside this process through the addon (no daemon, no authentication, jobs in memory).
//
// Both modes run the same code: each method builds one request (method, path and query, JSON body,
// headers) and hands it to a transport, fetch() for a URL or the addon's serviceRequest() for none,
// which answers {status, contentType, body}. Errors are mapped as the old SDK mapped them: 401 is
// an AuthenticationError; a 404 is a JobNotFoundError (the job, schedule, webhook or VM named does
// not exist); any other failure is an APIError. The old SDK's methods for routes hypervisord does
// not serve (libvirt, cost, carbon, conversion, advanced schedules, VM shutdown) send the request
// the old SDK sent, and the daemon's 404 becomes an APIError naming the route (.route), as does any
// route the service answers with its router's "not found: <path>" or a 405.

// ---- errors (the old SDK's classes; distinct from HypersdkError, the library's error) ----------

class HyperSDKError extends Error {}

class AuthenticationError extends HyperSDKError {
  constructor(message, statusCode, response) {
    super(message);
    this.statusCode = statusCode;
    this.response = response;
  }
}

class JobNotFoundError extends HyperSDKError {
  constructor(message, statusCode, response) {
    super(message);
    this.statusCode = statusCode;
    this.response = response;
  }
}

class APIError extends HyperSDKError {
  constructor(message, statusCode, response, route) {
    super(message);
    this.statusCode = statusCode;
    this.response = response;
    this.route = route;
  }
}

class ValidationError extends HyperSDKError {}

class WebSocketError extends HyperSDKError {}

for (const cls of [HyperSDKError, AuthenticationError, JobNotFoundError, APIError, ValidationError, WebSocketError]) {
  Object.defineProperty(cls.prototype, 'name', { value: cls.name, writable: true, configurable: true, enumerable: false });
}

// ---- the old SDK's enums, as frozen objects of their string values ------------------------------

const JobStatus = Object.freeze({
  PENDING: 'pending', RUNNING: 'running', COMPLETED: 'completed', FAILED: 'failed', CANCELLED: 'cancelled',
});
const ExportFormat = Object.freeze({
  QCOW2: 'qcow2', RAW: 'raw', VMDK: 'vmdk', OVA: 'ova', OVF: 'ovf', VHD: 'vhd', VHDX: 'vhdx', VDI: 'vdi',
});
const ExportMethod = Object.freeze({ CTL: 'ctl', GOVC: 'govc', OVFTOOL: 'ovftool', WEB: 'web', AUTO: '' });

// ---- transports ---------------------------------------------------------------------------------

class HttpTransport {
  constructor(baseURL, timeout) {
    this.baseURL = baseURL;
    this.timeout = timeout;
  }

  async send(method, target, body, headers) {
    const url = this.baseURL + target;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.timeout);
    try {
      const response = await fetch(url, { method, headers, body: body ?? undefined, signal: controller.signal });
      const data = Buffer.from(await response.arrayBuffer());
      return { status: response.status, contentType: response.headers.get('content-type') || '', body: data };
    } catch (err) {
      if (err && (err.name === 'AbortError' || err.name === 'TimeoutError')) {
        throw new APIError(`Request timeout: ${method} ${url} took more than ${this.timeout} ms`);
      }
      const reason = (err && err.cause && err.cause.message) || (err && err.message) || String(err);
      throw new APIError(`Request failed: ${method} ${url}: ${reason}`);
    } finally {
      clearTimeout(timer);
    }
  }
}

class InProcessTransport {
  constructor() {
    this.native = require('./native');
    if (typeof this.native.serviceRequest !== 'function') {
      throw new HyperSDKError('this build of the hypersdk addon has no in-process service (serviceRequest): '
        + 'give HyperSDK the daemon\'s URL');
    }
  }

  async send(method, target, body, headers) {
    const lower = {};
    for (const [k, v] of Object.entries(headers)) lower[k.toLowerCase()] = String(v);
    const answer = await this.native.serviceRequest(method, target, body || Buffer.alloc(0), lower);
    const data = answer.body;
    return {
      status: Number(answer.status),
      contentType: answer.contentType || '',
      body: Buffer.isBuffer(data) ? data : Buffer.from(data == null ? '' : data),
    };
  }
}

// ---- helpers ------------------------------------------------------------------------------------

function segment(id) {
  if (typeof id !== 'string' || id === '') throw new ValidationError(`expected a non-empty id, got ${JSON.stringify(id)}`);
  return encodeURIComponent(id);
}

function decode(contentType, data) {
  if (!data || data.length === 0) return null;
  const text = data.toString('utf8');
  const kind = contentType.split(';')[0].trim().toLowerCase();
  if (kind.includes('json') || (!kind.startsWith('text/') && /^\s*[[{]/.test(text))) {
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }
  return text;
}

function errorMessage(payload, status) {
  if (payload && typeof payload === 'object' && !Array.isArray(payload)) {
    for (const key of ['error', 'message']) {
      if (typeof payload[key] === 'string' && payload[key]) return payload[key];
    }
    return JSON.stringify(payload);
  }
  if (typeof payload === 'string' && payload.trim()) return payload.trim();
  return `HTTP ${status}`;
}

function submissionError(errors) {
  if (Array.isArray(errors) && errors.length > 0) {
    const first = errors[0];
    if (first && typeof first === 'object') return String(first.error || first.message || JSON.stringify(first));
    return String(first);
  }
  return 'Unknown error';
}

function isObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

// The old SDK sent the vCenter configuration itself as the body of /vms/list; hypervisord takes
// {provider?, vcenter?, filter?}: a bare configuration is wrapped in `vcenter`.
function vmRequest(vcenterConfig) {
  if (vcenterConfig == null) return {};
  if (!isObject(vcenterConfig)) throw new ValidationError('a vCenter configuration is an object {server, username, password, insecure}');
  if (!('server' in vcenterConfig) && ['vcenter', 'provider', 'filter'].some((k) => k in vcenterConfig)) return { ...vcenterConfig };
  return { vcenter: { ...vcenterConfig } };
}

// The old SDK's scripts name a job by definition.id: filled from the job's id when missing.
function withDefinitionId(job) {
  if (isObject(job) && job.id && isObject(job.definition) && !job.definition.id) job.definition.id = job.id;
  return job;
}

function parseConfig(config, options) {
  if (config == null) return { ...(options || {}) };
  if (typeof config === 'string' || config instanceof URL) return { ...(options || {}), baseURL: String(config) };
  if (isObject(config)) return { ...config, ...(options || {}) };
  throw new ValidationError('HyperSDK takes a base URL string and/or {baseURL, apiKey, timeout, headers}');
}

// ---- the client ---------------------------------------------------------------------------------

class HyperSDK {
  #token;
  #transport;

  // new HyperSDK('http://host:8080', {apiKey, timeout, headers}) or new HyperSDK({baseURL, apiKey,
  // timeout, headers}) talks to a daemon; new HyperSDK() (or no baseURL) runs in this process.
  constructor(config, options) {
    const opts = parseConfig(config, options);
    const base = opts.baseURL ?? opts.baseUrl;
    this.baseURL = base ? String(base).replace(/\/+$/, '') : undefined;
    this.apiKey = opts.apiKey;
    this.timeout = opts.timeout || 30000;
    this.headers = { ...(opts.headers || {}) };
    if (this.apiKey) this.headers['X-API-Key'] = this.apiKey;
    if (this.baseURL === undefined) {
      this.#transport = new InProcessTransport();
    } else {
      let scheme;
      try {
        scheme = new URL(this.baseURL).protocol;
      } catch {
        scheme = '';
      }
      if (scheme !== 'http:' && scheme !== 'https:') throw new ValidationError(`baseURL must be an http:// or https:// URL, not ${JSON.stringify(base)}`);
      this.#transport = new HttpTransport(this.baseURL, this.timeout);
    }
  }

  /** True when requests go to the service in this process (no baseURL). */
  get inProcess() {
    return this.baseURL === undefined;
  }

  /** The session token of the last login(), or undefined. */
  get token() {
    return this.#token;
  }

  // The one request path. served: false for the old SDK's routes hypervisord does not serve (their
  // 404/405/501 name the route).
  async _request(method, path, { body, params, headers, served = true } = {}) {
    let target = path;
    if (params) {
      const query = new URLSearchParams();
      for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null) query.append(k, String(v));
      const text = query.toString();
      if (text) target += `?${text}`;
    }
    const hdrs = { Accept: 'application/json, text/plain;q=0.9, */*;q=0.1', ...this.headers, ...(headers || {}) };
    if (this.#token) hdrs.Authorization = `Bearer ${this.#token}`;
    let data = null;
    if (body !== undefined) {
      data = Buffer.from(JSON.stringify(body), 'utf8');
      hdrs['Content-Type'] = 'application/json';
    }
    const answer = await this.#transport.send(method, target, data, hdrs);
    const payload = decode(answer.contentType, answer.body);
    if (answer.status >= 200 && answer.status < 300) return payload;
    const route = `${method} ${path}`;
    const message = errorMessage(payload, answer.status);
    if (answer.status === 401) throw new AuthenticationError(`Authentication failed: ${message}`, 401, payload);
    const unrouted = answer.status === 405 || (answer.status === 404 && message === `not found: ${decodeURIComponent(path)}`);
    if (unrouted || (!served && [404, 405, 501].includes(answer.status))) {
      throw new APIError(`${route} is not served by this HyperSDK service (${answer.status}: ${message})`, answer.status, payload, route);
    }
    if (answer.status === 404) throw new JobNotFoundError(`Resource not found: ${path} (${message})`, 404, payload);
    throw new APIError(`API error: ${message} (${route}: ${answer.status})`, answer.status, payload, route);
  }

  async _object(method, path, options) {
    const answer = await this._request(method, path, options);
    if (!isObject(answer)) {
      throw new APIError(`unexpected answer to ${method} ${path}: expected a JSON object, got ${JSON.stringify(answer)}`,
        undefined, answer, `${method} ${path}`);
    }
    return answer;
  }

  async _array(method, path, options = {}, key = undefined) {
    let answer = await this._request(method, path, options);
    if (key && isObject(answer) && Array.isArray(answer[key])) answer = answer[key];
    if (!Array.isArray(answer)) {
      throw new APIError(`unexpected answer to ${method} ${path}: expected a JSON array, got ${JSON.stringify(answer)}`,
        undefined, answer, `${method} ${path}`);
    }
    return answer;
  }

  // Authentication

  async login(username, password) {
    const answer = await this._object('POST', '/api/login', { body: { username, password } });
    if (typeof answer.token !== 'string' || !answer.token) {
      throw new AuthenticationError('Authentication failed: the login answer has no token', undefined, answer);
    }
    this.#token = answer.token;
    return this.#token;
  }

  async logout() {
    await this._request('POST', '/api/logout');
    this.#token = undefined;
  }

  // Health & status

  async health() {
    return this._object('GET', '/health');
  }

  async status() {
    return this._object('GET', '/status');
  }

  async capabilities() {
    return this._object('GET', '/capabilities');
  }

  // Jobs

  async submitJob(jobDef) {
    if (!isObject(jobDef)) throw new ValidationError('a job definition is an object');
    const answer = await this._object('POST', '/jobs/submit', { body: jobDef });
    const ids = Array.isArray(answer.job_ids) ? answer.job_ids : (answer.job_id ? [answer.job_id] : []);
    if (answer.accepted === 0 || ids.length === 0) {
      throw new APIError(`Job submission failed: ${submissionError(answer.errors)}`, undefined, answer, 'POST /jobs/submit');
    }
    return String(ids[0]);
  }

  async submitJobs(jobDefs) {
    if (!Array.isArray(jobDefs)) throw new ValidationError('submitJobs takes an array of job definitions');
    const answer = await this._object('POST', '/jobs/submit', { body: jobDefs });
    return (answer.job_ids || []).map(String);
  }

  async getJob(jobId) {
    return withDefinitionId(await this._object('GET', `/jobs/${segment(jobId)}`));
  }

  async queryJobs(query = {}) {
    return (await this._array('POST', '/jobs/query', { body: query }, 'jobs')).map(withDefinitionId);
  }

  async listJobs(all = true) {
    return (await this._array('GET', '/jobs/query', { params: all ? { all: 'true' } : {} }, 'jobs')).map(withDefinitionId);
  }

  async cancelJob(jobId) {
    const answer = await this._object('POST', '/jobs/cancel', { body: { job_ids: [jobId] } });
    if ((answer.cancelled || []).includes(jobId)) return true;
    if ((answer.failed || []).includes(jobId)) {
      const reason = (answer.errors && answer.errors[jobId]) || 'Unknown error';
      throw new APIError(`Failed to cancel job: ${reason}`, undefined, answer, 'POST /jobs/cancel');
    }
    return false;
  }

  async cancelJobs(jobIds) {
    return this._object('POST', '/jobs/cancel', { body: { job_ids: jobIds } });
  }

  async getJobProgress(jobId) {
    return this._object('GET', `/jobs/progress/${segment(jobId)}`);
  }

  async getJobLogs(jobId) {
    const answer = await this._request('GET', `/jobs/logs/${segment(jobId)}`);
    if (answer == null) return '';
    return typeof answer === 'string' ? answer : JSON.stringify(answer);
  }

  async getJobETA(jobId) {
    const answer = await this._object('GET', `/jobs/eta/${segment(jobId)}`);
    return answer.estimated_remaining || answer.eta || 'Unknown';
  }

  // The same as getJobETA.
  async getJobEta(jobId) {
    return this.getJobETA(jobId);
  }

  // VMs

  async listVMs(vcenterConfig, options = {}) {
    const body = vmRequest(vcenterConfig);
    if (options.provider) body.provider = options.provider;
    if (options.filter) body.filter = options.filter;
    return this._array('POST', '/vms/list', { body }, 'vms');
  }

  async getVMInfo(vcenterConfig, vmPath) {
    const body = { vm_path: vmPath };
    if (vcenterConfig != null) body.vcenter = vcenterConfig;
    return this._object('POST', '/vms/info', { body });
  }

  async shutdownVM(vcenterConfig, vmPath) {
    return this._object('POST', '/vms/shutdown', { body: { vcenter: vcenterConfig, vm_path: vmPath }, served: false });
  }

  // Schedules

  async listSchedules() {
    return this._array('GET', '/schedules', {}, 'schedules');
  }

  async createSchedule(schedule) {
    return this._object('POST', '/schedules', { body: schedule });
  }

  async getSchedule(scheduleId) {
    return this._object('GET', `/schedules/${segment(scheduleId)}`);
  }

  async updateSchedule(scheduleId, schedule) {
    return this._object('PUT', `/schedules/${segment(scheduleId)}`, { body: schedule });
  }

  async deleteSchedule(scheduleId) {
    await this._request('DELETE', `/schedules/${segment(scheduleId)}`);
  }

  async enableSchedule(scheduleId) {
    await this._request('POST', `/schedules/${segment(scheduleId)}/enable`);
  }

  async disableSchedule(scheduleId) {
    await this._request('POST', `/schedules/${segment(scheduleId)}/disable`);
  }

  // Resolves to {schedule_id, job_id} (the old SDK resolved to undefined).
  async triggerSchedule(scheduleId) {
    return this._object('POST', `/schedules/${segment(scheduleId)}/trigger`);
  }

  // Webhooks

  async listWebhooks() {
    return this._array('GET', '/webhooks', {}, 'webhooks');
  }

  // Resolves to the webhook as created, with its id (the old SDK resolved to undefined).
  async addWebhook(webhook) {
    const answer = await this._request('POST', '/webhooks', { body: webhook });
    return isObject(answer) && answer.url ? answer : { ...webhook };
  }

  // Rejects with an APIError when the delivery failed; else resolves to {url, status_code,
  // success, duration_ms} (the old SDK resolved to undefined).
  async testWebhook(url) {
    const answer = await this._object('POST', '/webhooks/test', { body: { url } });
    if (answer.success === false) {
      throw new APIError(`Webhook test failed: ${url}: ${answer.error || `HTTP ${answer.status_code}`}`,
        answer.status_code, answer, 'POST /webhooks/test');
    }
    return answer;
  }

  async deleteWebhook(webhookId) {
    await this._request('DELETE', `/webhooks/${segment(webhookId)}`);
  }

  // ---- the old SDK's routes that hypervisord does not serve (APIError naming the route) -------
  // Cost estimation's routes exist and answer 501.

  async listDomains() {
    return this._array('GET', '/libvirt/domains', { served: false });
  }

  async getDomain(name) {
    return this._object('GET', '/libvirt/domain', { params: { name }, served: false });
  }

  async startDomain(name) {
    await this._request('POST', '/libvirt/domain/start', { body: { name }, served: false });
  }

  async shutdownDomain(name) {
    await this._request('POST', '/libvirt/domain/shutdown', { body: { name }, served: false });
  }

  async listSnapshots(domain) {
    return this._array('GET', '/libvirt/snapshots', { params: { domain }, served: false });
  }

  async createSnapshot(domain, name, description) {
    await this._request('POST', '/libvirt/snapshot/create', { body: { domain, name, description }, served: false });
  }

  async estimateCost(params) {
    return this._object('POST', '/cost/estimate', {
      body: {
        provider: params.provider,
        region: params.region,
        storage_class: params.storageClass,
        storage_gb: params.storageGB,
        transfer_gb: params.transferGB || 0,
        requests: params.requests || 0,
        duration_days: params.durationDays || 30,
      },
    });
  }

  async compareProviders(params) {
    return this._object('POST', '/cost/compare', {
      body: {
        storage_gb: params.storageGB,
        transfer_gb: params.transferGB || 0,
        requests: params.requests || 0,
        duration_days: params.durationDays || 30,
      },
    });
  }

  async projectYearlyCost(params) {
    return this._object('POST', '/cost/project', {
      body: {
        provider: params.provider,
        storage_class: params.storageClass,
        storage_gb: params.storageGB,
        transfer_gb: params.transferGB || 0,
        requests: params.requests || 0,
        duration_days: 30,
      },
      served: false,
    });
  }

  async estimateExportSize(params) {
    return this._object('POST', '/cost/estimate-size', {
      body: { disk_size_gb: params.diskSizeGB, format: params.format || 'ova', include_snapshots: params.includeSnapshots || false },
      served: false,
    });
  }

  async createAdvancedSchedule(params) {
    return this._object('POST', '/schedules/advanced/create', {
      body: {
        name: params.name,
        description: params.description || '',
        schedule: params.schedule,
        job_template: params.jobTemplate,
        advanced_config: params.advancedConfig,
      },
      served: false,
    });
  }

  async getDependencyStatus(jobId) {
    return this._object('GET', '/schedules/dependencies', { params: { job_id: jobId }, served: false });
  }

  async getRetryStatus(jobId) {
    return this._object('GET', '/schedules/retry', { params: { job_id: jobId }, served: false });
  }

  async getTimeWindowStatus(jobId) {
    return this._object('GET', '/schedules/timewindow', { params: { job_id: jobId }, served: false });
  }

  async getJobQueueStatus() {
    return this._object('GET', '/schedules/queue', { served: false });
  }

  async validateSchedule(params) {
    return this._object('POST', '/schedules/validate', {
      body: { name: params.name, schedule: params.schedule, job_template: params.jobTemplate, advanced_config: params.advancedConfig },
      served: false,
    });
  }

  // Changed block tracking. The old SDK sent only {vm_path}: the daemon then uses its configured
  // vCenter; vcenterConfig (an addition) names one, as the in-process service has none configured.
  async _cbt(path, vmPath, vcenterConfig) {
    const body = { vm_path: vmPath };
    if (vcenterConfig != null) body.vcenter = vcenterConfig;
    return this._object('POST', path, { body });
  }

  async enableCBT(vmPath, vcenterConfig) {
    return this._cbt('/cbt/enable', vmPath, vcenterConfig);
  }

  async disableCBT(vmPath, vcenterConfig) {
    return this._cbt('/cbt/disable', vmPath, vcenterConfig);
  }

  async getCBTStatus(vmPath, vcenterConfig) {
    return this._cbt('/cbt/status', vmPath, vcenterConfig);
  }

  async analyzeIncrementalExport(vmPath, vcenterConfig) {
    return this._cbt('/incremental/analyze', vmPath, vcenterConfig);
  }

  async convertVM(sourcePath, outputPath) {
    const answer = await this._object('POST', '/convert/vm', { body: { source_path: sourcePath, output_path: outputPath }, served: false });
    return answer.conversion_id;
  }

  async getConversionStatus(conversionId) {
    return this._object('GET', '/convert/status', { params: { conversion_id: conversionId }, served: false });
  }

  async getCarbonStatus(zone = 'US-CAL-CISO', threshold = 200.0) {
    return this._object('POST', '/carbon/status', { body: { zone, threshold }, served: false });
  }

  async listCarbonZones() {
    return this._array('GET', '/carbon/zones', { served: false }, 'zones');
  }

  async estimateCarbonSavings(zone, dataSizeGB, durationHours = 2.0) {
    return this._object('POST', '/carbon/estimate', {
      body: { zone, data_size_gb: dataSizeGB, duration_hours: durationHours },
      served: false,
    });
  }

  async getCarbonReport(jobId, startTime, endTime, dataSizeGB, zone = 'US-CAL-CISO') {
    return this._object('POST', '/carbon/report', {
      body: { job_id: jobId, start_time: startTime, end_time: endTime, data_size_gb: dataSizeGB, zone },
      served: false,
    });
  }

  // POST /jobs/submit with the old SDK's carbon metadata; hypervisord keeps it but does not delay the job.
  async submitCarbonAwareJob(jobDef, carbonZone = 'US-CAL-CISO', maxIntensity = 200.0, maxDelayHours = 4.0) {
    return this.submitJob({
      ...jobDef,
      metadata: {
        ...(jobDef && jobDef.metadata),
        carbon_aware: true,
        carbon_zone: carbonZone,
        carbon_max_intensity: maxIntensity,
        carbon_max_delay: Math.round(maxDelayHours * 3600 * 1e9),
      },
    });
  }
}

module.exports = {
  HyperSDK,
  HyperSDKError,
  AuthenticationError,
  JobNotFoundError,
  APIError,
  ValidationError,
  WebSocketError,
  JobStatus,
  ExportFormat,
  ExportMethod,
};
