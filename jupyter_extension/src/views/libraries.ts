/**
 * The "Libraries" section: one row per `juno.util.progress` run (a Data
 * pipeline, a Train run ...) with its kind, title, state, progress,
 * throughput and latest metrics, expandable to its table, fields and error. Rows the user opened
 * stay open across updates.
 */

import type { LibraryRunInfo } from '../types';
import { h } from './dom';
import { formatDuration, formatRate } from './format';

function count(value: number): string {
  return Number.isInteger(value) ? value.toLocaleString('en-US') : value.toPrecision(4);
}

/** "400/1,000 rows (40%)". */
export function runProgressText(run: LibraryRunInfo): string {
  const total = run.total === null || run.total === undefined ? '?' : count(run.total);
  const pct = run.total ? ` (${Math.min(100, ((run.done + run.failed) / run.total) * 100).toFixed(0)}%)` : '';
  const failed = run.failed ? `, ${count(run.failed)} failed` : '';
  return `${count(run.done)}/${total} ${run.unit}${pct}${failed}`;
}

export function runRateText(run: LibraryRunInfo): string {
  return run.rate ? `${formatRate(run.rate)} ${run.unit}/s` : '';
}

function cell(value: unknown): string {
  return value === null || value === undefined ? '' : typeof value === 'number' ? count(value) : String(value);
}

/** Fields a Train run sets about itself, not metrics (juno.widgets.metrics_view.FACT_FIELDS). */
const FACT_FIELDS = ['attempt', 'restarted after', 'checkpoints'];
const HEADLINE_METRICS = 3;

/**
 * The run's latest metrics in one short line, for its collapsed row:
 * "loss=0.1234  val_loss=0.2 · attempt 2". The loss-like ones first, else the
 * first fields, else the charts' last values; empty for runs without either.
 */
export function runMetricsText(run: LibraryRunInfo): string {
  const fields = Object.entries(run.fields || {}).filter(([k]) => !FACT_FIELDS.includes(k));
  const values = fields.length ? fields : Object.entries(run.series_last || {});
  const losses = values.filter(([k]) => k.toLowerCase().includes('loss'));
  const head = (losses.length ? losses : values).slice(0, HEADLINE_METRICS).map(([k, v]) => `${k}=${cell(v)}`);
  const attempt = run.fields?.attempt;
  return [head.join('  '), attempt === undefined ? '' : `attempt ${cell(attempt)}`].filter(Boolean).join(' · ');
}

function runDetail(run: LibraryRunInfo): HTMLElement {
  const parts: HTMLElement[] = [];
  const fields = Object.entries(run.fields || {}).map(([k, v]) => `${k}=${cell(v)}`);
  const last = Object.entries(run.series_last || {}).map(([k, v]) => `${k}=${cell(v)}`);
  if (fields.length || last.length) {
    parts.push(h('div', { class: 'juno-mono juno-muted' }, [...fields, ...last].join('  ')));
  }
  if (run.columns && run.columns.length) {
    parts.push(
      h(
        'table',
        { class: 'juno-table', 'data-juno': 'run-table' },
        h('thead', {}, h('tr', {}, ...run.columns.map(c => h('th', {}, c)))),
        h('tbody', {}, ...(run.rows || []).map(row => h('tr', {}, ...row.map(v => h('td', {}, cell(v))))))
      )
    );
    if (run.rows_dropped) {
      parts.push(h('div', { class: 'juno-muted' }, `${run.rows_dropped} more rows not shown`));
    }
  }
  if (run.error) {
    parts.push(h('pre', { class: 'juno-run-error' }, run.error));
  }
  parts.push(h('div', { class: 'juno-muted' }, `job ${run.job_id || '—'} · elapsed ${formatDuration(run.elapsed_s)}`));
  return h('div', { class: 'juno-run-detail' }, ...parts);
}

export class LibrariesView {
  readonly node = h('div', { class: 'juno-runs' });
  private readonly opened = new Set<string>();

  update(runs: LibraryRunInfo[] | undefined): void {
    if (!runs) {
      this.node.replaceChildren(h('div', { class: 'juno-empty' }, 'Waiting for data…'));
      return;
    }
    if (runs.length === 0) {
      this.node.replaceChildren(
        h('div', { class: 'juno-empty' }, 'No library runs yet (Data pipelines, Train runs … show here).')
      );
      return;
    }
    this.node.replaceChildren(...runs.map(run => this.row(run)));
  }

  private metrics(run: LibraryRunInfo): HTMLElement[] {
    const text = runMetricsText(run);
    return text ? [h('div', { class: 'juno-mono juno-muted', 'data-juno': 'run-metrics' }, text)] : [];
  }

  private row(run: LibraryRunInfo): HTMLElement {
    const frac = run.total ? Math.min(1, (run.done + run.failed) / run.total) : run.state === 'running' ? 0 : 1;
    const details = h(
      'details',
      { class: 'juno-run', 'data-juno': 'run-row', 'data-run-id': run.run_id, 'data-state': run.state },
      h(
        'summary',
        {},
        h('span', { class: 'juno-badge' }, run.kind),
        ' ',
        h('span', { class: 'juno-actor-name', title: run.title }, run.title || run.kind),
        ' ',
        h('span', { class: `juno-badge juno-state-${run.state.toUpperCase()}` }, run.state),
        h(
          'div',
          { class: 'juno-bar' },
          h('span', { class: 'juno-bar-label' }, runRateText(run)),
          h(
            'div',
            { class: 'juno-bar-track' },
            h('div', {
              class: `juno-bar-fill${run.state === 'failed' ? ' juno-bar-failed' : ''}`,
              style: `width:${(frac * 100).toFixed(1)}%`
            })
          ),
          h('span', { class: 'juno-bar-value' }, runProgressText(run))
        ),
        ...this.metrics(run)
      ),
      runDetail(run)
    );
    details.open = this.opened.has(run.run_id);
    details.addEventListener('toggle', () => {
      if (details.open) {
        this.opened.add(run.run_id);
      } else {
        this.opened.delete(run.run_id);
      }
    });
    return details;
  }
}
