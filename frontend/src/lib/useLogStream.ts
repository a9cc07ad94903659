import { useEffect, useRef, useState } from "react";
import { LogBuffer } from "./logbuffer";

export type StreamState = "connecting" | "open" | "ended" | "dropped";

/** Follows a Server-Sent Events log. `resumable` streams (a deployment's log: every line has
 * an `id:`) are left to the browser to reconnect, which sends `Last-Event-ID` and so loses
 * and repeats nothing; the app's output is not, and is closed on a drop instead (reopening
 * would send its tail again). Renders at most once per animation frame. */
export function useLogStream(
  url: string | null,
  events: string[],
  resumable: boolean,
  open: (url: string) => EventSource = (u) => new EventSource(u),
) {
  const buffer = useRef(new LogBuffer());
  const [count, setCount] = useState(0);
  const [state, setState] = useState<StreamState>("connecting");
  const [ended, setEnded] = useState<string | null>(null);

  useEffect(() => {
    if (!url) return;
    buffer.current = new LogBuffer();
    setCount(0);
    setEnded(null);
    setState("connecting");
    const source = open(url);
    let frame = 0;
    const flush = () => {
      frame = 0;
      setCount(buffer.current.lines.length);
    };
    const schedule = () => {
      if (!frame) frame = requestAnimationFrame(flush);
    };
    source.onopen = () => setState("open");
    for (const name of events) {
      source.addEventListener(name, (e) => {
        const data = (e as MessageEvent<string>).data;
        if (resumable) {
          try {
            const parsed = JSON.parse(data) as { id: number; stream: string; line: string };
            if (buffer.current.push(parsed)) schedule();
          } catch {
            /* not a line */
          }
        } else if (buffer.current.push({ stream: name, line: data })) {
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
      buffer.current.end(status);
      source.close();
      flush();
      setEnded(status);
      setState("ended");
    });
    source.onerror = () => {
      if (!resumable || source.readyState === EventSource.CLOSED) {
        source.close();
        setState((s) => (s === "ended" ? s : "dropped"));
      } else {
        setState("connecting");
      }
    };
    return () => {
      source.close();
      if (frame) cancelAnimationFrame(frame);
    };
  }, [url, resumable]);

  return { lines: buffer.current.lines, count, state, ended };
}
