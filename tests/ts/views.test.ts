// @vitest-environment happy-dom
/**
 * The shared DOM views render the hooks the browser tests and users rely on.
 * (happy-dom: a DOM without a browser; the browser test covers real layout.)
 */
import { afterEach, describe, expect, it, vi } from "vitest";

import { JunoApi } from "../../jupyter_extension/src/api";
import type {
  ActorInfo,
  LibraryRunInfo,
  NodeInfo,
} from "../../jupyter_extension/src/types";
import { ActorsView } from "../../jupyter_extension/src/views/actors";
import {
  LibrariesView,
  runMetricsText,
  serveSummaryText,
  tuneSummaryText,
} from "../../jupyter_extension/src/views/libraries";
import { LogView } from "../../jupyter_extension/src/views/logs";
import { renderNodes } from "../../jupyter_extension/src/views/nodes";
import {
  renderTaskCounts,
  renderThroughput,
} from "../../jupyter_extension/src/views/tasks";
import { fakeFetcher } from "./helpers";

const node = {
  node_id: "aabbccdd0011",
  alive: true,
  state: "ALIVE",
  is_head: true,
  ip: "127.0.0.1",
  hostname: "box",
  address: "127.0.0.1:7000",
  resources: {
    CPU: { used: 1.5, total: 4 },
    GPU: { used: 0, total: 1 },
    memory: { used: 1024, total: 4096 },
  },
  gpu_ids: [0],
  object_store: { used: 10, total: 100, spilled: 0, num_objects: 1 },
} as unknown as NodeInfo;

const actor = (id: string, state: string) =>
  ({
    actor_id: id,
    class_name: "Counter",
    name: null,
    state,
    num_restarts: 0,
    max_restarts: 0,
    pid: 3,
  }) as unknown as ActorInfo;

function api(status = 200, body = '{"ok": true}') {
  const fake = fakeFetcher(() => ({ status, body }));
  return {
    api: new JunoApi({ baseUrl: "/", prefix: "api", fetcher: fake.fetcher }),
    calls: fake.calls,
  };
}

async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) {
    await Promise.resolve();
  }
}

afterEach(() => {
  vi.useRealTimers();
});

describe("views", () => {
  it("node rows carry resource bars with raw used/total numbers", () => {
    const box = document.createElement("div");
    renderNodes(box, [node]);
    const row = box.querySelector(
      "[data-juno=node-row][data-node-id=aabbccdd0011]",
    )!;
    const cpu = row.querySelector("[data-juno=bar][data-resource=CPU]")!;
    expect(cpu.getAttribute("data-used")).toBe("1.5");
    expect(cpu.getAttribute("data-total")).toBe("4");
    const names = [...row.querySelectorAll("[data-juno=bar]")].map((b) =>
      b.getAttribute("data-resource"),
    );
    expect(names).toEqual(["CPU", "GPU", "memory", "object_store"]);
  });

  it("task counts always show the main states, 0 included", () => {
    const box = document.createElement("div");
    renderTaskCounts(box, { FINISHED: 12, PENDING_ARGS_AVAIL: 2 });
    const count = (s: string) =>
      box.querySelector(`[data-juno=task-count][data-state=${s}]`)?.textContent;
    expect(count("RUNNING")).toBe("0");
    expect(count("PENDING_NODE_ASSIGNMENT")).toBe("0");
    expect(count("FAILED")).toBe("0");
    expect(count("FINISHED")).toBe("12");
    expect(count("PENDING_ARGS_AVAIL")).toBe("2");
    renderTaskCounts(box, undefined);
    expect(count("FINISHED")).toBe("0");
  });

  it("finished and failed counts are the cumulative totals once records were dropped", () => {
    const box = document.createElement("div");
    renderTaskCounts(
      box,
      { FINISHED: 10000, FAILED: 3, RUNNING: 2 },
      { finished_total: 25000, failed_total: 3 },
    );
    const count = (s: string) =>
      box.querySelector(`[data-juno=task-count][data-state=${s}]`)?.textContent;
    expect(count("FINISHED")).toBe("25000");
    expect(count("FAILED")).toBe("3");
    expect(count("RUNNING")).toBe("2");
  });

  it("the throughput chart is an SVG with a line once there are two points", () => {
    const box = document.createElement("div");
    renderThroughput(box, [{ time: 1, rate: 2 }], 120);
    expect(
      box.querySelector("[data-juno=throughput-chart] polyline"),
    ).toBeNull();
    renderThroughput(
      box,
      [
        { time: 1, rate: 2 },
        { time: 2, rate: 4 },
      ],
      120,
    );
    const chart = box.querySelector("[data-juno=throughput-chart]")!;
    expect(chart.getAttribute("data-points")).toBe("2");
    expect(chart.querySelector("polyline")).not.toBeNull();
    expect(box.textContent).toContain("4.0 tasks/s");
  });

  it("kill needs two clicks: the first asks to confirm, the second POSTs the kill", async () => {
    const { api: client, calls } = api();
    const view = new ActorsView({ api: client });
    view.update([actor("ab12", "ALIVE"), actor("cd34", "DEAD")]);
    expect(
      view.node.querySelector("[data-actor-id=cd34] [data-juno=kill-actor]"),
    ).toBeNull();
    const button = () =>
      view.node.querySelector<HTMLButtonElement>(
        "[data-actor-id=ab12] [data-juno=kill-actor]",
      )!;
    button().click();
    expect(button().textContent).toBe("Confirm");
    expect(calls).toEqual([]);
    // An update while confirming keeps the confirmation.
    view.update([actor("ab12", "ALIVE")]);
    expect(button().textContent).toBe("Confirm");
    button().click();
    await settle();
    expect(calls.map((c) => [c.init.method, c.url])).toEqual([
      ["POST", "/api/actors/ab12/kill"],
    ]);
    expect(button().disabled).toBe(true);
    view.update([actor("ab12", "DEAD")]);
    expect(
      view.node.querySelector("[data-actor-id=ab12] [data-juno=actor-state]")!
        .textContent,
    ).toBe("DEAD");
    view.dispose();
  });

  it('an unconfirmed kill turns back into "Kill" after a few seconds', () => {
    vi.useFakeTimers();
    const { api: client, calls } = api();
    const view = new ActorsView({ api: client });
    view.update([actor("ab12", "ALIVE")]);
    const button = () =>
      view.node.querySelector<HTMLButtonElement>("[data-juno=kill-actor]")!;
    button().click();
    expect(button().textContent).toBe("Confirm");
    vi.advanceTimersByTime(5000);
    expect(button().textContent).toBe("Kill");
    expect(calls).toEqual([]);
    view.dispose();
  });

  it("a failed kill shows the server error and re-enables the button", async () => {
    const { api: client } = api(404, '{"error": "no actor ab12"}');
    const view = new ActorsView({ api: client });
    view.update([actor("ab12", "ALIVE")]);
    const button = () =>
      view.node.querySelector<HTMLButtonElement>("[data-juno=kill-actor]")!;
    button().click();
    button().click();
    await settle();
    expect(
      view.node.querySelector("[data-juno=actor-error]")!.textContent,
    ).toContain("no actor ab12");
    expect(button().disabled).toBe(false);
    expect(button().textContent).toBe("Kill");
    view.dispose();
  });

  it("the log viewer lists actors and workers and shows the chosen tail", async () => {
    const fake = fakeFetcher((url) =>
      url.startsWith("/api/workers")
        ? {
            status: 200,
            body: JSON.stringify({
              workers: [
                {
                  worker_id: "ee11",
                  pid: 9,
                  worker_type: "WORKER",
                  is_alive: true,
                },
              ],
            }),
          }
        : {
            status: 200,
            body: JSON.stringify({
              source: { kind: "actor", id: "ab12", path: "/x.log" },
              lines: ["a", "b"],
              truncated: false,
            }),
          },
    );
    const view = new LogView(
      new JunoApi({ baseUrl: "/", prefix: "api", fetcher: fake.fetcher }),
    );
    view.setActors([actor("ab12", "ALIVE")]);
    await view.loadWorkers();
    const select = view.node.querySelector<HTMLSelectElement>(
      "[data-juno=log-source]",
    )!;
    expect([...select.options].map((o) => o.value)).toEqual([
      "",
      "actor:ab12",
      "worker:ee11",
    ]);
    select.value = "actor:ab12";
    await view.refresh();
    expect(fake.calls.map((c) => c.url)).toContain(
      "/api/logs?actor_id=ab12&tail=200",
    );
    expect(view.node.querySelector("[data-juno=log-view]")!.textContent).toBe(
      "a\nb",
    );
    // The selection survives a live actor update.
    view.setActors([actor("ab12", "DEAD")]);
    expect(select.value).toBe("actor:ab12");
  });
});

describe("LibrariesView", () => {
  const run = (id: string, state: string, extra: object = {}) =>
    ({
      run_id: id,
      kind: "data",
      title: `pipeline ${id}`,
      state,
      done: 400,
      failed: 0,
      total: 1000,
      unit: "rows",
      rate: 2000,
      elapsed_s: 3,
      start_time: 1,
      end_time: null,
      job_id: "01000000",
      error: null,
      columns: ["operator", "rows"],
      rows: [["ReadRange", 400]],
      rows_dropped: 0,
      fields: { blocks: 4 },
      series_last: {},
      ...extra,
    }) as unknown as LibraryRunInfo;

  it("shows one row per run with its progress and keeps opened rows open", () => {
    const view = new LibrariesView();
    view.update(undefined);
    expect(view.node.textContent).toContain("Waiting");
    view.update([]);
    expect(view.node.textContent).toContain("No library runs");
    view.update([
      run("a", "running"),
      run("b", "failed", { error: "ValueError: bad" }),
    ]);
    const rows = view.node.querySelectorAll<HTMLDetailsElement>(
      "[data-juno=run-row]",
    );
    expect(rows.length).toBe(2);
    expect(rows[0].textContent).toContain("400/1,000 rows (40%)");
    expect(rows[0].textContent).toContain("2000 rows/s");
    expect(
      rows[0].querySelector("[data-juno=run-table]")!.textContent,
    ).toContain("ReadRange");
    expect(rows[1].getAttribute("data-state")).toBe("failed");
    expect(rows[1].textContent).toContain("ValueError: bad");
    rows[0].open = true;
    rows[0].dispatchEvent(new Event("toggle"));
    view.update([run("a", "finished", { done: 1000 })]);
    const again =
      view.node.querySelector<HTMLDetailsElement>("[data-run-id=a]")!;
    expect(again.open).toBe(true);
    expect(again.textContent).toContain("1,000/1,000 rows (100%)");
  });

  it("shows a Train run's state and latest metrics in its collapsed row", () => {
    const train = run("t", "running", {
      kind: "train",
      title: "TorchTrainer(train_func) · run-a",
      done: 12,
      total: null,
      unit: "iterations",
      columns: ["rank", "state"],
      rows: [[0, "running"]],
      fields: {
        epoch: 11,
        accuracy: 0.9,
        loss: 0.125,
        "val/loss": 0.25,
        attempt: 2,
        checkpoints: "2 kept",
      },
      series_last: { loss: 0.125 },
    });
    expect(runMetricsText(train)).toBe(
      "loss=0.1250  val/loss=0.2500 · attempt 2",
    );
    expect(runMetricsText(run("n", "running", { fields: {} }))).toBe("");
    expect(
      runMetricsText(
        run("s", "running", { fields: {}, series_last: { acc: 0.5 } }),
      ),
    ).toBe("acc=0.5000");
    const view = new LibrariesView();
    view.update([train]);
    const row = view.node.querySelector<HTMLDetailsElement>(
      "[data-juno=run-row]",
    )!;
    expect(row.getAttribute("data-state")).toBe("running");
    const summary = row.querySelector("summary")!;
    expect(summary.textContent).toContain("train");
    expect(summary.textContent).toContain("12/? iterations");
    expect(summary.querySelector("[data-juno=run-metrics]")!.textContent).toBe(
      "loss=0.1250  val/loss=0.2500 · attempt 2",
    );
    expect(row.textContent).toContain("checkpoints=2 kept"); // all fields in the detail
  });

  it("shows a Tune experiment's best trial and counts, and its trial table with coloured statuses", () => {
    const tune = run("e", "running", {
      kind: "tune",
      title: "Tuner(train_fn) · exp",
      done: 10,
      failed: 1,
      total: 30,
      unit: "trials",
      columns: ["trial name", "status", "lr", "loss", "best loss"],
      rows: [
        ["a_00003", "RUNNING", 0.01, 0.1234, 0.1],
        ["a_00001", "TERMINATED", 0.1, 0.5, 0.4],
        ["a_00002", "ERROR", 1, "", ""],
      ],
      rows_dropped: 27,
      fields: {
        metric: "loss",
        mode: "min",
        best: 0.1234,
        "best trial": "a_00003",
        "best config": "lr=0.01",
        running: 3,
        terminated: 10,
        error: 1,
      },
      series_last: { a_00003: 0.1234 },
    });
    expect(tuneSummaryText(tune)).toBe(
      "best loss=0.1234 (a_00003) · 3 running, 10 terminated, 1 error",
    );
    expect(
      tuneSummaryText(
        run("n", "running", { kind: "tune", fields: { pending: 4 } }),
      ),
    ).toBe("4 pending");
    const view = new LibrariesView();
    view.update([tune]);
    const row = view.node.querySelector<HTMLDetailsElement>(
      "[data-juno=run-row]",
    )!;
    const summary = row.querySelector("summary")!;
    expect(summary.textContent).toContain("10/30 trials (37%), 1 failed");
    expect(summary.querySelector("[data-juno=run-metrics]")!.textContent).toBe(
      "best loss=0.1234 (a_00003) · 3 running, 10 terminated, 1 error",
    );
    const table = row.querySelector("[data-juno=run-table]")!;
    const statuses = [...table.querySelectorAll("[data-status]")].map(
      (s) => s.className,
    );
    expect(statuses).toEqual([
      "juno-state-RUNNING",
      "juno-state-TERMINATED",
      "juno-state-ERROR",
    ]);
    expect(table.querySelectorAll("tbody tr")[0].textContent).toContain(
      "a_00003",
    );
    expect(row.textContent).toContain("27 more trials not shown");
  });

  it("shows a Serve view's route, status, replicas, req/s and p99, without a bar, and coloured statuses", () => {
    const serve = run("s", "running", {
      kind: "serve",
      title: "Serve · default",
      done: 0,
      total: null,
      unit: "requests",
      columns: [
        "application",
        "deployment",
        "route",
        "status",
        "replicas",
        "req/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "message",
      ],
      rows: [
        [
          "default",
          "",
          "/",
          "RUNNING",
          "2 RUNNING, 1 STARTING",
          12.5,
          1.2,
          4.1,
          0,
          "",
        ],
        [
          "default",
          "Model",
          "",
          "UPSCALING",
          "2 RUNNING, 1 STARTING",
          12.5,
          1.2,
          4.1,
          0,
          "",
        ],
        [
          "other",
          "",
          "/b",
          "DEPLOY_FAILED",
          "",
          "",
          "",
          "",
          "",
          "RuntimeError: boom",
        ],
      ],
      fields: {
        route: "/",
        status: "RUNNING",
        replicas: "2 RUNNING, 1 STARTING",
        "req/s": 12.5,
        "p99 ms": 4.1,
        applications: 2,
      },
    });
    expect(serveSummaryText(serve)).toBe(
      "route / · RUNNING · 2 RUNNING, 1 STARTING · 12.50 req/s · p99 4.100 ms",
    );
    expect(
      serveSummaryText(
        run("w", "running", {
          kind: "serve",
          fields: { note: "waiting for Serve to start" },
        }),
      ),
    ).toBe("waiting for Serve to start");
    const view = new LibrariesView();
    view.update([serve]);
    const row = view.node.querySelector<HTMLDetailsElement>(
      "[data-juno=run-row]",
    )!;
    const summary = row.querySelector("summary")!;
    expect(summary.querySelector(".juno-bar")).toBeNull();
    expect(summary.querySelector("[data-juno=run-metrics]")!.textContent).toBe(
      serveSummaryText(serve),
    );
    const statuses = [
      ...row.querySelectorAll("[data-juno=run-table] [data-status]"),
    ].map((s) => s.className);
    expect(statuses).toEqual([
      "juno-state-RUNNING",
      "juno-state-UPSCALING",
      "juno-state-DEPLOY_FAILED",
    ]);
  });
});
