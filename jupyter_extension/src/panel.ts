/**
 * The JupyterLab sidebar widget: the shared dashboard plus kernel-aware
 * connection handling (GET/PUT /juno/api/connection).
 */

import { Widget } from '@lumino/widgets';
import type { Message } from '@lumino/messaging';

import { JunoApiError } from './api';
import type { DashboardController } from './controller';
import type { ConnectionInfo } from './types';
import { ConnectionHeader } from './views/connection';
import { DashboardView } from './views/dashboard';

/** While no cluster is known, ask the server again this often (panel visible only). */
const NO_CLUSTER_RECHECK_MS = 10000;
/** After a cell ran, wait this long (coalescing runs) before asking again. */
const REDETECT_DELAY_MS = 2000;

export class JunoPanel extends Widget {
  readonly controller: DashboardController;
  private readonly header: ConnectionHeader;
  private readonly view: DashboardView;
  private kernelId: string | null = null;
  private recheckTimer: ReturnType<typeof setTimeout> | null = null;
  private detecting = 0;
  private stale = false;
  private detectTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(controller: DashboardController) {
    super();
    this.id = 'juno-sidebar';
    this.addClass('juno-panel');
    this.title.caption = 'Juno';
    this.controller = controller;
    this.header = new ConnectionHeader(controller.model, {
      setAddress: address => this.putConnection(address),
      startLocalCluster: () => this.startLocalCluster()
    });
    this.view = new DashboardView(controller, this.header.node);
    this.node.appendChild(this.view.node);
    // Hidden until the sidebar shows it: the server sends no updates meanwhile.
    controller.setVisible(false);
  }

  /** The current cluster address (null when none is known). */
  get address(): string | null {
    return this.controller.model.address;
  }

  /** The active notebook's kernel changed: detect its cluster again. */
  setKernel(kernelId: string | null): void {
    if (kernelId === this.kernelId) {
      return;
    }
    this.kernelId = kernelId;
    void this.detect();
  }

  /** Ask the server which cluster to show (kernel's cluster preferred). */
  async detect(): Promise<void> {
    const request = ++this.detecting;
    try {
      const info = await this.controller.api.getConnection(this.kernelId);
      if (request === this.detecting) {
        this.applyConnection(info);
      }
    } catch (err) {
      if (request === this.detecting) {
        const status = err instanceof JunoApiError ? err.status : -1;
        this.header.setSource(
          null,
          status === 404
            ? 'The Juno server extension is not enabled in this Jupyter server: ' +
                'run `jupyter server extension enable juno.jupyter_extension` and restart it.'
            : `Cannot ask the Jupyter server for the Juno connection: ${(err as Error).message}`
        );
        this.scheduleRecheck();
      }
    }
  }

  /**
   * A cell ran (it may have called juno.init()): detect again, at most every few
   * seconds, and only while the panel is shown (else when it is shown next).
   */
  requestDetect(): void {
    if (!this.isVisible) {
      this.stale = true;
      return;
    }
    if (this.detectTimer !== null) {
      return;
    }
    this.detectTimer = setTimeout(() => {
      this.detectTimer = null;
      void this.detect();
    }, REDETECT_DELAY_MS);
  }

  async putConnection(address: string | null): Promise<void> {
    const info = await this.controller.api.setConnection(address);
    this.applyConnection(info);
  }

  async startLocalCluster(): Promise<void> {
    this.header.setSource(null, 'Starting a local cluster (juno start --head)…');
    const info = await this.controller.api.startLocalCluster();
    this.applyConnection(info);
  }

  applyConnection(info: ConnectionInfo): void {
    this.clearRecheck();
    this.header.setCandidates(info.candidates?.map(c => c.address) ?? []);
    if (info.address) {
      this.controller.watch(info.address);
      this.header.setSource(info.source, info.connected ? null : info.error);
    } else {
      this.controller.watch(null);
      this.header.setSource(
        null,
        info.error ??
          'No Juno cluster found: run juno.init() in a notebook, start a local cluster, or enter an address.'
      );
      this.scheduleRecheck();
    }
  }

  dispose(): void {
    this.clearRecheck();
    if (this.detectTimer !== null) {
      clearTimeout(this.detectTimer);
    }
    this.view.dispose();
    this.controller.dispose();
    super.dispose();
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    // A panel restored as the open one is attached visible, without an after-show.
    if (this.isVisible) {
      this.controller.setVisible(true);
    }
  }

  protected onBeforeDetach(msg: Message): void {
    this.controller.setVisible(false);
    super.onBeforeDetach(msg);
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.controller.setVisible(true);
    if (this.address === null || this.stale) {
      this.stale = false;
      void this.detect();
    }
  }

  protected onBeforeHide(msg: Message): void {
    super.onBeforeHide(msg);
    this.controller.setVisible(false);
  }

  private scheduleRecheck(): void {
    this.clearRecheck();
    this.recheckTimer = setTimeout(() => {
      this.recheckTimer = null;
      if (this.isVisible && this.address === null) {
        void this.detect();
      }
    }, NO_CLUSTER_RECHECK_MS);
  }

  private clearRecheck(): void {
    if (this.recheckTimer !== null) {
      clearTimeout(this.recheckTimer);
      this.recheckTimer = null;
    }
  }
}
