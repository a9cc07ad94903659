import { useCallback, useEffect, useLayoutEffect, useRef, useState } from "react";
import type { ViewLine } from "@/lib/logbuffer";
import { cn } from "@/lib/utils";

/** Pixels per line: fixed, so only the lines in view need to exist in the page. */
export const ROW_HEIGHT = 20;
/** Lines rendered above and below the visible ones, for smooth scrolling. */
const OVERSCAN = 20;

const STREAM_CLASS: Record<string, string> = {
  rivetr: "text-teal-300",
  git: "text-sky-300",
  health: "text-amber-200",
  stderr: "text-red-300",
};

/** A log of any length: only the visible lines are in the DOM. It keeps to the newest line
 * while the reader is at the bottom, and stays put when they scroll up to read. */
export function LogViewer({
  lines,
  count,
  label,
  className,
}: {
  lines: readonly ViewLine[];
  /** How many of `lines` to show (the buffer grows in place; this tells React it changed). */
  count: number;
  label: string;
  className?: string;
}) {
  const box = useRef<HTMLDivElement>(null);
  const [top, setTop] = useState(0);
  const [height, setHeight] = useState(480);
  const stick = useRef(true);

  const onScroll = useCallback(() => {
    const el = box.current;
    if (!el) return;
    setTop(el.scrollTop);
    stick.current = el.scrollTop + el.clientHeight >= el.scrollHeight - ROW_HEIGHT * 2;
  }, []);

  useEffect(() => {
    const el = box.current;
    if (!el || typeof ResizeObserver === "undefined") return;
    const ro = new ResizeObserver(() => {
      setHeight(el.clientHeight || 480);
      // A reader following the newest line keeps following it when the box changes size.
      if (stick.current) el.scrollTop = el.scrollHeight;
    });
    ro.observe(el);
    return () => ro.disconnect();
  }, []);

  useLayoutEffect(() => {
    const el = box.current;
    if (el && stick.current) {
      el.scrollTop = el.scrollHeight;
      setTop(el.scrollTop);
    }
  }, [count]);

  const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - OVERSCAN);
  const last = Math.min(count, Math.ceil((top + height) / ROW_HEIGHT) + OVERSCAN);
  const shown = lines.slice(first, last);

  return (
    <div
      ref={box}
      onScroll={onScroll}
      role="log"
      aria-label={label}
      aria-live="off"
      tabIndex={0}
      data-lines={count}
      className={cn(
        "relative h-[60vh] min-h-64 overflow-auto rounded-lg bg-log font-mono text-xs text-log-foreground focus-visible:outline-none focus-visible:ring-2 focus-visible:ring-ring",
        className,
      )}
    >
      <div style={{ height: count * ROW_HEIGHT }} className="relative min-w-max">
        <div style={{ transform: `translateY(${first * ROW_HEIGHT}px)` }} className="absolute left-0 top-0 min-w-full">
          {shown.map((l) => (
            <div key={l.id} className="flex h-5 items-center gap-3 whitespace-pre px-3 leading-5" data-line-id={l.id}>
              <span className={cn("w-12 shrink-0 select-none", STREAM_CLASS[l.stream] ?? "text-neutral-300")}>{l.stream}</span>
              <span>{l.line}</span>
            </div>
          ))}
        </div>
      </div>
      {count === 0 && <p className="p-3 text-neutral-300">No output yet.</p>}
    </div>
  );
}
