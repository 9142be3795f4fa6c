import { beforeEach, describe, expect, it } from "vitest";

import { buildEventsUrl, JunoApi } from "../../jupyter_extension/src/api";
import { DashboardController } from "../../jupyter_extension/src/controller";
import { fakeFetcher, FakeSocket, ManualTimers } from "./helpers";

function makeController(timers: ManualTimers) {
  const { fetcher } = fakeFetcher(() => ({ status: 200, body: "{}" }));
  const api = new JunoApi({ baseUrl: "/base/", prefix: "juno/api", fetcher });
  return new DashboardController({
    api,
    eventsUrl: (address) =>
      buildEventsUrl("ws://h/base/", "juno/api", { address }),
    createSocket: (url) => new FakeSocket(url),
    timers,
  });
}

describe("DashboardController", () => {
  let timers: ManualTimers;
  beforeEach(() => {
    FakeSocket.reset();
    timers = new ManualTimers();
  });

  it("watches a cluster: API and stream carry its address, and the link follows the socket", () => {
    const c = makeController(timers);
    c.watch("10.0.0.5:6379");
    expect(c.api.url("nodes")).toBe(
      "/base/juno/api/nodes?address=10.0.0.5%3A6379",
    );
    const socket = FakeSocket.last();
    expect(socket.url).toBe(
      "ws://h/base/juno/api/events?address=10.0.0.5%3A6379",
    );
    expect(c.model.link).toBe("connecting");
    socket.serverOpen();
    socket.serverSend({ type: "hello", address: "10.0.0.5:6379", interval: 1 });
    expect(c.model.link).toBe("connected");
    socket.serverClose(1006);
    expect(c.model.link).toBe("offline");
    expect(c.model.error).toContain("retrying in 0.5s");
    timers.advance(500);
    // Reconnecting keeps showing "offline" until the server says hello again.
    expect(c.model.link).toBe("offline");
    FakeSocket.last().serverOpen();
    FakeSocket.last().serverSend({
      type: "hello",
      address: "10.0.0.5:6379",
      interval: 1,
    });
    expect(c.model.link).toBe("connected");
  });

  it("watch(null) stops the stream and shows no cluster", () => {
    const c = makeController(timers);
    c.watch("a:1");
    const socket = FakeSocket.last();
    c.watch(null);
    expect(socket.closedByClient).not.toBeNull();
    expect(c.model.link).toBe("idle");
    expect(c.model.address).toBeNull();
    expect(c.api.url("nodes")).toBe("/base/juno/api/nodes");
  });

  it("pauses updates while hidden and resumes when shown", () => {
    const c = makeController(timers);
    c.watch("a:1");
    const socket = FakeSocket.last();
    socket.serverOpen();
    c.setVisible(false);
    c.setVisible(true);
    expect(socket.sentMessages()).toEqual([
      { type: "pause" },
      { type: "resume" },
    ]);
  });
});
