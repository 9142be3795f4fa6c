import { describe, expect, it } from "vitest";

import { ChangeKey, ClusterModel } from "../../jupyter_extension/src/model";
import type {
  ActorsPayload,
  NodesPayload,
  Summary,
  TasksPayload,
} from "../../jupyter_extension/src/types";

function summary(time: number, finished: number): Summary {
  return {
    address: "127.0.0.1:6379",
    time,
    version: "0.1.0",
    nodes: { alive: 1, dead: 0 },
    resources: { CPU: { used: 1, total: 4 } },
    object_store: { used: 0, total: 100, spilled: 0, num_objects: 0 },
    tasks: {
      by_state: { FINISHED: finished },
      finished_total: finished,
      failed_total: 0,
    },
    actors: { by_state: {} },
    placement_groups: { by_state: {} },
    jobs: { running: 1, finished: 0 },
  };
}

const nodes = {
  nodes: [{ node_id: "aa", alive: true }],
} as unknown as NodesPayload;
const actors = (state: string) =>
  ({ actors: [{ actor_id: "ab", state }] }) as unknown as ActorsPayload;
const tasks = {
  by_state: { RUNNING: 2 },
  running: [],
  failed: [],
} as unknown as TasksPayload;

function recorder(model: ClusterModel) {
  const changes: ChangeKey[][] = [];
  model.subscribe((changed) => changes.push([...changed].sort()));
  return changes;
}

describe("ClusterModel", () => {
  it("merges partial updates: present keys replace, absent keys are kept", () => {
    const model = new ClusterModel();
    model.applyUpdate(
      { summary: summary(1, 0), nodes, tasks, actors: actors("ALIVE") },
      1,
    );
    model.applyUpdate({ actors: actors("DEAD") }, 2);
    expect(model.data.actors?.actors[0].state).toBe("DEAD");
    expect(model.data.nodes).toBe(nodes);
    expect(model.data.tasks).toBe(tasks);
    expect(model.data.summary?.time).toBe(1);
    expect(model.seq).toBe(2);
  });

  it("tells listeners exactly which keys changed, so views re-render only those", () => {
    const model = new ClusterModel();
    model.setLink("connected", null);
    const changes = recorder(model);
    model.applyUpdate({ nodes });
    model.applyUpdate({ summary: summary(1, 5) });
    model.applyUpdate({});
    expect(changes).toEqual([["nodes"], ["summary", "throughput"]]);
  });

  it("feeds summary finished_total into the throughput chart", () => {
    const model = new ClusterModel();
    model.handleMessage({
      type: "update",
      seq: 1,
      time: 10,
      data: { summary: summary(10, 0) },
    });
    model.handleMessage({
      type: "update",
      seq: 2,
      time: 11,
      data: { summary: summary(11, 4) },
    });
    model.handleMessage({ type: "update", seq: 3, time: 12, data: { nodes } });
    expect(model.throughput.series()).toEqual([{ time: 11, rate: 4 }]);
  });

  it("follows the link state: hello connects, error marks unreachable, the next update recovers", () => {
    const model = new ClusterModel();
    expect(model.link).toBe("idle");
    model.handleMessage({
      type: "hello",
      address: "10.0.0.1:6379",
      interval: 0.5,
    });
    expect(model.link).toBe("connected");
    expect(model.address).toBe("10.0.0.1:6379");
    expect(model.interval).toBe(0.5);
    model.handleMessage({
      type: "error",
      error: "cluster at 10.0.0.1:6379 did not answer",
    });
    expect(model.link).toBe("unreachable");
    expect(model.error).toContain("did not answer");
    model.handleMessage({ type: "update", seq: 5, time: 1, data: { nodes } });
    expect(model.link).toBe("connected");
    expect(model.error).toBeNull();
  });

  it("drops the previous cluster's data when the address changes", () => {
    const model = new ClusterModel();
    model.setAddress("a:1");
    model.applyUpdate({ summary: summary(1, 1), nodes }, 3);
    model.applyUpdate({ summary: summary(2, 3) }, 4);
    model.handleMessage({
      type: "event",
      event: { time: 1, kind: "node_added", message: "n" },
    });
    model.setAddress("b:2");
    expect(model.data).toEqual({});
    expect(model.seq).toBe(-1);
    expect(model.events).toEqual([]);
    expect(model.throughput.series()).toEqual([]);
    // Same address again: nothing is dropped.
    model.applyUpdate({ nodes });
    model.setAddress("b:2");
    expect(model.data.nodes).toBe(nodes);
  });

  it("keeps the newest events first, at most 50", () => {
    const model = new ClusterModel();
    for (let i = 0; i < 60; i++) {
      model.handleMessage({
        type: "event",
        event: { time: i, kind: "task_failed", message: `t${i}` },
      });
    }
    expect(model.events.length).toBe(50);
    expect(model.events[0].message).toBe("t59");
  });

  it("keeps notifying other listeners when one throws", () => {
    const model = new ClusterModel();
    const seen: number[] = [];
    model.subscribe(() => {
      throw new Error("broken view");
    });
    model.subscribe(() => seen.push(1));
    const original = console.error;
    console.error = () => undefined;
    try {
      model.applyUpdate({ nodes });
    } finally {
      console.error = original;
    }
    expect(seen).toEqual([1]);
  });
});
