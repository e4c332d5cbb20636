'use strict';
// AbortSignal -> hsdk_cancel: an abort requests cancellation of the library's token (safe while
// the operation runs on a pool thread); the operation then rejects with code "cancelled".
const native = require('./native');
const { cancelled, invalidArgument } = require('./errors');

// Runs run(token) with a CancelToken wired to signal (token undefined when there is no signal).
async function withSignal(signal, fn, run) {
  if (signal === undefined || signal === null) return run(undefined);
  if (!(signal instanceof AbortSignal)) throw invalidArgument(`${fn}: signal must be an AbortSignal`);
  // Said here rather than left to the library, which may finish small jobs without looking.
  if (signal.aborted) throw cancelled(`${fn}: cancelled before it started (the AbortSignal was already aborted)`);
  const token = new native.CancelToken();
  const onAbort = () => token.request();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    return await run(token);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

module.exports = { withSignal };
