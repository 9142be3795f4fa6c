/** Placement groups with their bundles. */

import type { PlacementGroupInfo } from '../types';
import { h } from './dom';
import { formatResource, shortId } from './format';

function bundleText(bundle: PlacementGroupInfo['bundles'][number]): string {
  const res = Object.entries(bundle.resources || {})
    .map(([name, value]) => `${name} ${formatResource(name, value)}`)
    .join(', ');
  return `#${bundle.index} {${res}}${bundle.node_id ? ` on ${shortId(bundle.node_id)}` : ''}`;
}

export function renderPlacementGroups(container: HTMLElement, groups: PlacementGroupInfo[] | undefined): void {
  if (!groups) {
    container.replaceChildren(h('div', { class: 'juno-empty' }, 'Waiting for data…'));
    return;
  }
  if (groups.length === 0) {
    container.replaceChildren(h('div', { class: 'juno-empty' }, 'No placement groups.'));
    return;
  }
  container.replaceChildren(
    ...groups.map(pg =>
      h(
        'div',
        { class: 'juno-pg', 'data-juno': 'pg-row', 'data-pg-id': pg.placement_group_id },
        h(
          'div',
          { class: 'juno-pg-head' },
          h(
            'span',
            { class: 'juno-actor-name', title: pg.placement_group_id },
            pg.name || shortId(pg.placement_group_id)
          ),
          h('span', { class: 'juno-muted' }, pg.strategy),
          h('span', { class: `juno-badge juno-state-${pg.state}` }, pg.state)
        ),
        h('div', { class: 'juno-muted juno-mono' }, (pg.bundles || []).map(bundleText).join('  '))
      )
    )
  );
}
