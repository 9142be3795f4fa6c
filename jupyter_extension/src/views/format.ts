/** Number, byte, id and time formatting shared by the views. */

export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) {
    return '?';
  }
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = Math.abs(bytes);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const text = unit === 0 ? String(Math.round(value)) : value.toFixed(value < 10 ? 1 : 0);
  return `${bytes < 0 ? '-' : ''}${text} ${units[unit]}`;
}

export function formatQuantity(value: number): string {
  if (!Number.isFinite(value)) {
    return '?';
  }
  return Number.isInteger(value) ? String(value) : value.toFixed(value < 10 ? 2 : 1).replace(/\.?0+$/, '');
}

/** Resources measured in bytes are shown as sizes, the rest as counts. */
export function isByteResource(name: string): boolean {
  return name === 'memory' || name === 'object_store' || name === 'object_store_memory';
}

export function formatResource(name: string, value: number): string {
  return isByteResource(name) ? formatBytes(value) : formatQuantity(value);
}

export function shortId(id: string | null | undefined, length = 8): string {
  return id ? id.slice(0, length) : '—';
}

/**
 * Task ids of one job share a long prefix and end in zero padding; their
 * distinguishing digits are the last ones before the padding.
 */
export function shortTaskId(id: string | null | undefined, length = 8): string {
  if (!id) {
    return '—';
  }
  const trimmed = id.replace(/0+$/, '');
  return (trimmed.length >= length ? trimmed : id).slice(-length);
}

/** "3s", "4m 10s", "2h 5m". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) {
    return '—';
  }
  if (seconds < 60) {
    return `${Math.floor(seconds)}s`;
  }
  if (seconds < 3600) {
    return `${Math.floor(seconds / 60)}m ${Math.floor(seconds % 60)}s`;
  }
  return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m`;
}

export function formatClock(unixSeconds: number | null | undefined): string {
  if (!unixSeconds) {
    return '—';
  }
  return new Date(unixSeconds * 1000).toLocaleTimeString();
}

export function formatRate(rate: number): string {
  return rate >= 10 ? rate.toFixed(0) : rate.toFixed(1);
}
