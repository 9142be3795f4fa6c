/** Nodes with live resource bars (CPU, GPU, memory, custom resources, object store). */

import type { NodeInfo, UsedTotal } from '../types';
import { h } from './dom';
import { formatResource, shortId } from './format';

const RESOURCE_ORDER = ['CPU', 'GPU', 'memory'];

/** One usage bar; `data-used`/`data-total` carry the raw numbers. */
export function usageBar(resource: string, usage: UsedTotal, label = resource): HTMLElement {
  const used = Number(usage.used) || 0;
  const total = Number(usage.total) || 0;
  const fraction = total > 0 ? Math.min(1, Math.max(0, used / total)) : 0;
  const fill = h('div', { class: 'juno-bar-fill' + (fraction > 0.9 ? ' juno-bar-high' : '') });
  fill.style.width = `${(fraction * 100).toFixed(1)}%`;
  return h(
    'div',
    {
      class: 'juno-bar',
      'data-juno': 'bar',
      'data-resource': resource,
      'data-used': String(used),
      'data-total': String(total),
      title: `${label}: ${formatResource(resource, used)} of ${formatResource(resource, total)} used`
    },
    h('span', { class: 'juno-bar-label' }, label),
    h('div', { class: 'juno-bar-track' }, fill),
    h('span', { class: 'juno-bar-value' }, `${formatResource(resource, used)} / ${formatResource(resource, total)}`)
  );
}

function orderedResources(resources: Record<string, UsedTotal>): string[] {
  const names = Object.keys(resources);
  const known = RESOURCE_ORDER.filter(name => names.includes(name));
  const custom = names
    .filter(name => !RESOURCE_ORDER.includes(name) && !name.startsWith('node:') && name !== 'object_store_memory')
    .sort();
  return [...known, ...custom];
}

export function nodeRow(node: NodeInfo): HTMLElement {
  const resources = node.resources || {};
  const bars = orderedResources(resources).map(name => usageBar(name, resources[name]));
  if (node.object_store) {
    bars.push(usageBar('object_store', node.object_store, 'objects'));
  }
  const title = `${node.hostname || node.ip}${node.is_head ? ' (head)' : ''}`;
  return h(
    'div',
    {
      class: `juno-node ${node.alive ? 'juno-alive' : 'juno-dead'}`,
      'data-juno': 'node-row',
      'data-node-id': node.node_id,
      'data-state': node.state
    },
    h(
      'div',
      { class: 'juno-node-head' },
      h('span', { class: 'juno-node-name', title: node.node_id }, title),
      h('span', { class: 'juno-muted juno-mono' }, shortId(node.node_id)),
      h('span', { class: `juno-badge juno-state-${node.state}` }, node.state),
      node.gpu_ids && node.gpu_ids.length ? h('span', { class: 'juno-muted' }, `GPUs ${node.gpu_ids.join(',')}`) : null
    ),
    h('div', { class: 'juno-muted juno-detail', title: node.address || node.ip }, node.address || node.ip),
    node.alive
      ? h('div', { class: 'juno-bars' }, ...bars)
      : h('div', { class: 'juno-muted' }, node.death_reason || 'dead')
  );
}

export function renderNodes(container: HTMLElement, nodes: NodeInfo[] | undefined): void {
  if (!nodes) {
    container.replaceChildren(h('div', { class: 'juno-empty' }, 'Waiting for data…'));
    return;
  }
  if (nodes.length === 0) {
    container.replaceChildren(h('div', { class: 'juno-empty' }, 'No nodes.'));
    return;
  }
  container.replaceChildren(...nodes.map(nodeRow));
}
