/**
 * The client-side cluster state: the latest payload of every state route,
 * merged from websocket updates that carry only the keys that changed.
 */

import { ThroughputTracker } from './throughput';
import type { ClusterEvent, ServerMessage, UpdateData, UpdateKey } from './types';
import { UPDATE_KEYS } from './types';

/** What the panel shows about the live link to the cluster. */
export type LinkState =
  | 'idle' // no cluster chosen yet
  | 'connecting' // socket opening (first time or after a drop)
  | 'connected' // hello received and the cluster answers
  | 'unreachable' // the server says the cluster can't be reached
  | 'unauthorized' // the server refused our credentials (401/403)
  | 'offline'; // the socket to the server is down, retrying

/** Keys a change notification can name: the update keys plus the link/meta state. */
export type ChangeKey = UpdateKey | 'link' | 'events' | 'throughput';

export type ChangeListener = (changed: ReadonlySet<ChangeKey>) => void;

const MAX_EVENTS = 50;

export class ClusterModel {
  data: UpdateData = {};
  link: LinkState = 'idle';
  /** Address announced by the server (hello) or chosen by the user. */
  address: string | null = null;
  /** Last error text (cluster unreachable, socket down), null when healthy. */
  error: string | null = null;
  /** Update interval the server announced, seconds. */
  interval = 1;
  seq = -1;
  events: ClusterEvent[] = [];
  readonly throughput: ThroughputTracker;
  private listeners = new Set<ChangeListener>();

  constructor(throughputWindowSeconds = 120) {
    this.throughput = new ThroughputTracker(throughputWindowSeconds);
  }

  subscribe(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Merge an update: every key present replaces the previous payload of that
   * key, absent keys keep theirs. Returns the keys that changed.
   */
  applyUpdate(data: UpdateData, seq?: number): Set<ChangeKey> {
    const changed = new Set<ChangeKey>();
    for (const key of UPDATE_KEYS) {
      if (data[key] !== undefined) {
        (this.data as Record<string, unknown>)[key] = data[key];
        changed.add(key);
      }
    }
    if (seq !== undefined) {
      this.seq = seq;
    }
    const summary = data.summary;
    if (summary && summary.tasks && typeof summary.tasks.finished_total === 'number') {
      this.throughput.add(summary.time, summary.tasks.finished_total);
      changed.add('throughput');
    }
    if (this.link !== 'connected' || this.error !== null) {
      this.link = 'connected';
      this.error = null;
      changed.add('link');
    }
    this.emit(changed);
    return changed;
  }

  /** Handle one server message of the events websocket. */
  handleMessage(message: ServerMessage): void {
    switch (message.type) {
      case 'hello':
        if (message.address && message.address !== this.address) {
          this.setAddress(message.address);
        }
        this.interval = message.interval || this.interval;
        this.setLink('connected', null);
        break;
      case 'update':
        this.applyUpdate(message.data || {}, message.seq);
        break;
      case 'event':
        this.events = [message.event, ...this.events].slice(0, MAX_EVENTS);
        this.emit(new Set<ChangeKey>(['events']));
        break;
      case 'error':
        this.setLink('unreachable', message.error);
        break;
      default:
        break;
    }
  }

  /** A different cluster: drop everything shown about the previous one. */
  setAddress(address: string | null): void {
    if (address === this.address) {
      return;
    }
    this.address = address;
    this.data = {};
    this.seq = -1;
    this.events = [];
    this.throughput.reset();
    this.emit(new Set<ChangeKey>([...UPDATE_KEYS, 'link', 'events', 'throughput']));
  }

  setLink(link: LinkState, error: string | null): void {
    if (link === this.link && error === this.error) {
      return;
    }
    this.link = link;
    this.error = error;
    this.emit(new Set<ChangeKey>(['link']));
  }

  private emit(changed: Set<ChangeKey>): void {
    if (changed.size === 0) {
      return;
    }
    for (const listener of [...this.listeners]) {
      try {
        listener(changed);
      } catch (err) {
        console.error('juno: a view failed to render', err);
      }
    }
  }
}
