import { describe, expect, it } from "vitest";

import {
  formatBytes,
  formatDuration,
  formatQuantity,
  formatResource,
  shortId,
  shortTaskId,
} from "../../jupyter_extension/src/views/format";

describe("format", () => {
  it("shows bytes in binary units", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(1536)).toBe("1.5 KiB");
    expect(formatBytes(8 * 2 ** 30)).toBe("8.0 GiB");
    expect(formatBytes(10110425497)).toBe("9.4 GiB");
    expect(formatBytes(Number.NaN)).toBe("?");
  });

  it("shows memory-like resources as sizes and the rest as counts", () => {
    expect(formatResource("memory", 2 ** 20)).toBe("1.0 MiB");
    expect(formatResource("CPU", 1.5)).toBe("1.5");
    expect(formatQuantity(0.25)).toBe("0.25");
    expect(formatQuantity(2)).toBe("2");
  });

  it("shortens ids; task ids by their distinguishing digits before the zero padding", () => {
    expect(shortId("422c7fd47b51197d")).toBe("422c7fd4");
    expect(shortId(null)).toBe("—");
    expect(shortTaskId("e7816146719321631002000000000000")).toBe("21631002");
    expect(shortTaskId("e7816146719321630300000000000000")).toBe("93216303");
    expect(shortTaskId("ab00000000")).toBe("00000000"); // too short once trimmed: plain tail
  });

  it("formats durations", () => {
    expect(formatDuration(5.7)).toBe("5s");
    expect(formatDuration(250)).toBe("4m 10s");
    expect(formatDuration(7500)).toBe("2h 5m");
    expect(formatDuration(-1)).toBe("—");
  });
});
