/** Test doubles shared by the front-end unit tests: a scripted WebSocket and manual timers. */

import type { SocketLike, Timers } from "../../jupyter_extension/src/events";

/** A WebSocket stand-in the test drives: open it, feed it frames, close it. */
export class FakeSocket implements SocketLike {
  static instances: FakeSocket[] = [];
  readyState = 0;
  sent: string[] = [];
  closedByClient: { code?: number; reason?: string } | null = null;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code?: number; reason?: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;

  constructor(readonly url: string) {
    FakeSocket.instances.push(this);
  }

  static reset(): void {
    FakeSocket.instances = [];
  }

  static last(): FakeSocket {
    const socket = FakeSocket.instances[FakeSocket.instances.length - 1];
    if (!socket) {
      throw new Error("no socket was created");
    }
    return socket;
  }

  send(data: string): void {
    if (this.readyState !== 1) {
      throw new Error("send() on a socket that is not open");
    }
    this.sent.push(data);
  }

  close(code?: number, reason?: string): void {
    this.closedByClient = { code, reason };
    this.readyState = 3;
  }

  /** Messages the client sent, parsed. */
  sentMessages(): { type: string }[] {
    return this.sent.map((s) => JSON.parse(s));
  }

  serverOpen(): void {
    this.readyState = 1;
    this.onopen?.({});
  }

  serverSend(message: object): void {
    this.onmessage?.({ data: JSON.stringify(message) });
  }

  serverClose(code = 1006, reason = ""): void {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
}

/** Timers that fire only when the test advances them. */
export class ManualTimers implements Timers {
  now = 0;
  private nextId = 1;
  private pending = new Map<
    number,
    { at: number; fn: () => void; ms: number }
  >();

  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.pending.set(id, { at: this.now + ms, fn, ms });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }

  /** Delays of the timers waiting now. */
  delays(): number[] {
    return [...this.pending.values()].map((t) => t.ms);
  }

  /** Move time forward, firing due timers in order. */
  advance(ms: number): void {
    const end = this.now + ms;
    for (;;) {
      const due = [...this.pending.entries()]
        .filter(([, t]) => t.at <= end)
        .sort((a, b) => a[1].at - b[1].at);
      if (due.length === 0) {
        break;
      }
      const [id, timer] = due[0];
      this.pending.delete(id);
      this.now = timer.at;
      timer.fn();
    }
    this.now = end;
  }
}

/** A fetch stand-in that records requests and answers from a script. */
export function fakeFetcher(
  answer: (
    url: string,
    init: RequestInit,
  ) => { status: number; body: string; statusText?: string },
) {
  const calls: { url: string; init: RequestInit }[] = [];
  const fetcher = async (url: string, init: RequestInit) => {
    calls.push({ url, init });
    const { status, body, statusText } = answer(url, init);
    return {
      ok: status >= 200 && status < 300,
      status,
      statusText,
      text: async () => body,
    };
  };
  return { fetcher, calls };
}
