import { beforeEach, describe, expect, it } from "vitest";

import {
  backoffDelay,
  EventStream,
  StreamStatus,
} from "../../jupyter_extension/src/events";
import type { ServerMessage } from "../../jupyter_extension/src/types";
import { FakeSocket, ManualTimers } from "./helpers";

function makeStream(timers: ManualTimers) {
  const messages: ServerMessage[] = [];
  const statuses: [StreamStatus, string | null][] = [];
  const stream = new EventStream({
    createSocket: (url) => new FakeSocket(url),
    timers,
    backoff: { initialMs: 500, maxMs: 8000, factor: 2 },
    onMessage: (m) => messages.push(m),
    onStatus: (s, d) => statuses.push([s, d]),
  });
  return { stream, messages, statuses };
}

describe("EventStream", () => {
  let timers: ManualTimers;
  beforeEach(() => {
    FakeSocket.reset();
    timers = new ManualTimers();
  });

  it("delivers parsed server messages and skips frames that are not JSON", () => {
    const { stream, messages } = makeStream(timers);
    stream.connect("ws://h/juno/api/events");
    const socket = FakeSocket.last();
    socket.serverOpen();
    socket.serverSend({ type: "hello", address: "a:1", interval: 1 });
    const warn = console.warn;
    console.warn = () => undefined;
    try {
      socket.onmessage?.({ data: "not json" });
    } finally {
      console.warn = warn;
    }
    expect(messages).toEqual([{ type: "hello", address: "a:1", interval: 1 }]);
    expect(stream.status).toBe("open");
  });

  it("reconnects with exponential backoff, capped, and resets the backoff after a successful open", () => {
    const { stream, statuses } = makeStream(timers);
    stream.connect("ws://h/events");
    expect(FakeSocket.instances.length).toBe(1);

    const waits: number[] = [];
    for (let i = 0; i < 6; i++) {
      FakeSocket.last().serverClose(1006);
      expect(stream.status).toBe("waiting");
      waits.push(...timers.delays());
      const before = FakeSocket.instances.length;
      timers.advance(timers.delays()[0] - 1);
      expect(FakeSocket.instances.length).toBe(before); // not a millisecond early
      timers.advance(1);
      expect(FakeSocket.instances.length).toBe(before + 1);
    }
    expect(waits).toEqual([500, 1000, 2000, 4000, 8000, 8000]);
    expect(
      statuses.some(
        ([s, d]) => s === "waiting" && (d ?? "").includes("retrying in 8s"),
      ),
    ).toBe(true);

    FakeSocket.last().serverOpen();
    FakeSocket.last().serverClose(1006);
    expect(timers.delays()).toEqual([500]);
    expect(FakeSocket.instances.every((s) => s.url === "ws://h/events")).toBe(
      true,
    );
  });

  it("backoffDelay grows by the factor up to the cap", () => {
    const b = { initialMs: 100, maxMs: 1000, factor: 3 };
    expect([0, 1, 2, 3, 4].map((a) => backoffDelay(a, b))).toEqual([
      100, 300, 900, 1000, 1000,
    ]);
  });

  it("sends pause when hidden and resume when shown, once each", () => {
    const { stream } = makeStream(timers);
    stream.connect("ws://h/events");
    const socket = FakeSocket.last();
    socket.serverOpen();
    stream.pause();
    stream.pause();
    stream.resume();
    stream.resume();
    expect(socket.sentMessages()).toEqual([
      { type: "pause" },
      { type: "resume" },
    ]);
  });

  it("re-sends pause on a new socket while the panel is still hidden, and nothing while closed", () => {
    const { stream } = makeStream(timers);
    stream.connect("ws://h/events");
    const first = FakeSocket.last();
    stream.pause(); // not open yet: nothing sent, remembered
    expect(first.sent).toEqual([]);
    first.serverOpen();
    expect(first.sentMessages()).toEqual([{ type: "pause" }]);
    first.serverClose();
    timers.advance(500);
    const second = FakeSocket.last();
    expect(second).not.toBe(first);
    second.serverOpen();
    expect(second.sentMessages()).toEqual([{ type: "pause" }]);
    stream.resume();
    expect(second.sentMessages()).toEqual([
      { type: "pause" },
      { type: "resume" },
    ]);
    // A socket that opens while visible is not told anything: the server sends updates.
    second.serverClose();
    timers.advance(500);
    FakeSocket.last().serverOpen();
    expect(FakeSocket.last().sent).toEqual([]);
  });

  it("switching URL closes the old socket, ignores its late events and connects at once", () => {
    const { stream, messages } = makeStream(timers);
    stream.connect("ws://h/events?address=a%3A1");
    const old = FakeSocket.last();
    old.serverOpen();
    stream.connect("ws://h/events?address=b%3A2");
    expect(old.closedByClient).not.toBeNull();
    const fresh = FakeSocket.last();
    expect(fresh.url).toBe("ws://h/events?address=b%3A2");
    old.serverSend({ type: "hello", address: "a:1", interval: 1 });
    old.serverClose();
    expect(messages).toEqual([]);
    expect(timers.delays()).toEqual([]);
    // Same URL again while connected: no new socket.
    stream.connect("ws://h/events?address=b%3A2");
    expect(FakeSocket.last()).toBe(fresh);
  });

  it("stop() closes the socket and cancels a pending reconnect", () => {
    const { stream } = makeStream(timers);
    stream.connect("ws://h/events");
    FakeSocket.last().serverClose();
    expect(timers.delays()).toEqual([500]);
    stream.stop();
    expect(timers.delays()).toEqual([]);
    timers.advance(60000);
    expect(FakeSocket.instances.length).toBe(1);
    expect(stream.status).toBe("stopped");
  });

  it("retryNow() skips the remaining backoff", () => {
    const { stream } = makeStream(timers);
    stream.connect("ws://h/events");
    FakeSocket.last().serverClose();
    FakeSocket.last().serverClose(); // a late second close of the same socket is ignored
    stream.retryNow();
    expect(FakeSocket.instances.length).toBe(2);
    expect(timers.delays()).toEqual([]);
  });

  it("a socket constructor that throws is retried like a dropped connection", () => {
    let fail = true;
    const stream = new EventStream({
      createSocket: (url) => {
        if (fail) {
          throw new Error("bad url");
        }
        return new FakeSocket(url);
      },
      timers,
      onMessage: () => undefined,
    });
    stream.connect("ws://h/events");
    expect(stream.status).toBe("waiting");
    fail = false;
    timers.advance(500);
    expect(FakeSocket.instances.length).toBe(1);
  });
});
