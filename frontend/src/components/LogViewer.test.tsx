import { afterEach, describe, expect, it } from "vitest";
import { act, cleanup, render } from "@testing-library/react";
import { LogViewer, ROW_HEIGHT } from "./LogViewer";
import type { ViewLine } from "@/lib/logbuffer";

afterEach(cleanup);

function lines(n: number): ViewLine[] {
  return Array.from({ length: n }, (_, i) => ({ id: i + 1, stream: i % 7 ? "build" : "rivetr", line: `#${i + 1} compiling module ${i}` }));
}

describe("LogViewer", () => {
  it("shows a log of 10,000 lines with only the visible ones in the page", () => {
    const all = lines(10_000);
    const t = performance.now();
    const { getByRole } = render(<LogViewer lines={all} count={all.length} label="Log" />);
    const elapsed = performance.now() - t;
    const log = getByRole("log", { name: "Log" });
    expect(log.dataset.lines).toBe("10000");
    const rows = log.querySelectorAll("[data-line-id]");
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.length).toBeLessThan(200);
    // The spacer is as tall as all the lines, so the scroll bar is true to the log's length.
    const spacer = log.firstElementChild as HTMLElement;
    expect(spacer.style.height).toBe(`${10_000 * ROW_HEIGHT}px`);
    expect(elapsed).toBeLessThan(1000);
  });

  it("renders the lines around where the reader scrolled to, and grows without re-rendering all", () => {
    const all = lines(10_000);
    const { getByRole, rerender } = render(<LogViewer lines={all} count={100} label="Log" />);
    const log = getByRole("log");
    expect(log.querySelector('[data-line-id="1"]')).not.toBeNull();
    rerender(<LogViewer lines={all} count={10_000} label="Log" />);
    // (The page layout, and so following the newest line, is checked in Chromium by the
    // end-to-end test; happy-dom has no layout.)
    act(() => {
      log.scrollTop = 5000 * ROW_HEIGHT;
      log.dispatchEvent(new Event("scroll"));
    });
    expect(log.querySelector('[data-line-id="5001"]')).not.toBeNull();
    expect(log.querySelector('[data-line-id="1"]')).toBeNull();
    expect(log.querySelectorAll("[data-line-id]").length).toBeLessThan(200);
  });

  it("says when there is no output yet", () => {
    const { getByText } = render(<LogViewer lines={[]} count={0} label="Log" />);
    expect(getByText("No output yet.")).toBeTruthy();
  });
});
