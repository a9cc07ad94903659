import { afterEach, describe, expect, it } from "vitest";
import { act, cleanup, render } from "@testing-library/react";
import { useLogStream } from "./useLogStream";

afterEach(cleanup);

/** The browser's side of a log stream: what `useLogStream` listens to. */
class Stream extends EventTarget {
  onopen: ((e: Event) => unknown) | null = null;
  onerror: ((e: Event) => unknown) | null = null;
  readonly CLOSED = 2;
  readyState = 0;
  constructor(readonly url: string) {
    super();
  }
  close() {
    this.readyState = 2;
  }
  line(id: number, line: string) {
    this.dispatchEvent(new MessageEvent("line", { data: JSON.stringify({ id, stream: "build", line }) }));
  }
  end(status: string) {
    this.dispatchEvent(new MessageEvent("end", { data: JSON.stringify({ status }) }));
  }
}

const frame = () => new Promise((r) => requestAnimationFrame(() => r(null)));

function follow(url: string, resumable: boolean) {
  const streams: Stream[] = [];
  const seen: { count: number; state: string; ended: string | null; lines: string[] } = { count: 0, state: "", ended: null, lines: [] };
  function Probe({ u }: { u: string }) {
    // A new array and a new opener on every render, as a careless caller would pass.
    const log = useLogStream(u, ["line"], resumable, (x) => {
      const s = new Stream(x);
      streams.push(s);
      return s as unknown as EventSource;
    });
    seen.count = log.count;
    seen.state = log.state;
    seen.ended = log.ended;
    seen.lines = log.lines.slice(0, log.count).map((l) => l.line);
    return null;
  }
  const view = render(<Probe u={url} />);
  return { streams, seen, rerender: (u: string) => view.rerender(<Probe u={u} />) };
}

describe("useLogStream", () => {
  it("keeps every line once across a reconnection that repeats lines, and stops at the end", async () => {
    const { streams, seen, rerender } = follow("/a", true);
    const s = streams[0]!;
    await act(async () => {
      s.onopen?.(new Event("open"));
      s.line(1, "one");
      s.line(2, "two");
      await frame();
    });
    expect(seen).toMatchObject({ count: 2, state: "open" });
    rerender("/a");
    expect(streams).toHaveLength(1);
    await act(async () => {
      s.onerror?.(new Event("error"));
    });
    expect(seen.state).toBe("connecting");
    await act(async () => {
      s.onopen?.(new Event("open"));
      s.line(2, "two");
      s.line(3, "three");
      s.end("running");
    });
    expect(seen).toMatchObject({ count: 3, state: "ended", ended: "running", lines: ["one", "two", "three"] });
  });

  it("starts afresh for a new URL, and marks a stream that cannot resume as dropped", async () => {
    const { streams, seen, rerender } = follow("/a", false);
    await act(async () => {
      streams[0]!.line(1, "old");
      await frame();
    });
    expect(seen.count).toBe(1);
    rerender("/b");
    expect(streams).toHaveLength(2);
    expect(streams[0]!.readyState).toBe(2);
    expect(seen).toMatchObject({ count: 0, state: "connecting" });
    await act(async () => {
      streams[1]!.onerror?.(new Event("error"));
    });
    expect(seen.state).toBe("dropped");
    expect(streams[1]!.readyState).toBe(2);
  });
});
