// The jobs view: every job, newest first, with its state, progress (bytes, rate, ETA), a cancel
// button while it is pending or running, its error, its result files and its log lines. Rows are
// updated in place from the live stream; every number sits in a fixed-width cell, so nothing
// moves as progress changes.

import { get, post } from '../api.js';
import * as fmt from '../format.js';
import { cell, clear, h, select, setText, showMessage, table } from '../dom.js';

const MAX_ROWS = 300; // the oldest finished jobs leave the page beyond this
const ACTIVE = new Set(['pending', 'running']);
const FINISHED = new Set(['completed', 'failed', 'cancelled']);
const COLUMNS = [
  { label: 'Job', class: 'col-job' },
  { label: 'State', class: 'col-state' },
  { label: 'VM', class: 'col-vm' },
  { label: 'Provider', class: 'col-provider' },
  { label: 'Format', class: 'col-format' },
  { label: 'Progress', class: 'col-progress' },
  { label: 'Transferred', class: 'col-bytes' },
  { label: 'Rate', class: 'col-rate' },
  { label: 'ETA', class: 'col-eta' },
  { label: 'Actions', class: 'col-actions' },
];

// The fields of a job's definition the page shows; the definition itself is never rendered whole.
function described(job) {
  const d = job.definition && typeof job.definition === 'object' ? job.definition : {};
  const result = job.result && typeof job.result === 'object' ? job.result : {};
  const isExport = job.kind === 'export' || job.operation === 'export.run';
  return {
    name: job.name || d.name || job.id,
    vm: job.vm_path || d.vm_path || d.vm || '',
    provider: d.provider || (isExport ? 'vsphere' : ''),
    format: d.format || d.export_method || result.export_method || '',
    output: d.output_dir || d.output_path || d.export_path || result.output_dir || '',
    repo: d.repo || '',
    files: Array.isArray(result.files) ? result.files : Array.isArray(result.output_files) ? result.output_files : [],
  };
}

function progressOf(job) {
  const p = job.progress && typeof job.progress === 'object' ? job.progress : {};
  return {
    percent: job.status === 'completed' ? 100 : Number(p.percent_complete ?? p.percentage ?? 0) || 0,
    done: p.bytes_downloaded ?? p.bytes_transferred,
    total: p.total_bytes,
    rate: p.rate_bytes_per_sec,
    eta: p.eta_seconds,
    phase: p.phase || p.current_step || '',
  };
}

class JobRow {
  constructor(job, view) {
    this.view = view;
    this.id = job.id;
    this.status = null;
    this.el = {
      name: h('strong', { class: 'job-name' }),
      sub: h('small', { class: 'job-id' }),
      badge: h('span', { class: 'badge' }),
      phase: h('small', { class: 'phase' }),
      vm: h('span', { class: 'path' }),
      provider: h('span'),
      format: h('span'),
      fill: h('span', { class: 'fill' }),
      pct: h('span', { class: 'pct num' }),
      bytes: h('span', { class: 'num' }),
      rate: h('span', { class: 'num' }),
      eta: h('span', { class: 'num' }),
      cancel: h('button', { type: 'button', class: 'danger small', onclick: () => this.cancel() }, 'Cancel'),
      error: h('p', { class: 'job-error', hidden: true }),
      where: h('p', { class: 'job-where' }),
      files: h('ul', { class: 'files' }),
      logLines: h('ol', { class: 'log-lines' }),
    };
    const e = this.el;
    e.bar = h('div', { class: 'bar', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': '0' }, e.fill);
    e.filesBox = h('div', { class: 'job-files', hidden: true }, h('span', { class: 'label' }, 'Result files'), e.files);
    e.log = h('details', { class: 'log', ontoggle: () => e.log.open && this.loadLog() },
      h('summary', {}, 'Log'), e.logLines);
    const main = h('tr', { class: 'job-main' },
      cell('Job', [e.name, e.sub], 'col-job'),
      cell('State', [e.badge, e.phase], 'col-state'),
      cell('VM', e.vm, 'col-vm'),
      cell('Provider', e.provider, 'col-provider'),
      cell('Format', e.format, 'col-format'),
      cell('Progress', h('div', { class: 'progress' }, e.bar, e.pct), 'col-progress'),
      cell('Transferred', e.bytes, 'col-bytes'),
      cell('Rate', e.rate, 'col-rate'),
      cell('ETA', e.eta, 'col-eta'),
      cell('Actions', e.cancel, 'col-actions'));
    const detail = h('tr', { class: 'job-detail' },
      h('td', { colspan: String(COLUMNS.length) }, e.error, e.where, e.filesBox, e.log));
    this.tbody = h('tbody', { class: 'job', dataset: { jobId: job.id } }, main, detail);
  }

  update(job) {
    const e = this.el;
    const d = described(job);
    const p = progressOf(job);
    const previous = this.status;
    this.status = job.status;
    this.created = job.created_at || '';
    setText(e.name, d.name);
    setText(e.sub, job.operation && job.operation !== 'export.run' ? `${job.operation} · ${job.id}` : job.id);
    e.sub.title = job.id;
    setText(e.badge, job.status);
    e.badge.className = `badge state-${job.status}`;
    setText(e.phase, job.status === 'running' ? p.phase : '');
    setText(e.vm, d.vm || '—');
    setText(e.provider, d.provider || '—');
    setText(e.format, d.format || '—');

    const pct = Math.max(0, Math.min(100, p.percent));
    e.fill.style.transform = `scaleX(${pct / 100})`;
    e.bar.setAttribute('aria-valuenow', String(Math.round(pct * 10) / 10));
    e.bar.dataset.state = job.status;
    e.bar.setAttribute('aria-label', `Progress of ${d.name}`);
    setText(e.pct, fmt.percent(pct));
    setText(e.bytes, p.total ? `${fmt.bytes(p.done || 0)} / ${fmt.bytes(p.total)}` : fmt.bytes(p.done || null));
    const running = job.status === 'running';
    setText(e.rate, running ? fmt.rate(p.rate) : '—');
    setText(e.eta, running ? fmt.duration(p.eta) : '—');

    e.cancel.hidden = !(ACTIVE.has(job.status) && this.view.ctx.canOperate());
    e.cancel.setAttribute('aria-label', `Cancel job ${d.name}`);
    if (!ACTIVE.has(job.status)) e.cancel.disabled = false;

    e.error.hidden = !job.error;
    setText(e.error, job.error ? `Error: ${job.error}` : '');
    const where = [];
    if (d.output) where.push(`Output: ${d.output}`);
    if (d.repo) where.push(`Repository: ${d.repo}`);
    where.push(`Created ${fmt.dateTime(job.created_at)}`);
    if (job.completed_at) where.push(`finished ${fmt.dateTime(job.completed_at)}`);
    setText(e.where, where.join(' · '));
    if (d.files.length !== e.files.childElementCount) {
      clear(e.files);
      for (const f of d.files) e.files.append(h('li', {}, h('code', { title: String(f) }, String(f))));
    }
    e.filesBox.hidden = d.files.length === 0;
    if (e.log.open) this.loadLogSoon();
    return previous;
  }

  async cancel() {
    const button = this.el.cancel;
    button.disabled = true;
    setText(button, 'Cancelling…');
    try {
      const answer = await post('jobs/cancel', { job_ids: [this.id] });
      if (answer.failed && answer.failed.includes(this.id)) {
        this.view.message(`Job ${this.id} was not cancelled: ${answer.errors[this.id]}`, 'error');
      }
      this.view.upsert(await get(`jobs/${encodeURIComponent(this.id)}`));
    } catch (err) {
      this.view.message(`Cancel failed: ${err.message}`, 'error');
    } finally {
      setText(button, 'Cancel');
      button.disabled = false;
    }
  }

  loadLogSoon() {
    if (this.logTimer) return;
    this.logTimer = setTimeout(() => {
      this.logTimer = null;
      this.loadLog();
    }, 1000);
  }

  async loadLog() {
    const list = this.el.logLines;
    list.setAttribute('aria-busy', 'true');
    try {
      const answer = await get(`jobs/logs/${encodeURIComponent(this.id)}?format=json&limit=500`);
      clear(list);
      for (const line of answer.logs || []) {
        const level = String(line.level || 'info').toLowerCase();
        list.append(h('li', { class: `level-${level}` },
          h('time', { datetime: line.timestamp, class: 'num', title: fmt.dateTime(line.timestamp) }, fmt.time(line.timestamp)), ' ',
          h('span', { class: 'level' }, level.toUpperCase()), ' ',
          h('span', { class: 'log-message' }, line.message)));
      }
      if (!list.childElementCount) list.append(h('li', {}, 'No log lines yet.'));
    } catch (err) {
      clear(list);
      list.append(h('li', { class: 'level-error' }, `The log could not be read: ${err.message}`));
    } finally {
      list.removeAttribute('aria-busy');
    }
  }
}

export function createJobsView(section, ctx) {
  const rows = new Map();
  const filter = select('filter', ['all', 'active', 'finished'], 'all');
  filter.id = 'jobs-filter';
  const counter = h('span', { class: 'count', id: 'jobs-count' });
  const messageEl = h('p', { class: 'message', hidden: true });
  const tbl = table('Jobs, newest first', COLUMNS, 'jobs-table');
  const empty = h('p', { class: 'empty', hidden: true }, 'No jobs to show. Start one from the VMs view.');
  let loaded = false;

  section.append(
    h('div', { class: 'view-head' },
      h('h1', { id: 'jobs-title', tabindex: '-1' }, 'Jobs'),
      h('div', { class: 'toolbar' }, h('label', { for: filter.id }, 'Show'), filter, counter)),
    messageEl, tbl, empty);

  const view = {
    ctx,
    message(text, kind = 'info') {
      showMessage(messageEl, text, kind);
    },

    upsert(job, { quiet = false, refilter = true } = {}) {
      if (!job || !job.id) return;
      let row = rows.get(job.id);
      const isNew = !row;
      if (isNew) {
        row = new JobRow(job, view);
        rows.set(job.id, row);
      }
      const previous = row.update(job);
      if (isNew) {
        place(row);
        prune();
      }
      if (!quiet && previous !== job.status) {
        const name = described(job).name;
        ctx.announce(`Job ${name}: ${job.status}${job.error ? ` (${job.error})` : ''}`);
      }
      if (refilter) applyFilter();
    },

    // A whole list (the stream's first message, a poll): rows are added or updated, none removed.
    replace(list) {
      // Oldest first, so that each job lands above the ones created before or with it.
      for (const job of [...list].reverse()) view.upsert(job, { quiet: !loaded, refilter: false });
      loaded = true;
      applyFilter();
    },

    show() {
      if (!loaded) load();
    },
  };

  // Newest first: above the first row created at the same time or earlier.
  function place(row) {
    for (const other of tbl.tBodies) {
      const r = rows.get(other.dataset.jobId);
      if (r && r !== row && r.created <= row.created) {
        tbl.insertBefore(row.tbody, other);
        return;
      }
    }
    tbl.append(row.tbody);
  }

  function prune() {
    const bodies = [...tbl.tBodies];
    for (let i = bodies.length - 1; i >= 0 && rows.size > MAX_ROWS; i -= 1) {
      const row = rows.get(bodies[i].dataset.jobId);
      if (row && FINISHED.has(row.status)) {
        row.tbody.remove();
        rows.delete(row.id);
      }
    }
  }

  function applyFilter() {
    const wanted = filter.value;
    let shown = 0;
    for (const row of rows.values()) {
      const visible = wanted === 'all' || (wanted === 'active' ? ACTIVE.has(row.status) : FINISHED.has(row.status));
      row.tbody.hidden = !visible;
      if (visible) shown += 1;
    }
    setText(counter, `${shown} ${shown === 1 ? 'job' : 'jobs'}`);
    empty.hidden = shown > 0;
    tbl.hidden = shown === 0;
  }

  async function load() {
    tbl.setAttribute('aria-busy', 'true');
    try {
      const answer = await get('jobs/query?limit=100');
      view.replace(answer.jobs || []);
    } catch (err) {
      view.message(`Jobs could not be listed: ${err.message}`, 'error');
    } finally {
      tbl.removeAttribute('aria-busy');
    }
  }

  filter.addEventListener('change', applyFilter);
  applyFilter();
  return view;
}
