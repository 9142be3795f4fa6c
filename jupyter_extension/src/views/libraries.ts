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

/** Trials per status, as a Tune experiment sets them (juno.widgets.tune_view.COUNT_FIELDS). */
const TUNE_COUNTS = ['running', 'pending', 'paused', 'terminated', 'error'];

/**
 * A Tune experiment's collapsed row: its best trial so far and its trials per
 * status, "best loss=0.1234 (a_00003) · 3 running, 10 terminated, 1 error".
 */
export function tuneSummaryText(run: LibraryRunInfo): string {
  const f = run.fields || {};
  const best =
    f.best === undefined || f.best === null
      ? ''
      : `best ${cell(f.metric)}=${cell(f.best)}` + (f['best trial'] ? ` (${cell(f['best trial'])})` : '');
  const counts = TUNE_COUNTS.filter(k => f[k])
    .map(k => `${cell(f[k])} ${k}`)
    .join(', ');
  return [best, counts].filter(Boolean).join(' · ');
}

/**
 * A Serve view's collapsed row (juno.widgets.serve_view.FIELDS): its route, status, replicas by
 * state, request rate and p99, "route / · RUNNING · 2 RUNNING, 1 STARTING · 12.5 req/s · p99 4.1 ms".
 */
export function serveSummaryText(run: LibraryRunInfo): string {
  const f = run.fields || {};
  const parts = [
    f.route ? `route ${cell(f.route)}` : '',
    cell(f.status),
    cell(f.replicas),
    f['req/s'] === undefined || f['req/s'] === null ? '' : `${cell(f['req/s'])} req/s`,
    f['p99 ms'] === undefined || f['p99 ms'] === null ? '' : `p99 ${cell(f['p99 ms'])} ms`,
    f.errors ? `${cell(f.errors)} errors` : ''
  ];
  return parts.filter(Boolean).join(' · ') || cell(f.note);
}

/**
 * The run's latest metrics in one short line, for its collapsed row:
 * "loss=0.1234  val_loss=0.2 · attempt 2". The loss-like ones first, else the
 * first fields, else the charts' last values; empty for runs without either.
 * A Tune experiment shows its best trial and counts instead (tuneSummaryText).
 */
export function runMetricsText(run: LibraryRunInfo): string {
  if (run.kind === 'tune') {
    return tuneSummaryText(run);
  }
  if (run.kind === 'serve') {
    return serveSummaryText(run);
  }
  const fields = Object.entries(run.fields || {}).filter(([k]) => !FACT_FIELDS.includes(k));
  const values = fields.length ? fields : Object.entries(run.series_last || {});
  const losses = values.filter(([k]) => k.toLowerCase().includes('loss'));
  const head = (losses.length ? losses : values).slice(0, HEADLINE_METRICS).map(([k, v]) => `${k}=${cell(v)}`);
  const attempt = run.fields?.attempt;
  return [head.join('  '), attempt === undefined ? '' : `attempt ${cell(attempt)}`].filter(Boolean).join(' · ');
}

/** Kinds whose table has a "status" column coloured by its value (Tune trials, Serve applications). */
const STATUS_TABLES = ['tune', 'serve'];

/** A table cell; a status is coloured by its state (PENDING ... ERROR, RUNNING ... DEPLOY_FAILED). */
function tableCell(value: unknown, isStatus: boolean): HTMLElement {
  if (!isStatus) {
    return h('td', {}, cell(value));
  }
  return h('td', {}, h('span', { class: `juno-state-${cell(value)}`, 'data-status': cell(value) }, cell(value)));
}

function runDetail(run: LibraryRunInfo): HTMLElement {
  const parts: HTMLElement[] = [];
  const fields = Object.entries(run.fields || {}).map(([k, v]) => `${k}=${cell(v)}`);
  const last = Object.entries(run.series_last || {}).map(([k, v]) => `${k}=${cell(v)}`);
  if (fields.length || last.length) {
    parts.push(h('div', { class: 'juno-mono juno-muted' }, [...fields, ...last].join('  ')));
  }
  if (run.columns && run.columns.length) {
    const status = STATUS_TABLES.includes(run.kind) ? run.columns.indexOf('status') : -1;
    parts.push(
      h(
        'table',
        { class: 'juno-table', 'data-juno': 'run-table' },
        h('thead', {}, h('tr', {}, ...run.columns.map(c => h('th', {}, c)))),
        h('tbody', {}, ...(run.rows || []).map(row => h('tr', {}, ...row.map((v, i) => tableCell(v, i === status)))))
      )
    );
    if (run.rows_dropped) {
      const what = run.kind === 'tune' ? 'trials' : 'rows';
      parts.push(h('div', { class: 'juno-muted' }, `${run.rows_dropped} more ${what} not shown`));
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

  /** The progress bar; none for a Serve view, which has no total to fill (it runs until Serve stops). */
  private bar(run: LibraryRunInfo): HTMLElement[] {
    if (run.kind === 'serve') {
      return [];
    }
    const frac = run.total ? Math.min(1, (run.done + run.failed) / run.total) : run.state === 'running' ? 0 : 1;
    return [
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
      )
    ];
  }

  private row(run: LibraryRunInfo): HTMLElement {
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
        ...this.bar(run),
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
