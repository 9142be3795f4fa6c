/**
 * Ties the API client, the events stream and the model together; both the
 * JupyterLab panel and the standalone page drive the views through this.
 */

import { JunoApi } from './api';
import { EventStream, SocketFactory, StreamStatus, Timers } from './events';
import { ClusterModel } from './model';

export interface ControllerOptions {
  api: JunoApi;
  /** Events websocket URL for a cluster address (null address: the server's choice). */
  eventsUrl: (address: string | null) => string;
  createSocket: SocketFactory;
  timers?: Timers;
}

export class DashboardController {
  readonly model = new ClusterModel();
  readonly api: JunoApi;
  readonly stream: EventStream;
  private readonly eventsUrl: (address: string | null) => string;

  constructor(options: ControllerOptions) {
    this.api = options.api;
    this.eventsUrl = options.eventsUrl;
    this.stream = new EventStream({
      createSocket: options.createSocket,
      timers: options.timers,
      onMessage: message => this.model.handleMessage(message),
      onStatus: (status, detail) => this.onStreamStatus(status, detail)
    });
  }

  /** Watch the cluster at `address` (null with `follow`: whatever the server serves). */
  watch(address: string | null, follow = false): void {
    this.api.address = address;
    this.model.setAddress(address);
    if (address === null && !follow) {
      this.stream.connect(null);
      this.model.setLink('idle', null);
      return;
    }
    const url = this.eventsUrl(address);
    if (url !== this.stream.currentUrl || this.stream.status === 'stopped') {
      this.model.setLink('connecting', null);
    }
    this.stream.connect(url);
  }

  /** The panel became visible/hidden: resume/pause server updates. */
  setVisible(visible: boolean): void {
    if (visible) {
      this.stream.resume();
    } else {
      this.stream.pause();
    }
  }

  dispose(): void {
    this.stream.stop();
  }

  private onStreamStatus(status: StreamStatus, detail: string | null): void {
    // 'connecting' is set by watch(); a reconnect keeps "Reconnecting…" and its reason
    // until the server says hello.
    if (status === 'waiting') {
      this.model.setLink('offline', detail);
    }
  }
}
