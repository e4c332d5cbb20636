// Numbers in human units: sizes in binary units (KiB, MiB, GiB), rates in MB/s, durations as
// h:mm:ss, times in the reader's locale. Missing values show as an em dash.

const NONE = '—';
const BINARY_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

function isNumber(v) {
  return v !== null && v !== undefined && v !== '' && Number.isFinite(Number(v));
}

export function bytes(n) {
  if (!isNumber(n)) return NONE;
  let v = Number(n);
  let unit = 0;
  while (v >= 1024 && unit < BINARY_UNITS.length - 1) {
    v /= 1024;
    unit += 1;
  }
  if (unit === 0) return `${v} B`;
  return `${v.toFixed(v < 10 ? 2 : 1)} ${BINARY_UNITS[unit]}`;
}

// Bytes per second as decimal megabytes per second, as the daemon's transfer_rate_mbps.
export function rate(bytesPerSecond) {
  if (!isNumber(bytesPerSecond) || Number(bytesPerSecond) <= 0) return NONE;
  const mb = Number(bytesPerSecond) / 1e6;
  return `${mb.toFixed(mb < 10 ? 2 : 1)} MB/s`;
}

export function duration(seconds) {
  if (!isNumber(seconds) || Number(seconds) < 0) return NONE;
  const total = Math.round(Number(seconds));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  return `${h}:${pad(m)}:${pad(s)}`;
}

export function percent(p) {
  const v = isNumber(p) ? Math.min(100, Math.max(0, Number(p))) : 0;
  return `${v.toFixed(1)}%`;
}

function pad(n) {
  return String(n).padStart(2, '0');
}

function parsed(iso) {
  if (!iso) return null;
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? null : d;
}

// Local time as 2026-12-08 04:30:00: compact, sortable, the same width in every row.
export function dateTime(iso) {
  const d = parsed(iso);
  if (!d) return iso ? String(iso) : NONE;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time(iso)}`;
}

export function time(iso) {
  const d = parsed(iso);
  if (!d) return iso ? String(iso) : NONE;
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function count(n) {
  return isNumber(n) ? String(Number(n)) : NONE;
}

export function basename(path) {
  const s = String(path || '');
  return s.slice(s.lastIndexOf('/') + 1) || s;
}
