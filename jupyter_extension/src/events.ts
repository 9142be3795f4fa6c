/**
 * The websocket client of `/api/events`: reconnects with exponential backoff,
 * and tells the server to pause/resume updates as the panel is hidden/shown.
 * The socket constructor and timers are injected so the logic runs in tests
 * without a browser or a server.
 */

import type { ServerMessage } from './types';

/** The subset of the DOM WebSocket the stream uses. */
export interface SocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  onopen: ((ev: any) => void) | null;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  onmessage: ((ev: any) => void) | null;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  onclose: ((ev: any) => void) | null;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  onerror: ((ev: any) => void) | null;
}

export type SocketFactory = (url: string) => SocketLike;

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface Backoff {
  initialMs: number;
  maxMs: number;
  factor: number;
}

export const DEFAULT_BACKOFF: Backoff = { initialMs: 500, maxMs: 30000, factor: 2 };

export type StreamStatus = 'stopped' | 'connecting' | 'open' | 'waiting';

export interface EventStreamOptions {
  createSocket: SocketFactory;
  onMessage: (message: ServerMessage) => void;
  /** Called on every status change; `detail` says why the socket closed. */
  onStatus?: (status: StreamStatus, detail: string | null) => void;
  timers?: Timers;
  backoff?: Partial<Backoff>;
}

const OPEN = 1;

/** Delay before reconnect attempt `attempt` (0-based): initial * factor^attempt, capped. */
export function backoffDelay(attempt: number, backoff: Backoff = DEFAULT_BACKOFF): number {
  return Math.min(backoff.maxMs, backoff.initialMs * Math.pow(backoff.factor, attempt));
}

export class EventStream {
  private url: string | null = null;
  private socket: SocketLike | null = null;
  private retryHandle: unknown = null;
  private attempt = 0;
  private paused = false;
  private _status: StreamStatus = 'stopped';
  private readonly options: EventStreamOptions;
  private readonly timers: Timers;
  private readonly backoff: Backoff;

  constructor(options: EventStreamOptions) {
    this.options = options;
    this.timers = options.timers ?? {
      setTimeout: (fn, ms) => setTimeout(fn, ms),
      clearTimeout: handle => clearTimeout(handle as ReturnType<typeof setTimeout>)
    };
    this.backoff = { ...DEFAULT_BACKOFF, ...(options.backoff ?? {}) };
  }

  get status(): StreamStatus {
    return this._status;
  }

  /** The URL the stream is (re)connecting to; null when stopped. */
  get currentUrl(): string | null {
    return this.url;
  }

  get isPaused(): boolean {
    return this.paused;
  }

  /** The delay the next reconnect will wait, ms. */
  get nextDelayMs(): number {
    return backoffDelay(this.attempt, this.backoff);
  }

  /** Connect to `url` (closing any other socket); null stops the stream. */
  connect(url: string | null): void {
    if (url === this.url && this._status !== 'stopped') {
      return;
    }
    this.teardown();
    this.url = url;
    this.attempt = 0;
    if (url === null) {
      this.setStatus('stopped', null);
      return;
    }
    this.open();
  }

  /** Close for good (the panel was disposed). */
  stop(): void {
    this.teardown();
    this.url = null;
    this.setStatus('stopped', null);
  }

  /** The panel is hidden: ask the server to stop sending updates. */
  pause(): void {
    if (this.paused) {
      return;
    }
    this.paused = true;
    this.send({ type: 'pause' });
  }

  /** The panel is shown again: the server sends a full update, then changes. */
  resume(): void {
    if (!this.paused) {
      return;
    }
    this.paused = false;
    this.send({ type: 'resume' });
  }

  /** Reconnect now instead of waiting for the backoff (a user asked to retry). */
  retryNow(): void {
    if (this.url !== null && this._status === 'waiting') {
      this.clearRetry();
      this.open();
    }
  }

  private send(message: object): boolean {
    if (this.socket && this.socket.readyState === OPEN) {
      this.socket.send(JSON.stringify(message));
      return true;
    }
    return false;
  }

  private open(): void {
    const url = this.url;
    if (url === null) {
      return;
    }
    this.setStatus('connecting', null);
    let socket: SocketLike;
    try {
      socket = this.options.createSocket(url);
    } catch (err) {
      this.scheduleRetry(`cannot open ${url}: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    this.socket = socket;
    socket.onopen = () => {
      if (this.socket !== socket) {
        return;
      }
      this.attempt = 0;
      if (this.paused) {
        this.send({ type: 'pause' });
      }
      this.setStatus('open', null);
    };
    socket.onmessage = ev => {
      if (this.socket !== socket) {
        return;
      }
      let message: ServerMessage;
      try {
        message = JSON.parse(String(ev.data)) as ServerMessage;
      } catch {
        console.warn('juno: ignoring a non-JSON event frame', ev.data);
        return;
      }
      this.options.onMessage(message);
    };
    socket.onerror = () => {
      // onclose follows and carries the retry.
    };
    socket.onclose = ev => {
      if (this.socket !== socket) {
        return;
      }
      this.socket = null;
      const why = ev && ev.code ? ` (code ${ev.code}${ev.reason ? ': ' + ev.reason : ''})` : '';
      const detail = `connection to ${url} closed${why}`;
      this.scheduleRetry(detail);
    };
  }

  private scheduleRetry(detail: string): void {
    const delay = backoffDelay(this.attempt, this.backoff);
    this.attempt += 1;
    this.setStatus('waiting', `${detail}; retrying in ${Math.round(delay / 100) / 10}s`);
    this.retryHandle = this.timers.setTimeout(() => {
      this.retryHandle = null;
      this.open();
    }, delay);
  }

  private clearRetry(): void {
    if (this.retryHandle !== null) {
      this.timers.clearTimeout(this.retryHandle);
      this.retryHandle = null;
    }
  }

  private teardown(): void {
    this.clearRetry();
    const socket = this.socket;
    this.socket = null;
    if (socket) {
      socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
      try {
        socket.close(1000, 'juno panel closed the stream');
      } catch {
        // already closed
      }
    }
  }

  private setStatus(status: StreamStatus, detail: string | null): void {
    this._status = status;
    this.options.onStatus?.(status, detail);
  }
}
