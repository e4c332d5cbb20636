'use strict';
// The operation model from JavaScript: run(), start() and Job over hsdk_run_json / hsdk_job_*.
// A request is plain JSON (api/*.json describes each, docs/api.md lists them); the library validates
// it and names a bad field by its JSON pointer. Progress reports reach onProgress on this thread; an
// AbortSignal or Job.cancel() cancels.
const native = require('./native');
const args = require('./args');
const { invalidArgument, cancelled } = require('./errors');

const RUN_OPTIONS = ['signal', 'onProgress'];

function operationName(value) {
  if (typeof value !== 'string' || value === '') throw invalidArgument(`operation must be a non-empty string, not ${args.describe(value)}`);
  return value;
}

function requestJson(request) {
  if (request === undefined || request === null) return '{}';
  if (typeof request !== 'object' || Array.isArray(request)) {
    throw invalidArgument(`request must be an object, not ${args.describe(request)}`);
  }
  return JSON.stringify(request, (key, value) => (typeof value === 'bigint' ? Number(value) : value));
}

function runOptions(options, fn) {
  const o = args.options(options, RUN_OPTIONS, fn);
  if (o.signal !== undefined && o.signal !== null && !(o.signal instanceof AbortSignal)) {
    throw invalidArgument(`${fn}: signal must be an AbortSignal`);
  }
  return { signal: o.signal ?? undefined, onProgress: args.optionalFunction(o.onProgress, 'onProgress') };
}

// Wires signal to token for as long as promise is pending.
function followSignal(signal, cancel, promise) {
  if (!signal) return promise;
  signal.addEventListener('abort', cancel, { once: true });
  const done = () => signal.removeEventListener('abort', cancel);
  promise.then(done, done);
  return promise;
}

/**
 * Runs an operation and resolves with its result object. options: {signal, onProgress}; onProgress
 * may return true to cancel, and an exception it throws cancels and becomes the rejection.
 */
async function run(operation, request, options) {
  operation = operationName(operation);
  const json = requestJson(request);
  const { signal, onProgress } = runOptions(options, 'run');
  if (signal?.aborted) throw cancelled(`${operation}: cancelled before it started (the AbortSignal was already aborted)`);
  const token = new native.CancelToken();
  const pending = native.runJson(operation, json, { onProgress, cancel: token });
  return JSON.parse(await followSignal(signal, () => token.request(), pending));
}

/**
 * A started operation: .id, .operation, .state, wait() (the result, or the job's error), cancel(),
 * info(). A Job is also a thenable, so `await start(...)` gives the result.
 */
class Job {
  #native;
  #done;

  constructor(operation, nativeJob, signal) {
    this.operation = operation;
    this.#native = nativeJob;
    // Waited for from the start: the wait holds the native handle until the job has finished.
    this.#done = followSignal(signal, () => nativeJob.cancel(), nativeJob.wait()).then(() => JSON.parse(nativeJob.resultJson()));
    // A job nobody awaits must not end the process with an unhandled rejection.
    this.#done.catch(() => {});
  }

  /** The job's id (a UUID); log lines of the job carry it. */
  get id() {
    return this.#native.id;
  }

  /** 'queued', 'running', 'succeeded', 'failed' or 'cancelled'. */
  get state() {
    return this.#native.state;
  }

  /** Resolves with the result; rejects with the job's error (code "cancelled" when cancelled). */
  wait() {
    return this.#done;
  }

  then(onFulfilled, onRejected) {
    return this.#done.then(onFulfilled, onRejected);
  }

  /** From anywhere: a queued job is cancelled at once, a running one stops and cleans up. */
  cancel() {
    this.#native.cancel();
  }

  /** {id, operation, state, request (secrets masked), progress, error?, created, started?, finished?} */
  info() {
    return JSON.parse(this.#native.infoJson());
  }
}
Object.defineProperty(Job.prototype, Symbol.toStringTag, { value: 'hypersdk.Job' });

/** Starts an operation as a job (validated now: a bad request throws here) and returns the Job. */
function start(operation, request, options) {
  operation = operationName(operation);
  const json = requestJson(request);
  const { signal, onProgress } = runOptions(options, 'start');
  if (signal?.aborted) throw cancelled(`${operation}: cancelled before it started (the AbortSignal was already aborted)`);
  const token = new native.CancelToken();
  return new Job(operation, new native.NativeJob(operation, json, { onProgress, cancel: token }), signal);
}

/** Every operation of the registry: {name: {summary, description, long_running, errors, request, result}}. */
function operations() {
  const all = JSON.parse(native.opsJson()).operations;
  return Object.fromEntries(all.map((op) => [op.name, op]));
}

/** Limits of the executor every job shares ({maxJobs, workerThreads, ioThreads}; absent keeps a limit). */
function configureExecutor(limits) {
  native.configureExecutor(args.options(limits, ['maxJobs', 'workerThreads', 'ioThreads'], 'configureExecutor'));
}

/** {jobs, workers, io: {limit, threads, busy, queued, peak_threads}, timer_threads} */
function executorStats() {
  return JSON.parse(native.executorStatsJson());
}

module.exports = { run, start, Job, operations, configureExecutor, executorStats };
