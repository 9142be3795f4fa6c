/**
 * Log viewer: pick an actor or a worker, see the tail of its log, refresh on
 * demand (nothing polls: logs are fetched only when asked for).
 */

import type { JunoApi } from '../api';
import type { ActorInfo, WorkerInfo } from '../types';
import { h } from './dom';
import { shortId } from './format';

export type LogSource = { kind: 'actor' | 'worker'; id: string };

export function sourceValue(source: LogSource): string {
  return `${source.kind}:${source.id}`;
}

export function parseSourceValue(value: string): LogSource | null {
  const match = /^(actor|worker):([0-9a-fA-F]+)$/.exec(value);
  return match ? { kind: match[1] as 'actor' | 'worker', id: match[2] } : null;
}

const TAIL_LINES = 200;

export class LogView {
  readonly node: HTMLElement;
  private readonly select: HTMLSelectElement;
  private readonly output: HTMLPreElement;
  private readonly status: HTMLElement;
  private actors: ActorInfo[] = [];
  private workers: WorkerInfo[] = [];
  private request = 0;
  private optionsKey = '';

  constructor(private readonly api: JunoApi) {
    this.select = h('select', {
      class: 'juno-select',
      'data-juno': 'log-source',
      'aria-label': 'Log source',
      onchange: () => void this.refresh()
    });
    this.output = h('pre', { class: 'juno-log', 'data-juno': 'log-view' });
    this.status = h('div', { class: 'juno-muted juno-detail', 'data-juno': 'log-status' });
    const refresh = h(
      'button',
      {
        class: 'juno-button',
        type: 'button',
        'data-juno': 'log-refresh',
        title: 'Fetch the latest lines (and the worker list)',
        onclick: () => {
          void this.loadWorkers();
          void this.refresh();
        }
      },
      'Refresh'
    );
    this.node = h(
      'div',
      { class: 'juno-logs' },
      h('div', { class: 'juno-row' }, this.select, refresh),
      this.status,
      this.output
    );
    this.renderOptions();
  }

  /** Live actor list from the model. */
  setActors(actors: ActorInfo[] | undefined): void {
    this.actors = actors ?? [];
    this.renderOptions();
  }

  /** Fetch the worker list (on demand: when the section opens or on refresh). */
  async loadWorkers(): Promise<void> {
    try {
      const payload = await this.api.workers();
      this.workers = payload.workers ?? [];
      this.renderOptions();
    } catch (err) {
      this.status.textContent = `Workers unavailable: ${(err as Error).message}`;
    }
  }

  /** Select a source and show its log. */
  show(source: LogSource): void {
    const value = sourceValue(source);
    if (![...this.select.options].some(o => o.value === value)) {
      this.select.appendChild(h('option', { value }, `${source.kind} ${shortId(source.id)}`));
    }
    this.select.value = value;
    void this.refresh();
  }

  async refresh(): Promise<void> {
    const source = parseSourceValue(this.select.value);
    if (!source) {
      this.output.textContent = '';
      this.status.textContent = 'Pick an actor or a worker.';
      return;
    }
    const request = ++this.request;
    this.status.textContent = 'Loading…';
    try {
      const payload = await this.api.logs(source, TAIL_LINES);
      if (request !== this.request) {
        return;
      }
      this.output.textContent = payload.lines.join('\n');
      this.output.dataset.source = sourceValue(source);
      this.output.scrollTop = this.output.scrollHeight;
      const where = payload.source?.path ? ` · ${payload.source.path}` : '';
      this.status.textContent = `${payload.lines.length} lines${payload.truncated ? ' (tail)' : ''}${where}`;
      this.status.title = payload.source?.path ?? '';
    } catch (err) {
      if (request !== this.request) {
        return;
      }
      this.output.textContent = '';
      this.status.textContent = (err as Error).message;
    }
  }

  private renderOptions(): void {
    // Rebuilding the <select> while it is open closes it: only rebuild on change.
    const key = JSON.stringify([
      this.actors.map(a => [a.actor_id, a.state, a.name]),
      this.workers.map(w => [w.worker_id, w.is_alive])
    ]);
    if (key === this.optionsKey) {
      return;
    }
    this.optionsKey = key;
    const current = this.select.value;
    const options: HTMLElement[] = [h('option', { value: '' }, '— choose a log —')];
    if (this.actors.length) {
      options.push(
        h(
          'optgroup',
          { label: 'Actors' },
          ...this.actors.map(a =>
            h(
              'option',
              { value: sourceValue({ kind: 'actor', id: a.actor_id }) },
              `${a.class_name}${a.name ? ` "${a.name}"` : ''} ${shortId(a.actor_id)} (${a.state})`
            )
          )
        )
      );
    }
    if (this.workers.length) {
      options.push(
        h(
          'optgroup',
          { label: 'Workers' },
          ...this.workers.map(w =>
            h(
              'option',
              { value: sourceValue({ kind: 'worker', id: w.worker_id }) },
              `${w.worker_type} pid ${w.pid} ${shortId(w.worker_id)}${w.is_alive ? '' : ' (exited)'}`
            )
          )
        )
      );
    }
    this.select.replaceChildren(...options);
    if (current && ![...this.select.options].some(o => o.value === current)) {
      const source = parseSourceValue(current);
      if (source) {
        this.select.appendChild(h('option', { value: current }, `${source.kind} ${shortId(source.id)}`));
      }
    }
    this.select.value = current;
  }
}
