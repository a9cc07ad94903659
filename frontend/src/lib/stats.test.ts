import { describe, expect, it } from "vitest";
import type { AppStats } from "./api";
import {
  appendSample,
  containerCpuPercent,
  cpuPercent,
  memoryLimit,
  newServerErrors,
  rate,
  requestsPerSecond,
  series,
  type Sample,
} from "./stats";

function stats(containers: [string, number][], requests = 0, fiveXX = 0, extra: Partial<AppStats> = {}): AppStats {
  return {
    app: "web",
    containers: containers.map(([name, cpu_seconds]) => ({ name, cpu_seconds, memory_bytes: 10 << 20 })),
    cpu_seconds: containers.reduce((n, [, c]) => n + c, 0),
    memory_bytes: containers.length * (10 << 20),
    proxy: {
      requests,
      by_class: { "1xx": 0, "2xx": requests - fiveXX, "3xx": 0, "4xx": 0, "5xx": fiveXX },
      received_bytes: 0,
      sent_bytes: 0,
      upstream_errors: { connect: 0, timeout: 0, reset: 0 },
    },
    ...extra,
  };
}
const at = (seconds: number, s: AppStats): Sample => ({ at: seconds * 1000, stats: s });

describe("rate", () => {
  it("is the difference over the seconds between the readings", () => {
    expect(rate(10, 15, 5)).toBe(1);
    expect(rate(3, 3, 5)).toBe(0);
  });
  it("is unknown when the counter went back, a reading is missing or no time passed", () => {
    expect(rate(100, 2, 5)).toBeNull();
    expect(rate(undefined, 2, 5)).toBeNull();
    expect(rate(1, null, 5)).toBeNull();
    expect(rate(1, 2, 0)).toBeNull();
    expect(rate(1, 2, -5)).toBeNull();
  });
});

describe("cpuPercent", () => {
  it("is CPU seconds used per wall second, in % of one CPU", () => {
    // 0.5 CPU seconds in 5 s: 10 % of one CPU.
    expect(cpuPercent(at(0, stats([["web-1", 2]])), at(5, stats([["web-1", 2.5]])))).toBeCloseTo(10);
    // Two containers each busy on a whole CPU: 200 %.
    expect(cpuPercent(at(0, stats([["a", 0], ["b", 0]])), at(5, stats([["a", 5], ["b", 5]])))).toBeCloseTo(200);
  });

  it("never shows a negative use when a new deployment replaces the container", () => {
    // The old container had used 120 s; the new one starts from zero under a new name.
    const before = at(0, stats([["web-old", 120]]));
    const after = at(5, stats([["web-new", 0.3]]));
    expect(cpuPercent(before, after)).toBeNull();
    // The total fell from 120 to 0.3: by totals alone it would be -2394 %.
    expect(after.stats.cpu_seconds! - before.stats.cpu_seconds!).toBeLessThan(0);
  });

  it("never shows a negative use when a container of the same name starts again", () => {
    expect(cpuPercent(at(0, stats([["web", 50]])), at(5, stats([["web", 1]])))).toBeNull();
    expect(containerCpuPercent(at(0, stats([["web", 50]])), at(5, stats([["web", 1]])), "web")).toBeNull();
  });

  it("counts only the containers that ran through the interval while two overlap", () => {
    // Blue-green switch: the new container appears next to the old one, then the old goes.
    const a = at(0, stats([["old", 100]]));
    const b = at(5, stats([["old", 100.5], ["new", 0.2]]));
    const c = at(10, stats([["new", 0.7]]));
    expect(cpuPercent(a, b)).toBeCloseTo(10);
    expect(cpuPercent(b, c)).toBeCloseTo(10);
    for (const v of series([a, b, c], cpuPercent)) if (v != null) expect(v).toBeGreaterThanOrEqual(0);
  });

  it("is unknown when the engine cannot report, or no container runs", () => {
    const none: Partial<AppStats> = { cpu_seconds: undefined, memory_bytes: undefined, unavailable: "rootless Podman on cgroups v1" };
    expect(cpuPercent(at(0, stats([], 0, 0, none)), at(5, stats([], 0, 0, none)))).toBeNull();
    expect(cpuPercent(at(0, stats([])), at(5, stats([])))).toBeNull();
    expect(cpuPercent(at(5, stats([["web", 1]])), at(5, stats([["web", 2]])))).toBeNull();
  });
});

describe("traffic", () => {
  it("gives requests per second, and nothing after Rivetr restarted", () => {
    expect(requestsPerSecond(at(0, stats([], 100)), at(5, stats([], 150)))).toBe(10);
    expect(requestsPerSecond(at(0, stats([], 100)), at(5, stats([], 3)))).toBeNull();
  });
  it("counts new 5xx answers per interval", () => {
    expect(newServerErrors(at(0, stats([], 10, 2)), at(5, stats([], 20, 5)))).toBe(3);
    expect(newServerErrors(at(0, stats([], 10, 2)), at(5, stats([], 1, 0)))).toBeNull();
  });
});

describe("history", () => {
  it("keeps the last samples only, with no value for the first", () => {
    let h: Sample[] = [];
    for (let i = 0; i < 70; i++) h = appendSample(h, at(i * 5, stats([["web", i]])), 60);
    expect(h).toHaveLength(60);
    expect(h[0]?.at).toBe(10 * 5000);
    const s = series(h, cpuPercent);
    expect(s[0]).toBeNull();
    expect(s[1]).toBeCloseTo(20);
  });
  it("shows a memory limit only when the app sets one", () => {
    const s = stats([["a", 0], ["b", 0]]);
    // Podman on a container without a limit: the host's memory.
    s.containers.forEach((c) => (c.memory_limit_bytes = 24 << 30));
    expect(memoryLimit(s, null)).toBeNull();
    s.containers.forEach((c) => (c.memory_limit_bytes = 256 << 20));
    expect(memoryLimit(s, 256 << 20)).toBe(512 << 20);
    expect(memoryLimit(stats([]), 256 << 20)).toBeNull();
  });
});
