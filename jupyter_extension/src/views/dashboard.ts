/**
 * The whole dashboard (shared by the JupyterLab panel and the standalone
 * page): sections that re-render only when their part of the model changed.
 */

import type { DashboardController } from '../controller';
import type { ChangeKey } from '../model';
import type { Summary } from '../types';
import { ActorsView } from './actors';
import { h } from './dom';
import { LibrariesView } from './libraries';
import { LogView } from './logs';
import { renderNodes } from './nodes';
import { renderPlacementGroups } from './placement';
import { renderTaskCounts, renderTasks, renderThroughput } from './tasks';

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function summaryText(s: Summary): string {
  const dead = s.nodes.dead ? `, ${s.nodes.dead} dead` : '';
  return `${plural(s.nodes.alive, 'node')} alive${dead} · ${plural(s.jobs.running, 'job')} running · Juno ${s.version}`;
}

function section(title: string, name: string, body: HTMLElement, open = true): HTMLDetailsElement {
  const details = h('details', { class: 'juno-section', 'data-section': name }, h('summary', {}, title), body);
  details.open = open;
  return details;
}

export class DashboardView {
  readonly node: HTMLElement;
  private readonly unsubscribe: () => void;
  private readonly nodes = h('div', { class: 'juno-nodes' });
  private readonly counts = h('div', { class: 'juno-counts' });
  private readonly chart = h('div', { class: 'juno-chart' });
  private readonly running = h('div', { 'data-juno': 'running-tasks' });
  private readonly failed = h('div', { 'data-juno': 'failed-tasks' });
  private readonly groups = h('div', { class: 'juno-pgs' });
  private readonly events = h('ul', { class: 'juno-events' });
  private readonly actors: ActorsView;
  private readonly libraries = new LibrariesView();
  private readonly logs: LogView;
  private readonly summaryLine = h('div', { class: 'juno-muted', 'data-juno': 'summary' });

  constructor(
    private readonly controller: DashboardController,
    header: HTMLElement
  ) {
    const api = controller.api;
    this.logs = new LogView(api);
    this.actors = new ActorsView({
      api,
      onShowLogs: actorId => {
        logSection.open = true;
        this.logs.show({ kind: 'actor', id: actorId });
        logSection.scrollIntoView({ block: 'nearest' });
      }
    });
    const logSection = section('Logs', 'logs', this.logs.node, false);
    logSection.addEventListener('toggle', () => {
      if (logSection.open) {
        void this.logs.loadWorkers();
      }
    });
    this.node = h(
      'div',
      { class: 'juno-dashboard' },
      header,
      this.summaryLine,
      section('Nodes', 'nodes', this.nodes),
      section('Tasks', 'tasks', h('div', {}, this.counts, this.chart)),
      section('Running tasks', 'running', this.running, false),
      section('Failed tasks', 'failed', this.failed, false),
      section('Actors', 'actors', this.actors.node),
      section('Libraries', 'libraries', this.libraries.node),
      section('Placement groups', 'placement-groups', this.groups, false),
      logSection,
      section('Events', 'events', this.events, false)
    );
    this.unsubscribe = controller.model.subscribe(changed => this.render(changed));
    this.render(
      new Set<ChangeKey>([
        'summary',
        'nodes',
        'tasks',
        'actors',
        'library_runs',
        'placement_groups',
        'throughput',
        'events'
      ])
    );
  }

  dispose(): void {
    this.unsubscribe();
    this.actors.dispose();
  }

  private render(changed: ReadonlySet<ChangeKey>): void {
    const model = this.controller.model;
    const data = model.data;
    if (changed.has('summary')) {
      this.summaryLine.textContent = data.summary ? summaryText(data.summary) : '';
    }
    if (changed.has('nodes')) {
      renderNodes(this.nodes, data.nodes?.nodes);
    }
    if (changed.has('tasks') || changed.has('summary')) {
      const tasks = data.tasks ?? data.summary?.tasks;
      renderTaskCounts(this.counts, tasks?.by_state, tasks);
    }
    if (changed.has('tasks')) {
      renderTasks({ running: this.running, failed: this.failed }, data.tasks, data.summary?.time ?? Date.now() / 1000);
    }
    if (changed.has('throughput')) {
      renderThroughput(this.chart, model.throughput.series(), model.throughput.windowSeconds);
    }
    if (changed.has('actors')) {
      this.actors.update(data.actors?.actors);
      this.logs.setActors(data.actors?.actors);
    }
    if (changed.has('library_runs')) {
      this.libraries.update(data.library_runs?.runs);
    }
    if (changed.has('placement_groups')) {
      renderPlacementGroups(this.groups, data.placement_groups?.placement_groups);
    }
    if (changed.has('events')) {
      this.events.replaceChildren(
        ...model.events.map(ev =>
          h(
            'li',
            { 'data-kind': ev.kind },
            h('span', { class: 'juno-muted' }, new Date(ev.time * 1000).toLocaleTimeString()),
            ' ',
            ev.message
          )
        )
      );
    }
  }
}
