import { describe, expect, it } from "vitest";
import { LogBuffer } from "./logbuffer";

describe("LogBuffer", () => {
  it("keeps lines in order and drops a repeat after a reconnect", () => {
    const b = new LogBuffer();
    for (let i = 1; i <= 5; i++) expect(b.push({ id: i, stream: "build", line: `step ${i}` })).toBe(true);
    // A stream resumed from an older id sends 4 and 5 again: they are not shown twice.
    expect(b.push({ id: 4, stream: "build", line: "step 4" })).toBe(false);
    expect(b.push({ id: 5, stream: "build", line: "step 5" })).toBe(false);
    expect(b.push({ id: 6, stream: "rivetr", line: "switched" })).toBe(true);
    expect(b.lines.map((l) => l.id)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(b.lastId).toBe(6);
    b.end("running");
    expect(b.ended).toBe("running");
  });

  it("numbers lines that have no id (an app's output)", () => {
    const b = new LogBuffer();
    b.push({ stream: "stdout", line: "a" });
    b.push({ stream: "stderr", line: "a" });
    expect(b.lines).toEqual([
      { id: 1, stream: "stdout", line: "a" },
      { id: 2, stream: "stderr", line: "a" },
    ]);
  });

  it("takes 10,000 lines quickly", () => {
    const b = new LogBuffer();
    const t = performance.now();
    for (let i = 1; i <= 10_000; i++) b.push({ id: i, stream: "build", line: `line ${i} `.repeat(8) });
    expect(b.lines.length).toBe(10_000);
    expect(performance.now() - t).toBeLessThan(200);
  });
});
