// Live updates: the daemon's /ws stream ({type: "status"|"jobs"|"job_update", timestamp, data}),
// reconnected with exponential backoff and jitter. While the socket is down the page polls
// /jobs/query every 2 s instead, so it keeps working behind proxies that drop WebSockets.

import { get, socketUrl } from './api.js';

const POLL_MS = 2000;
const MAX_BACKOFF_MS = 30000;

export class LiveUpdates {
  // handlers: {jobs(list), job(job), status(status), mode("connecting"|"live"|"polling"|"stopped")}
  constructor(handlers) {
    this.handlers = handlers;
    this.socket = null;
    this.attempt = 0;
    this.retryTimer = null;
    this.pollTimer = null;
    this.running = false;
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.connect();
  }

  stop() {
    this.running = false;
    clearTimeout(this.retryTimer);
    this.stopPolling();
    if (this.socket) {
      const s = this.socket;
      this.socket = null;
      s.close();
    }
    this.handlers.mode('stopped');
  }

  connect() {
    this.handlers.mode(this.pollTimer ? 'polling' : 'connecting');
    let socket;
    try {
      socket = new WebSocket(socketUrl());
    } catch {
      this.retryLater();
      return;
    }
    this.socket = socket;
    socket.addEventListener('open', () => {
      this.attempt = 0;
      this.stopPolling();
      this.handlers.mode('live');
    });
    socket.addEventListener('message', (event) => this.dispatch(event.data));
    socket.addEventListener('close', () => {
      if (this.socket !== socket) return; // closed by stop() or replaced
      this.socket = null;
      if (this.running) this.retryLater();
    });
  }

  dispatch(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    if (message.type === 'status') this.handlers.status(message.data);
    else if (message.type === 'jobs' && Array.isArray(message.data)) this.handlers.jobs(message.data);
    else if (message.type === 'job_update' && message.data) this.handlers.job(message.data);
  }

  retryLater() {
    this.startPolling();
    const base = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** this.attempt);
    this.attempt += 1;
    this.retryTimer = setTimeout(() => this.connect(), base * (0.75 + Math.random() * 0.5));
  }

  startPolling() {
    if (this.pollTimer) return;
    this.handlers.mode('polling');
    const poll = async () => {
      try {
        const answer = await get('jobs/query?limit=100');
        if (this.running && this.pollTimer) this.handlers.jobs(answer.jobs || []);
      } catch {
        // the next tick tries again; a 401 has already sent the page to its login form
      }
    };
    this.pollTimer = setInterval(poll, POLL_MS);
    poll();
  }

  stopPolling() {
    clearInterval(this.pollTimer);
    this.pollTimer = null;
  }
}
