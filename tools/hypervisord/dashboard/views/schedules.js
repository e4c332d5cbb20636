// The schedules view: the daemon's schedules (GET /schedules) with enable, disable and run-now
// buttons, and a form that creates one (POST /schedules) while it previews the cron expression's
// next runs (GET /schedules/preview).

import { get, post, query } from '../api.js';
import * as fmt from '../format.js';
import { cell, clear, field, h, select, setText, showMessage, table } from '../dom.js';

const FALLBACK_FORMATS = ['ova', 'ovf', 'qcow2', 'raw', 'vmdk', 'vhd', 'vhdx', 'vdi'];
const PREVIEW_DELAY_MS = 300;
const COLUMNS = [
  { label: 'Name', class: 'col-name' },
  { label: 'Schedule', class: 'col-cron' },
  { label: 'VM', class: 'col-vm' },
  { label: 'Next run', class: 'col-time' },
  { label: 'Last run', class: 'col-time' },
  { label: 'State', class: 'col-state' },
  { label: 'Actions', class: 'col-actions wide' },
];

function scheduleVm(s) {
  const t = s.job_template && typeof s.job_template === 'object' ? s.job_template : {};
  if (t.vm_path || t.vm) return t.vm_path || t.vm;
  if (s.kind === 'backup_policy') return 'backup policy';
  return '—';
}

function createForm(ctx, onCreated) {
  const caps = ctx.capabilities() || {};
  const formats = Array.isArray(caps.formats) && caps.formats.length ? caps.formats : FALLBACK_FORMATS;
  const name = h('input', { name: 'name', id: 'schedule-name', required: true, autocomplete: 'off' });
  const cron = h('input', { name: 'schedule', id: 'schedule-cron', required: true, autocomplete: 'off', spellcheck: 'false', value: '0 2 * * *' });
  const vmPath = h('input', { name: 'vm_path', id: 'schedule-vm', required: true, list: 'schedule-vm-list', spellcheck: 'false' });
  const vmList = h('datalist', { id: 'schedule-vm-list' });
  const outputDir = h('input', { name: 'output_dir', id: 'schedule-output', spellcheck: 'false' });
  const format = select('format', ['', ...formats], '');
  format.id = 'schedule-format';
  format.options[0].textContent = 'daemon default';
  const previewList = h('ol', { class: 'preview-runs' });
  const previewError = h('p', { class: 'preview-error', hidden: true });
  const preview = h('div', { class: 'preview', id: 'schedule-preview', 'aria-live': 'polite' },
    h('h2', {}, 'Next runs'), previewList, previewError);
  const message = h('p', { class: 'message', hidden: true });
  const submit = h('button', { type: 'submit' }, 'Create schedule');

  const form = h('form', { class: 'card schedule-form', id: 'schedule-form', 'aria-labelledby': 'schedule-form-title' },
    h('h2', { id: 'schedule-form-title' }, 'New schedule'),
    h('div', { class: 'form-grid' },
      h('div', { class: 'fields' },
        field('Name', name),
        field('Schedule', cron, 'cron in the daemon\'s local time: 0 2 * * 0, @daily, @every 6h'),
        field('VM path', vmPath, 'inventory path, e.g. /DC0/vm/web01'),
        vmList,
        field('Output directory', outputDir, 'empty: <export.base_path>/<name>'),
        field('Format', format)),
      preview),
    h('div', { class: 'actions' }, submit), message);

  let previewTimer = null;
  let previewSeq = 0;
  async function updatePreview() {
    const seq = ++previewSeq;
    const text = cron.value.trim();
    if (!text) {
      clear(previewList);
      previewError.hidden = true;
      return;
    }
    try {
      const answer = await get(`schedules/preview${query({ schedule: text, count: 5 })}`);
      if (seq !== previewSeq) return;
      clear(previewList);
      for (const run of answer.next_runs || []) previewList.append(h('li', {}, h('time', { datetime: run, class: 'num' }, fmt.dateTime(run))));
      if (!previewList.childElementCount) previewList.append(h('li', {}, 'never'));
      previewError.hidden = true;
      cron.removeAttribute('aria-invalid');
    } catch (err) {
      if (seq !== previewSeq) return;
      clear(previewList);
      setText(previewError, err.message);
      previewError.hidden = false;
      cron.setAttribute('aria-invalid', 'true');
    }
  }
  cron.addEventListener('input', () => {
    clearTimeout(previewTimer);
    previewTimer = setTimeout(updatePreview, PREVIEW_DELAY_MS);
  });

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    submit.disabled = true;
    const template = { name: name.value.trim(), vm_path: vmPath.value.trim() };
    if (outputDir.value.trim()) template.output_dir = outputDir.value.trim();
    if (format.value) template.format = format.value;
    try {
      const created = await post('schedules', { name: name.value.trim(), schedule: cron.value.trim(), enabled: true, job_template: template });
      showMessage(message, `Schedule ${created.name} created; next run ${fmt.dateTime(created.next_run)}.`, 'ok');
      name.value = '';
      onCreated(created);
    } catch (err) {
      showMessage(message, `Not created: ${err.message}`, 'error');
    } finally {
      submit.disabled = false;
    }
  });

  async function loadVmChoices() {
    try {
      const vms = await post('vms/list', { provider: 'vsphere' });
      clear(vmList);
      for (const vm of Array.isArray(vms) ? vms : []) if (vm.path) vmList.append(h('option', { value: vm.path }));
    } catch {
      // the list only helps typing; a path can be typed without it
    }
  }
  return { form, updatePreview, loadVmChoices };
}

export function createSchedulesView(section, ctx) {
  const message = h('p', { class: 'message', hidden: true });
  const tbl = table('Schedules', COLUMNS, 'schedules-table');
  const body = h('tbody');
  tbl.append(body);
  const empty = h('p', { class: 'empty', hidden: true }, 'No schedules yet.');
  const refresh = h('button', { type: 'button', class: 'secondary' }, 'Refresh');
  const creator = createForm(ctx, () => load());
  let firstShow = true;

  section.append(
    h('div', { class: 'view-head' }, h('h1', { id: 'schedules-title', tabindex: '-1' }, 'Schedules'),
      h('div', { class: 'toolbar' }, refresh)),
    message, tbl, empty);
  if (ctx.canOperate()) section.append(creator.form);

  function row(s) {
    const toggle = h('button', { type: 'button', class: 'small secondary' }, s.enabled ? 'Disable' : 'Enable');
    toggle.setAttribute('aria-label', `${s.enabled ? 'Disable' : 'Enable'} schedule ${s.name}`);
    const trigger = h('button', { type: 'button', class: 'small', 'aria-label': `Run schedule ${s.name} now` }, 'Run now');
    toggle.hidden = trigger.hidden = !ctx.canOperate();
    const id = encodeURIComponent(s.id);
    toggle.addEventListener('click', async () => {
      toggle.disabled = true;
      try {
        const updated = await post(`schedules/${id}/${s.enabled ? 'disable' : 'enable'}`);
        tr.replaceWith(row(updated));
        ctx.announce(`Schedule ${s.name} ${updated.enabled ? 'enabled' : 'disabled'}`);
      } catch (err) {
        showMessage(message, `Schedule ${s.name} not changed: ${err.message}`, 'error');
        toggle.disabled = false;
      }
    });
    trigger.addEventListener('click', async () => {
      trigger.disabled = true;
      try {
        const answer = await post(`schedules/${id}/trigger`);
        const ids = answer.job_ids || [answer.job_id];
        showMessage(message, `Schedule ${s.name} started ${ids.length === 1 ? `job ${ids[0]}` : `${ids.length} jobs`}.`, 'ok',
          { href: '#jobs', text: 'Follow it in Jobs' });
      } catch (err) {
        showMessage(message, `Schedule ${s.name} not started: ${err.message}`, 'error');
      } finally {
        trigger.disabled = false;
      }
    });
    const tr = h('tr', { dataset: { scheduleId: s.id } },
      cell('Name', [h('strong', {}, s.name || s.id), s.kind && s.kind !== 'export' ? h('small', {}, s.kind) : null], 'col-name'),
      cell('Schedule', h('code', {}, s.schedule || '—'), 'col-cron'),
      cell('VM', h('span', { class: 'path' }, scheduleVm(s)), 'col-vm'),
      cell('Next run', s.enabled ? fmt.dateTime(s.next_run) : '—', 'col-time num'),
      cell('Last run', fmt.dateTime(s.last_run), 'col-time num'),
      cell('State', h('span', { class: `badge ${s.enabled ? 'state-enabled' : 'state-disabled'}` }, s.enabled ? 'enabled' : 'disabled'), 'col-state'),
      cell('Actions', h('div', { class: 'buttons' }, toggle, trigger), 'col-actions'));
    return tr;
  }

  async function load() {
    tbl.setAttribute('aria-busy', 'true');
    try {
      const list = await get('schedules');
      clear(body);
      for (const s of Array.isArray(list) ? list : []) body.append(row(s));
      empty.hidden = body.childElementCount > 0;
      tbl.hidden = body.childElementCount === 0;
    } catch (err) {
      showMessage(message, `Schedules could not be listed: ${err.message}`, 'error');
    } finally {
      tbl.removeAttribute('aria-busy');
    }
  }

  refresh.addEventListener('click', load);
  return {
    show() {
      load();
      if (firstShow) {
        firstShow = false;
        creator.updatePreview();
        creator.loadVmChoices();
      }
    },
  };
}
