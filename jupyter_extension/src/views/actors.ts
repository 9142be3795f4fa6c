/**
 * Actors with a two-click kill: the first click turns the button into
 * "Confirm" for a few seconds, the second kills. No browser dialogs.
 */

import type { JunoApi } from '../api';
import type { ActorInfo } from '../types';
import { h } from './dom';
import { shortId } from './format';

const CONFIRM_MS = 5000;

export interface ActorsViewOptions {
  api: JunoApi;
  /** Show this actor's log (the log viewer selects it). */
  onShowLogs?: (actorId: string) => void;
}

export class ActorsView {
  readonly node: HTMLElement;
  private readonly list: HTMLElement;
  private readonly message: HTMLElement;
  private actors: ActorInfo[] | undefined;
  private confirming: string | null = null;
  private confirmTimer: ReturnType<typeof setTimeout> | null = null;
  private killing = new Set<string>();

  constructor(private readonly options: ActorsViewOptions) {
    this.list = h('div', { class: 'juno-actors' });
    this.message = h('div', { class: 'juno-error', 'data-juno': 'actor-error', hidden: true });
    this.node = h('div', {}, this.message, this.list);
  }

  update(actors: ActorInfo[] | undefined): void {
    this.actors = actors;
    for (const id of [...this.killing]) {
      const actor = actors?.find(a => a.actor_id === id);
      if (!actor || actor.state === 'DEAD') {
        this.killing.delete(id);
      }
    }
    this.render();
  }

  dispose(): void {
    this.clearConfirm();
  }

  private render(): void {
    const actors = this.actors;
    if (!actors) {
      this.list.replaceChildren(h('div', { class: 'juno-empty' }, 'Waiting for data…'));
      return;
    }
    if (actors.length === 0) {
      this.list.replaceChildren(h('div', { class: 'juno-empty' }, 'No actors.'));
      return;
    }
    const sorted = [...actors].sort((a, b) => Number(a.state === 'DEAD') - Number(b.state === 'DEAD'));
    this.list.replaceChildren(...sorted.map(actor => this.row(actor)));
  }

  private row(actor: ActorInfo): HTMLElement {
    const dead = actor.state === 'DEAD';
    const label = actor.name ? `${actor.class_name} "${actor.name}"` : actor.class_name;
    let button: HTMLElement | null = null;
    if (!dead) {
      const confirming = this.confirming === actor.actor_id;
      const busy = this.killing.has(actor.actor_id);
      button = h(
        'button',
        {
          class: 'juno-button juno-kill' + (confirming ? ' juno-confirm' : ''),
          'data-juno': 'kill-actor',
          type: 'button',
          disabled: busy,
          title: confirming ? 'Click again to kill this actor' : 'Kill this actor (asks to confirm)',
          onclick: () => this.onKillClick(actor.actor_id)
        },
        busy ? 'Killing…' : confirming ? 'Confirm' : 'Kill'
      );
    }
    const logs = this.options.onShowLogs
      ? h(
          'button',
          {
            class: 'juno-button juno-link',
            'data-juno': 'show-logs',
            type: 'button',
            title: 'Show this actor’s log',
            onclick: () => this.options.onShowLogs?.(actor.actor_id)
          },
          'Logs'
        )
      : null;
    const restarts = actor.num_restarts ? ` · restarts ${actor.num_restarts}/${actor.max_restarts}` : '';
    return h(
      'div',
      { class: `juno-actor ${dead ? 'juno-dead' : ''}`, 'data-juno': 'actor-row', 'data-actor-id': actor.actor_id },
      h(
        'div',
        { class: 'juno-actor-main' },
        h('span', { class: 'juno-actor-name', title: actor.actor_id }, label),
        h(
          'span',
          { class: 'juno-muted juno-mono' },
          `${shortId(actor.actor_id)}${actor.pid ? ` · pid ${actor.pid}` : ''}${restarts}`
        ),
        dead && actor.death_cause
          ? h('span', { class: 'juno-muted juno-detail', title: actor.death_cause }, actor.death_cause)
          : null
      ),
      h('span', { class: `juno-badge juno-state-${actor.state}`, 'data-juno': 'actor-state' }, actor.state),
      logs,
      button
    );
  }

  private onKillClick(actorId: string): void {
    if (this.killing.has(actorId)) {
      return;
    }
    if (this.confirming !== actorId) {
      this.clearConfirm();
      this.confirming = actorId;
      this.confirmTimer = setTimeout(() => {
        this.confirming = null;
        this.confirmTimer = null;
        this.render();
      }, CONFIRM_MS);
      this.render();
      return;
    }
    this.clearConfirm();
    this.killing.add(actorId);
    this.showError(null);
    this.render();
    this.options.api.killActor(actorId).then(
      () => {
        // The row turns DEAD with the next update; keep "Killing…" until then.
      },
      (err: Error) => {
        this.killing.delete(actorId);
        this.showError(`Could not kill actor ${shortId(actorId)}: ${err.message}`);
        this.render();
      }
    );
  }

  private clearConfirm(): void {
    if (this.confirmTimer !== null) {
      clearTimeout(this.confirmTimer);
      this.confirmTimer = null;
    }
    this.confirming = null;
  }

  private showError(text: string | null): void {
    this.message.textContent = text ?? '';
    this.message.hidden = text === null;
  }
}
