/**
 * Task throughput (finished tasks per second) computed in the browser from the
 * successive cumulative `finished_total` counters of summary updates.
 */

export interface RatePoint {
  /** Server time (unix seconds) at the end of the interval. */
  time: number;
  /** Finished tasks per second over the interval. */
  rate: number;
}

export class ThroughputTracker {
  readonly windowSeconds: number;
  private last: { time: number; total: number } | null = null;
  private points: RatePoint[] = [];

  constructor(windowSeconds = 120) {
    this.windowSeconds = windowSeconds;
  }

  /**
   * Record a `(time, finished_total)` sample. A counter that went down means the
   * cluster restarted: the sample becomes the new baseline and no rate is made up
   * for the interval. Samples not newer than the previous one are ignored.
   */
  add(time: number, finishedTotal: number): void {
    if (!Number.isFinite(time) || !Number.isFinite(finishedTotal)) {
      return;
    }
    const last = this.last;
    if (last !== null && time <= last.time) {
      return;
    }
    this.last = { time, total: finishedTotal };
    if (last !== null && finishedTotal >= last.total) {
      this.points.push({ time, rate: (finishedTotal - last.total) / (time - last.time) });
    }
    const oldest = time - this.windowSeconds;
    while (this.points.length > 0 && this.points[0].time < oldest) {
      this.points.shift();
    }
  }

  /** Rate points inside the window, oldest first. */
  series(): RatePoint[] {
    return this.points.slice();
  }

  /** The latest rate, 0 before the second sample. */
  current(): number {
    return this.points.length ? this.points[this.points.length - 1].rate : 0;
  }

  /** Forget everything (another cluster was chosen). */
  reset(): void {
    this.last = null;
    this.points = [];
  }
}
