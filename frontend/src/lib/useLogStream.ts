import { useEffect, useMemo, useRef, useState } from "react";
import { LogBuffer } from "./logbuffer";

export type StreamState = "connecting" | "open" | "ended" | "dropped";

interface Snapshot {
  /** The stream this snapshot is of: a snapshot of an earlier URL reads as a fresh start. */
  url: string | null;
  count: number;
  state: StreamState;
  ended: string | null;
}

const openEventSource = (u: string) => new EventSource(u);

/** Follows a Server-Sent Events log. `resumable` streams (a deployment's log: every line has
 * an `id:`) are left to the browser to reconnect, which sends `Last-Event-ID` and so loses
 * and repeats nothing; the app's output is not, and is closed on a drop instead (reopening
 * would send its tail again). Renders at most once per animation frame. */
export function useLogStream(
  url: string | null,
  events: readonly string[],
  resumable: boolean,
  open: (url: string) => EventSource = openEventSource,
) {
  // The lines live outside React state (a burst of thousands costs one render per frame);
  // a new URL gets a new buffer.
  const buffer = useMemo(() => new LogBuffer(url), [url]);
  const [snap, setSnap] = useState<Snapshot>({ url, count: 0, state: "connecting", ended: null });
  const current: Snapshot = snap.url === url ? snap : { url, count: 0, state: "connecting", ended: null };
  // The event names and the opener are read when the stream opens; a caller passing a new
  // array or function on every render must not reconnect the stream.
  const eventNames = events.join(" ");
  const opener = useRef(open);
  useEffect(() => {
    opener.current = open;
  });

  useEffect(() => {
    if (!url) return;
    const source = opener.current(url);
    const update = (change: Partial<Snapshot>) =>
      setSnap((s) => ({ ...(s.url === url ? s : { url, count: 0, state: "connecting" as const, ended: null }), ...change }));
    let frame = 0;
    const flush = () => {
      frame = 0;
      update({ count: buffer.lines.length });
    };
    const schedule = () => {
      if (!frame) frame = requestAnimationFrame(flush);
    };
    source.onopen = () => update({ state: "open" });
    for (const name of eventNames.split(" ")) {
      source.addEventListener(name, (e) => {
        const data = (e as MessageEvent<string>).data;
        if (resumable) {
          try {
            const parsed = JSON.parse(data) as { id: number; stream: string; line: string };
            if (buffer.push(parsed)) schedule();
          } catch {
            /* not a line */
          }
        } else if (buffer.push({ stream: name, line: data })) {
          schedule();
        }
      });
    }
    source.addEventListener("end", (e) => {
      let status = "finished";
      try {
        status = (JSON.parse((e as MessageEvent<string>).data) as { status: string }).status;
      } catch {
        /* keep the default */
      }
      buffer.end(status);
      source.close();
      if (frame) cancelAnimationFrame(frame);
      frame = 0;
      update({ count: buffer.lines.length, ended: status, state: "ended" });
    });
    source.onerror = () => {
      if (!resumable || source.readyState === source.CLOSED) {
        source.close();
        setSnap((s) => (s.url === url && s.state === "ended" ? s : { ...s, url, state: "dropped" }));
      } else {
        update({ state: "connecting" });
      }
    };
    return () => {
      source.close();
      if (frame) cancelAnimationFrame(frame);
    };
  }, [url, resumable, eventNames, buffer]);

  return { lines: buffer.lines, count: current.count, state: current.state, ended: current.ended };
}
