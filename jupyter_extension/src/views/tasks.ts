/** Task counts by state, the throughput sparkline, running and failed tasks. */

import type { RatePoint } from '../throughput';
import type { TaskInfo, TasksPayload } from '../types';
import { h, svg } from './dom';
import { formatClock, formatDuration, formatRate, shortId, shortTaskId } from './format';

/** Always shown, 0 included, in this order; other states follow when present. */
export const ALWAYS_SHOWN_STATES = ['RUNNING', 'PENDING_NODE_ASSIGNMENT', 'FINISHED', 'FAILED'];

const STATE_LABELS: Record<string, string> = {
  PENDING_NODE_ASSIGNMENT: 'pending',
  PENDING_ARGS_AVAIL: 'waiting args',
  RUNNING: 'running',
  FINISHED: 'finished',
  FAILED: 'failed'
};

/**
 * The count cells. ``totals`` (the cumulative finished/failed counts) replace the
 * FINISHED and FAILED counts of the kept task records, which stop growing once the
 * GCS drops its oldest records.
 */
export function renderTaskCounts(
  container: HTMLElement,
  byState: Record<string, number> | undefined,
  totals?: { finished_total?: number; failed_total?: number }
): void {
  const counts: Record<string, number> = { ...(byState || {}) };
  if (typeof totals?.finished_total === 'number') {
    counts.FINISHED = Math.max(counts.FINISHED ?? 0, totals.finished_total);
  }
  if (typeof totals?.failed_total === 'number') {
    counts.FAILED = Math.max(counts.FAILED ?? 0, totals.failed_total);
  }
  const extra = Object.keys(counts)
    .filter(state => !ALWAYS_SHOWN_STATES.includes(state))
    .sort();
  const cells = [...ALWAYS_SHOWN_STATES, ...extra].map(state =>
    h(
      'div',
      { class: `juno-count juno-state-${state}`, title: state },
      h(
        'span',
        { class: 'juno-count-value', 'data-juno': 'task-count', 'data-state': state },
        String(counts[state] ?? 0)
      ),
      h('span', { class: 'juno-count-label' }, STATE_LABELS[state] ?? state.toLowerCase().replace(/_/g, ' '))
    )
  );
  container.replaceChildren(...cells);
}

const CHART_W = 240;
const CHART_H = 48;

/** SVG sparkline of finished tasks/s over the window ending at the newest point. */
export function renderThroughput(container: HTMLElement, points: RatePoint[], windowSeconds: number): void {
  const current = points.length ? points[points.length - 1].rate : 0;
  const peak = points.reduce((max, p) => Math.max(max, p.rate), 0);
  const scale = Math.max(1, peak);
  const end = points.length ? points[points.length - 1].time : 0;
  // Until a full window of points exists, the points span the chart's width.
  const span = points.length > 1 ? Math.min(windowSeconds, end - points[0].time) : windowSeconds;
  const coords = points.map(p => {
    const x = CHART_W - ((end - p.time) / span) * CHART_W;
    const y = CHART_H - 2 - (p.rate / scale) * (CHART_H - 4);
    return `${x.toFixed(1)},${y.toFixed(1)}`;
  });
  const chart = svg(
    'svg',
    {
      class: 'juno-sparkline',
      'data-juno': 'throughput-chart',
      'data-points': String(points.length),
      'data-rate': current.toFixed(3),
      viewBox: `0 0 ${CHART_W} ${CHART_H}`,
      preserveAspectRatio: 'none',
      role: 'img',
      'aria-label': `Finished tasks per second, last ${Math.round(windowSeconds / 60)} minutes`
    },
    svg('line', { x1: 0, y1: CHART_H - 1, x2: CHART_W, y2: CHART_H - 1, class: 'juno-axis' }),
    coords.length > 1
      ? svg('polygon', {
          points: `${coords[0].split(',')[0]},${CHART_H - 1} ${coords.join(' ')} ${CHART_W},${CHART_H - 1}`,
          class: 'juno-area'
        })
      : null,
    coords.length > 1 ? svg('polyline', { points: coords.join(' '), class: 'juno-line', fill: 'none' }) : null
  );
  container.replaceChildren(
    h(
      'div',
      { class: 'juno-chart-head' },
      h('span', {}, 'Throughput'),
      h('span', { class: 'juno-muted' }, `${formatRate(current)} tasks/s (peak ${formatRate(peak)})`)
    ),
    chart
  );
}

function taskRow(task: TaskInfo, now: number): HTMLElement {
  const started = task.start_time ?? task.creation_time;
  const detail =
    task.state === 'FAILED'
      ? `${task.error_type ?? 'error'}: ${task.error_message ?? ''}`
      : started
        ? `running ${formatDuration(now - started)}`
        : task.state;
  return h(
    'tr',
    { 'data-juno': 'task-row', 'data-task-id': task.task_id, 'data-state': task.state },
    h('td', { title: task.func_or_class_name }, task.name || task.func_or_class_name),
    h('td', { class: 'juno-mono', title: task.task_id }, shortTaskId(task.task_id)),
    h('td', { class: 'juno-mono', title: task.node_id ?? '' }, shortId(task.node_id)),
    h('td', { class: 'juno-detail', title: detail }, detail),
    h('td', { class: 'juno-muted' }, formatClock(task.end_time ?? started))
  );
}

export function renderTaskList(container: HTMLElement, tasks: TaskInfo[] | undefined, now: number, max = 25): void {
  if (!tasks || tasks.length === 0) {
    container.replaceChildren(h('div', { class: 'juno-empty' }, 'None.'));
    return;
  }
  const shown = tasks.slice(0, max);
  const table = h(
    'table',
    { class: 'juno-table' },
    h(
      'thead',
      {},
      h('tr', {}, h('th', {}, 'name'), h('th', {}, 'task'), h('th', {}, 'node'), h('th', {}, ''), h('th', {}, 'time'))
    ),
    h('tbody', {}, ...shown.map(task => taskRow(task, now)))
  );
  const more = tasks.length > max ? [h('div', { class: 'juno-muted' }, `…and ${tasks.length - max} more`)] : [];
  container.replaceChildren(table, ...more);
}

export function renderTasks(
  parts: { running: HTMLElement; failed: HTMLElement },
  tasks: TasksPayload | undefined,
  now: number
): void {
  renderTaskList(parts.running, tasks?.running, now);
  renderTaskList(parts.failed, tasks?.failed, now);
}
