import { describe, expect, it } from "vitest";

import {
  buildEventsUrl,
  buildUrl,
  JunoApi,
  JunoApiError,
} from "../../jupyter_extension/src/api";
import { fakeFetcher } from "./helpers";

describe("buildUrl", () => {
  it("joins a JupyterHub-style base_url, the prefix and the route without doubled slashes", () => {
    expect(buildUrl("/user/alice/", "juno/api", "nodes")).toBe(
      "/user/alice/juno/api/nodes",
    );
    expect(buildUrl("/user/alice", "/juno/api/", "/nodes")).toBe(
      "/user/alice/juno/api/nodes",
    );
    expect(buildUrl("/", "api", "summary")).toBe("/api/summary");
    expect(buildUrl("", "api", "summary")).toBe("/api/summary");
    expect(buildUrl("http://host:8888/lab-base/", "juno/api", "tasks")).toBe(
      "http://host:8888/lab-base/juno/api/tasks",
    );
  });

  it("encodes query values and drops null/undefined ones", () => {
    expect(
      buildUrl("/", "juno/api", "logs", {
        actor_id: "abcdef12",
        tail: 200,
        address: null,
        x: undefined,
      }),
    ).toBe("/juno/api/logs?actor_id=abcdef12&tail=200");
    expect(
      buildUrl("/", "juno/api", "nodes", { address: "10.0.0.1:6379" }),
    ).toBe("/juno/api/nodes?address=10.0.0.1%3A6379");
  });

  it("builds websocket URLs from ws or http bases", () => {
    expect(
      buildEventsUrl("ws://h:8888/user/bob/", "juno/api", {
        address: "a:1",
        token: null,
      }),
    ).toBe("ws://h:8888/user/bob/juno/api/events?address=a%3A1");
    expect(buildEventsUrl("https://h/base/", "api")).toBe(
      "wss://h/base/api/events",
    );
    expect(buildEventsUrl("http://h/", "api", { token: "t k" })).toBe(
      "ws://h/api/events?token=t+k",
    );
  });
});

describe("JunoApi", () => {
  it("adds the chosen cluster address to cluster routes but not to the connection routes", async () => {
    const { fetcher, calls } = fakeFetcher(() => ({ status: 200, body: "{}" }));
    const api = new JunoApi({
      baseUrl: "/user/alice/",
      prefix: "juno/api",
      fetcher,
      address: "127.0.0.1:6379",
    });
    await api.nodes();
    await api.tasks(50);
    await api.getConnection("kernel-1");
    await api.getConnection(null);
    expect(calls.map((c) => c.url)).toEqual([
      "/user/alice/juno/api/nodes?address=127.0.0.1%3A6379",
      "/user/alice/juno/api/tasks?limit=50&address=127.0.0.1%3A6379",
      "/user/alice/juno/api/connection?kernel_id=kernel-1",
      "/user/alice/juno/api/connection",
    ]);
    expect(
      calls.every((c) => c.init.method === "GET" && c.init.body === undefined),
    ).toBe(true);
  });

  it("sends JSON bodies for mutations", async () => {
    const { fetcher, calls } = fakeFetcher(() => ({
      status: 200,
      body: '{"ok": true}',
    }));
    const api = new JunoApi({ baseUrl: "/", prefix: "api", fetcher });
    expect(await api.killActor("ab12cd34ef")).toEqual({ ok: true });
    await api.setConnection(null);
    await api.startLocalCluster(2);
    await api.logs({ kind: "worker", id: "ffee0011" }, 300);
    expect(calls.map((c) => [c.init.method, c.url, c.init.body])).toEqual([
      ["POST", "/api/actors/ab12cd34ef/kill", '{"no_restart":true}'],
      ["PUT", "/api/connection", '{"address":null}'],
      ["POST", "/api/clusters", '{"num_cpus":2}'],
      ["GET", "/api/logs?worker_id=ffee0011&tail=300", undefined],
    ]);
    expect(
      (calls[0].init.headers as Record<string, string>)["Content-Type"],
    ).toBe("application/json");
  });

  it('maps a JSON {"error"} answer to JunoApiError with the server message and status', async () => {
    const { fetcher } = fakeFetcher(() => ({
      status: 404,
      body: '{"error": "no actor ab12cd34: it may have exited"}',
    }));
    const api = new JunoApi({ baseUrl: "/", prefix: "api", fetcher });
    const err = await api.killActor("ab12cd34").catch((e) => e);
    expect(err).toBeInstanceOf(JunoApiError);
    expect(err.status).toBe(404);
    expect(err.message).toBe("no actor ab12cd34: it may have exited");
    expect(err.url).toBe("/api/actors/ab12cd34/kill");
  });

  it("describes non-JSON errors (a proxy's HTML page) by status and text", async () => {
    const { fetcher } = fakeFetcher(() => ({
      status: 502,
      statusText: "Bad Gateway",
      body: "<html><body><h1>502 Bad Gateway</h1></body></html>",
    }));
    const api = new JunoApi({ baseUrl: "/", prefix: "api", fetcher });
    const err = await api.summary().catch((e) => e);
    expect(err.status).toBe(502);
    expect(err.message).toBe(
      "HTTP 502 Bad Gateway from /api/summary: 502 Bad Gateway",
    );
  });

  it("says how to authenticate on a bare 401", async () => {
    const { fetcher } = fakeFetcher(() => ({ status: 401, body: "" }));
    const api = new JunoApi({ baseUrl: "/", prefix: "api", fetcher });
    const err = await api.summary().catch((e) => e);
    expect(err.status).toBe(401);
    expect(err.message).toContain("juno token");
  });

  it("maps a network failure to status 0 with the URL", async () => {
    const api = new JunoApi({
      baseUrl: "/",
      prefix: "api",
      fetcher: async () => {
        throw new TypeError("Failed to fetch");
      },
    });
    const err = await api.nodes().catch((e) => e);
    expect(err).toBeInstanceOf(JunoApiError);
    expect(err.status).toBe(0);
    expect(err.message).toContain(
      "Could not reach /api/nodes: Failed to fetch",
    );
  });

  it("rejects an answer that is not JSON", async () => {
    const { fetcher } = fakeFetcher(() => ({
      status: 200,
      body: "<html>login</html>",
    }));
    const api = new JunoApi({ baseUrl: "/", prefix: "api", fetcher });
    await expect(api.nodes()).rejects.toThrow("Invalid JSON from /api/nodes");
  });
});
