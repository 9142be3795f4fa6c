import { describe, expect, it } from "vitest";

import { ThroughputTracker } from "../../jupyter_extension/src/throughput";

describe("ThroughputTracker", () => {
  it("computes finished tasks per second from successive finished_total counters", () => {
    const t = new ThroughputTracker(120);
    t.add(1000, 10);
    expect(t.series()).toEqual([]);
    expect(t.current()).toBe(0);
    t.add(1002, 30); // 20 tasks in 2 s
    t.add(1003, 30); // none in 1 s
    expect(t.series()).toEqual([
      { time: 1002, rate: 10 },
      { time: 1003, rate: 0 },
    ]);
    expect(t.current()).toBe(0);
  });

  it("treats a counter that went down as a cluster restart: new baseline, no negative rate", () => {
    const t = new ThroughputTracker(120);
    t.add(1000, 500);
    t.add(1001, 510);
    t.add(1002, 3); // restarted cluster: counter from 0 again
    t.add(1004, 7);
    const rates = t.series().map((p) => p.rate);
    expect(rates).toEqual([10, 2]);
    expect(rates.every((r) => r >= 0)).toBe(true);
  });

  it("keeps only the last window of points", () => {
    const t = new ThroughputTracker(120);
    for (let i = 0; i <= 200; i++) {
      t.add(1000 + i, i * 2);
    }
    const series = t.series();
    expect(series[0].time).toBe(1200 - 120);
    expect(series[series.length - 1]).toEqual({ time: 1200, rate: 2 });
    expect(series.length).toBe(121);
  });

  it("ignores repeated or older samples and non-numbers", () => {
    const t = new ThroughputTracker(120);
    t.add(1000, 10);
    t.add(1000, 50);
    t.add(999, 60);
    t.add(Number.NaN, 70);
    t.add(1001, 12);
    expect(t.series()).toEqual([{ time: 1001, rate: 2 }]);
  });

  it("forgets everything on reset (another cluster was chosen)", () => {
    const t = new ThroughputTracker(120);
    t.add(1000, 10);
    t.add(1001, 20);
    t.reset();
    t.add(5, 1);
    expect(t.series()).toEqual([]);
  });
});
