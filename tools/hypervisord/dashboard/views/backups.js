// The backups view: the points of every VM in a repository folder (POST /v1/ops/backup.list?wait=true)
// and, per point, a form that restores it into disk files (POST /v1/ops/backup.restore).

import { post } from '../api.js';
import * as fmt from '../format.js';
import { cell, clear, field, h, select, showMessage, table, uid } from '../dom.js';

const RESTORE_FORMATS = ['qcow2', 'raw', 'vmdk', 'vhd', 'vhdx', 'vdi'];
const COLUMNS = [
  { label: 'Point', class: 'col-point' },
  { label: 'Created', class: 'col-time' },
  { label: 'Kind', class: 'col-kind' },
  { label: 'Disks', class: 'col-num' },
  { label: 'Size', class: 'col-num' },
  { label: 'Actions', class: 'col-actions' },
];

function vmName(entry) {
  const vm = entry.vm && typeof entry.vm === 'object' ? entry.vm : {};
  return vm.name || vm.id || entry.folder;
}

function restoreForm(repo, entry, point, ctx) {
  const status = ctx.status() || {};
  const format = select('format', RESTORE_FORMATS, 'qcow2');
  const base = status.export_path ? `${status.export_path.replace(/\/+$/, '')}/restore/${entry.folder}` : '';
  const outputDir = h('input', { name: 'output_dir', required: true, spellcheck: 'false', value: base });
  const overwrite = h('input', { type: 'checkbox', name: 'overwrite' });
  const submit = h('button', { type: 'submit' }, 'Restore');
  const message = h('p', { class: 'message', hidden: true });
  const form = h('form', { class: 'restore-form', 'aria-label': `Restore point ${point.id} of ${vmName(entry)}` },
    h('div', { class: 'fields' },
      field('Format', format),
      field('Output directory', outputDir, 'on the daemon\'s machine; created if missing'),
      field('Replace existing files', overwrite)),
    h('div', { class: 'actions' }, submit), message);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    submit.disabled = true;
    try {
      const job = await post('v1/ops/backup.restore', {
        repo, vm: entry.folder, point: point.id, format: format.value, output_dir: outputDir.value.trim(), overwrite: overwrite.checked,
      });
      showMessage(message, `Restore job ${job.id} submitted.`, 'ok', { href: '#jobs', text: 'Follow it in Jobs' });
    } catch (err) {
      showMessage(message, `Not started: ${err.message}`, 'error');
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

export function createBackupsView(section, ctx) {
  const status = ctx.status() || {};
  const repo = h('input', { name: 'repo', id: 'backups-repo', required: true, spellcheck: 'false',
    value: status.export_path ? `${status.export_path.replace(/\/+$/, '')}/backups` : '' });
  const submit = h('button', { type: 'submit' }, 'List points');
  const message = h('p', { class: 'message', hidden: true });
  const results = h('div', { class: 'backup-results', id: 'backup-results' });
  const form = h('form', { class: 'toolbar repo-form', id: 'backups-form' },
    field('Repository folder', repo), submit);

  section.append(
    h('div', { class: 'view-head' }, h('h1', { id: 'backups-title', tabindex: '-1' }, 'Backups')),
    form, message, results);

  function pointRow(repoPath, entry, point) {
    const formCell = h('td', { colspan: String(COLUMNS.length) });
    const formRow = h('tr', { class: 'restore-row', hidden: true, id: uid('restore') }, formCell);
    const toggle = h('button', {
      type: 'button', class: 'small', 'aria-expanded': 'false', 'aria-controls': formRow.id,
      'aria-label': `Restore point ${point.id} of ${vmName(entry)}`,
    }, 'Restore…');
    toggle.hidden = !ctx.canOperate();
    toggle.addEventListener('click', () => {
      const open = formRow.hidden;
      if (open && !formCell.firstChild) formCell.append(restoreForm(repoPath, entry, point, ctx));
      formRow.hidden = !open;
      toggle.setAttribute('aria-expanded', String(open));
      if (open) formCell.querySelector('select, input').focus();
    });
    const disks = Array.isArray(point.disks) ? point.disks : [];
    return h('tbody', { class: 'point', dataset: { pointId: point.id } },
      h('tr', {},
        cell('Point', h('code', { title: point.id }, point.id), 'col-point'),
        cell('Created', fmt.dateTime(point.created), 'col-time num'),
        cell('Kind', point.kind || '—', 'col-kind'),
        cell('Disks', String(disks.length), 'col-num num'),
        cell('Size', fmt.bytes(point.file_bytes), 'col-num num'),
        cell('Actions', toggle, 'col-actions')),
      formRow);
  }

  async function list(event) {
    if (event) event.preventDefault();
    const repoPath = repo.value.trim();
    if (!repoPath) return;
    submit.disabled = true;
    results.setAttribute('aria-busy', 'true');
    message.hidden = true;
    try {
      const job = await post('v1/ops/backup.list?wait=true', { repo: repoPath });
      clear(results);
      if (job.status !== 'completed') {
        showMessage(message, `The repository could not be listed: ${job.error || job.status}`, 'error');
        return;
      }
      const vms = (job.result && job.result.vms) || [];
      if (!vms.length) showMessage(message, 'The repository holds no points yet.', 'info');
      for (const entry of vms) {
        const headingId = uid('vmhead');
        const points = entry.points || [];
        const summary = `${points.length} ${points.length === 1 ? 'point' : 'points'} · folder ${entry.folder}`;
        const tbl = table(`Points of ${vmName(entry)}`, COLUMNS, 'points-table');
        for (const point of [...points].reverse()) tbl.append(pointRow(repoPath, entry, point));
        results.append(h('section', { class: 'backup-vm', 'aria-labelledby': headingId, dataset: { folder: entry.folder } },
          h('h2', { id: headingId }, vmName(entry), ' ', h('small', {}, summary)),
          tbl));
      }
    } catch (err) {
      clear(results);
      showMessage(message, `The repository could not be listed: ${err.message}`, 'error');
    } finally {
      submit.disabled = false;
      results.removeAttribute('aria-busy');
    }
  }

  form.addEventListener('submit', list);
  return {
    show() {},
  };
}
