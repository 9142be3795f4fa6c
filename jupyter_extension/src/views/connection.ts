/**
 * The connection header: link status and cluster address. In JupyterLab the
 * address is editable (PUT /juno/api/connection) and a local cluster can be
 * started; the standalone page shows the address it is served for.
 */

import type { ClusterModel } from '../model';
import { h } from './dom';

export interface ConnectionActions {
  /** Choose an address; null goes back to auto-detection. */
  setAddress(address: string | null): Promise<void>;
  startLocalCluster(): Promise<void>;
}

const LINK_TEXT: Record<string, string> = {
  idle: 'No cluster',
  connecting: 'Connecting…',
  connected: 'Connected',
  unreachable: 'Cluster unreachable',
  unauthorized: 'Not authorised',
  offline: 'Reconnecting…'
};

let headerCount = 0;

export class ConnectionHeader {
  readonly node: HTMLElement;
  private readonly status: HTMLElement;
  private readonly address: HTMLElement;
  private readonly detail: HTMLElement;
  private readonly editor: HTMLFormElement | null = null;
  private readonly input: HTMLInputElement | null = null;
  private readonly candidates: HTMLDataListElement;
  private source: string | null = null;
  private hint: string | null = null;

  constructor(
    private readonly model: ClusterModel,
    private readonly actions: ConnectionActions | null
  ) {
    this.status = h('span', { class: 'juno-status', 'data-juno': 'connection-status', role: 'status' });
    this.address = h('span', { class: 'juno-address juno-mono', 'data-juno': 'address' });
    this.detail = h('div', { class: 'juno-muted juno-detail', 'data-juno': 'connection-detail' });
    this.candidates = h('datalist', { id: `juno-candidates-${++headerCount}` });
    const line = h('div', { class: 'juno-row' }, this.status, this.address);
    let controls: HTMLElement | null = null;
    if (actions) {
      this.input = h('input', {
        class: 'juno-input',
        'data-juno': 'address-input',
        placeholder: 'host:port',
        'aria-label': 'Cluster address',
        spellcheck: 'false',
        list: this.candidates.id
      });
      this.editor = h(
        'form',
        { class: 'juno-row juno-editor', hidden: true, onsubmit: (ev: Event) => this.onSubmit(ev) },
        this.input,
        h('button', { class: 'juno-button', type: 'submit' }, 'Connect'),
        h(
          'button',
          {
            class: 'juno-button',
            type: 'button',
            title: 'Detect the address again',
            onclick: () => this.run(() => actions.setAddress(null))
          },
          'Auto'
        ),
        h('button', { class: 'juno-button', type: 'button', onclick: () => this.toggleEditor(false) }, 'Cancel')
      );
      controls = h(
        'div',
        { class: 'juno-row' },
        h(
          'button',
          { class: 'juno-button', type: 'button', 'data-juno': 'edit-address', onclick: () => this.toggleEditor(true) },
          'Change…'
        ),
        h(
          'button',
          {
            class: 'juno-button',
            type: 'button',
            'data-juno': 'start-cluster',
            title: 'juno start --head on this machine',
            onclick: () => this.run(() => actions.startLocalCluster())
          },
          'Start local cluster'
        )
      );
      line.appendChild(controls);
    }
    this.node = h('div', { class: 'juno-connection' }, line, this.editor, this.detail, this.candidates);
    model.subscribe(changed => {
      if (changed.has('link')) {
        this.render();
      }
    });
    this.render();
  }

  /** Where the address came from ("kernel", "user", ...) and any server note. */
  setSource(source: string | null, hint: string | null): void {
    this.source = source;
    this.hint = hint;
    this.render();
  }

  /** Addresses the server found (offered while typing an address). */
  setCandidates(addresses: string[]): void {
    this.candidates.replaceChildren(...[...new Set(addresses)].map(address => h('option', { value: address })));
  }

  render(): void {
    const link = this.model.link;
    this.status.textContent = LINK_TEXT[link] ?? link;
    this.status.className = `juno-status juno-link-${link}`;
    this.node.dataset.link = link;
    this.address.textContent = this.model.address ?? '';
    this.address.title = this.source ? `address from: ${this.source}` : '';
    const detail = this.model.error ?? this.hint;
    this.detail.textContent = detail ?? '';
    this.detail.hidden = !detail;
  }

  private toggleEditor(open: boolean): void {
    if (!this.editor || !this.input) {
      return;
    }
    this.editor.hidden = !open;
    if (open) {
      this.input.value = this.model.address ?? '';
      this.input.focus();
    }
  }

  private onSubmit(ev: Event): void {
    ev.preventDefault();
    const value = this.input?.value.trim() ?? '';
    if (!this.actions) {
      return;
    }
    const actions = this.actions;
    this.run(() => actions.setAddress(value || null));
  }

  private run(action: () => Promise<void>): void {
    this.hint = 'Working…';
    this.render();
    action().then(
      () => {
        this.hint = null;
        this.toggleEditor(false);
        this.render();
      },
      (err: Error) => {
        this.hint = err.message;
        this.render();
      }
    );
  }
}
