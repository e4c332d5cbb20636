// The VMs view: the VMs of a configured provider (POST /vms/list) with, per VM, a form that starts
// an export (POST /jobs/submit) or a changed-block backup into a repository folder
// (POST /v1/ops/backup.run).

import { post } from '../api.js';
import * as fmt from '../format.js';
import { cell, field, h, select, setText, showMessage, table, uid } from '../dom.js';

const FALLBACK_FORMATS = ['ova', 'ovf', 'qcow2', 'raw', 'vmdk', 'vhd', 'vhdx', 'vdi'];
const COLUMNS = [
  { label: 'Name', class: 'col-name' },
  { label: 'Power', class: 'col-power' },
  { label: 'CPUs', class: 'col-num' },
  { label: 'Memory', class: 'col-num' },
  { label: 'Guest OS', class: 'col-os' },
  { label: 'Storage', class: 'col-num' },
  { label: 'Actions', class: 'col-actions' },
];
const POWER = { poweredOn: 'on', poweredOff: 'off', suspended: 'suspended', running: 'on', stopped: 'off' };

function joinPath(dir, leaf) {
  return dir ? `${dir.replace(/\/+$/, '')}/${leaf}` : '';
}

function exportForm(vm, provider, ctx) {
  const caps = ctx.capabilities() || {};
  const status = ctx.status() || {};
  const formats = Array.isArray(caps.formats) && caps.formats.length ? caps.formats : FALLBACK_FORMATS;
  const formId = uid('vmform');

  const kindExport = h('input', { type: 'radio', name: 'kind', value: 'export', checked: true, id: `${formId}-export` });
  const kindBackup = h('input', { type: 'radio', name: 'kind', value: 'backup', id: `${formId}-backup` });
  const format = select('format', ['', ...formats], '');
  format.options[0].textContent = 'daemon default';
  const outputDir = h('input', { name: 'output_dir', required: true, spellcheck: 'false', value: joinPath(status.export_path, vm.name) });
  const compress = h('input', { type: 'checkbox', name: 'compress' });
  const repo = h('input', { name: 'repo', spellcheck: 'false', value: joinPath(status.export_path, 'backups') });
  const submit = h('button', { type: 'submit' }, 'Start export');
  const message = h('p', { class: 'message', hidden: true });

  const exportFields = h('div', { class: 'fields' },
    field('Format', format),
    field('Output directory', outputDir, 'on the daemon\'s machine; created if missing'),
    field('Compress', compress));
  const backupFields = h('div', { class: 'fields', hidden: true },
    field('Repository folder', repo, 'changed blocks since the last point of this VM go here (created if missing)'));

  const form = h('form', { class: 'vm-form', 'aria-label': `Export or back up ${vm.name}` },
    h('fieldset', { class: 'kind' }, h('legend', {}, 'Job'),
      h('label', { for: kindExport.id }, kindExport, ' Export'),
      h('label', { for: kindBackup.id }, kindBackup, ' CBT backup')),
    exportFields, backupFields,
    h('div', { class: 'actions' }, submit), message);

  function syncKind() {
    const backup = kindBackup.checked;
    exportFields.hidden = backup;
    backupFields.hidden = !backup;
    outputDir.required = !backup;
    repo.required = backup;
    setText(submit, backup ? 'Start backup' : 'Start export');
  }
  kindExport.addEventListener('change', syncKind);
  kindBackup.addEventListener('change', syncKind);

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    submit.disabled = true;
    try {
      if (kindBackup.checked) {
        const job = await post('v1/ops/backup.run', { provider, vm: vm.path, repo: repo.value.trim() });
        showMessage(message, `Backup job ${job.id} submitted.`, 'ok', { href: '#jobs', text: 'Follow it in Jobs' });
      } else {
        const definition = { name: vm.name, vm_path: vm.path, provider, output_dir: outputDir.value.trim(), compress: compress.checked };
        if (format.value) definition.format = format.value;
        const answer = await post('jobs/submit', definition);
        showMessage(message, `Export job ${answer.job_id} submitted.`, 'ok', { href: '#jobs', text: 'Follow it in Jobs' });
      }
    } catch (err) {
      showMessage(message, `Not started: ${err.message}`, 'error');
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

export function createVmsView(section, ctx) {
  const caps = ctx.capabilities() || {};
  const providers = Array.isArray(caps.providers) && caps.providers.length ? caps.providers : ['vsphere'];
  const provider = select('provider', providers, providers.includes('vsphere') ? 'vsphere' : providers[0]);
  provider.id = 'vms-provider';
  const refresh = h('button', { type: 'button', class: 'secondary' }, 'Refresh');
  const message = h('p', { class: 'message', hidden: true });
  const tbl = table('Virtual machines', COLUMNS, 'vms-table');
  tbl.hidden = true;
  let loadedFor = null;

  section.append(
    h('div', { class: 'view-head' },
      h('h1', { id: 'vms-title', tabindex: '-1' }, 'VMs'),
      h('div', { class: 'toolbar' }, h('label', { for: provider.id }, 'Provider'), provider, refresh)),
    message, tbl);

  function vmRow(vm, providerName) {
    const formCell = h('td', { colspan: String(COLUMNS.length) });
    const formRow = h('tr', { class: 'vm-form-row', hidden: true, id: uid('vmrow') }, formCell);
    const toggle = h('button', {
      type: 'button', class: 'small', 'aria-expanded': 'false', 'aria-controls': formRow.id,
      'aria-label': `Export or back up ${vm.name}`,
    }, 'Export…');
    toggle.hidden = !ctx.canOperate();
    toggle.addEventListener('click', () => {
      const open = formRow.hidden;
      if (open && !formCell.firstChild) formCell.append(exportForm(vm, providerName, ctx));
      formRow.hidden = !open;
      toggle.setAttribute('aria-expanded', String(open));
      if (open) formCell.querySelector('input, select').focus();
    });
    const main = h('tr', {},
      cell('Name', [h('strong', {}, vm.name || vm.id || '—'), h('small', { class: 'path' }, vm.path || '')], 'col-name'),
      cell('Power', h('span', { class: `badge power-${POWER[vm.power_state] || 'other'}` }, POWER[vm.power_state] || vm.power_state || '—'), 'col-power'),
      cell('CPUs', fmt.count(vm.num_cpu), 'col-num num'),
      cell('Memory', vm.memory_mb ? fmt.bytes(vm.memory_mb * 1048576) : '—', 'col-num num'),
      cell('Guest OS', vm.guest_os || '—', 'col-os'),
      cell('Storage', fmt.bytes(vm.storage_bytes), 'col-num num'),
      cell('Actions', toggle, 'col-actions'));
    return h('tbody', { class: 'vm', dataset: { vmPath: vm.path || '' } }, main, formRow);
  }

  async function load() {
    const name = provider.value;
    loadedFor = name;
    message.hidden = true;
    tbl.setAttribute('aria-busy', 'true');
    refresh.disabled = true;
    try {
      const vms = await post('vms/list', { provider: name });
      for (const body of [...tbl.tBodies]) body.remove();
      const list = Array.isArray(vms) ? vms : vms.vms || [];
      list.sort((a, b) => String(a.path || a.name).localeCompare(String(b.path || b.name)));
      for (const vm of list) tbl.append(vmRow(vm, name));
      tbl.hidden = list.length === 0;
      if (!list.length) showMessage(message, `The provider ${name} has no VMs.`, 'info');
    } catch (err) {
      loadedFor = null;
      for (const body of [...tbl.tBodies]) body.remove();
      tbl.hidden = true;
      showMessage(message, `VMs of ${name} could not be listed: ${err.message}`, 'error');
    } finally {
      tbl.removeAttribute('aria-busy');
      refresh.disabled = false;
    }
  }

  provider.addEventListener('change', load);
  refresh.addEventListener('click', load);
  return {
    show() {
      if (loadedFor !== provider.value) load();
    },
  };
}
