import { cn } from "@/lib/utils";

const W = 120;
const H = 32;
const PAD = 2;

/** The SVG path of a series: one segment per run of known values (a `null` breaks the line),
 * scaled from 0 (or the lowest value, if below) to the highest. Exported for its test. */
export function sparkPath(values: readonly (number | null)[], width = W, height = H): string {
  const known = values.filter((v): v is number => v != null && Number.isFinite(v));
  if (known.length === 0) return "";
  const lo = Math.min(0, ...known);
  const hi = Math.max(...known);
  const span = hi - lo || 1;
  const step = values.length > 1 ? (width - 2 * PAD) / (values.length - 1) : 0;
  let d = "";
  let pen = false;
  values.forEach((v, i) => {
    if (v == null || !Number.isFinite(v)) {
      pen = false;
      return;
    }
    const x = PAD + i * step;
    const y = height - PAD - ((v - lo) / span) * (height - 2 * PAD);
    d += `${pen ? "L" : "M"}${x.toFixed(1)} ${y.toFixed(1)}`;
    pen = true;
  });
  return d;
}

/** A small line chart of recent values. Screen readers get `label` (the latest value) and,
 * as hidden text, the range over the samples shown (`format` writes a value). */
export function Sparkline({
  values,
  label,
  format,
  className,
}: {
  values: readonly (number | null)[];
  label: string;
  format: (v: number) => string;
  className?: string;
}) {
  const known = values.filter((v): v is number => v != null && Number.isFinite(v));
  const d = sparkPath(values);
  // A lone point draws no line: a dot shows it.
  const lone = known.length === 1 ? d.match(/^M([\d.]+) ([\d.]+)$/) : null;
  return (
    <div className={cn("text-primary", className)}>
      <svg role="img" aria-label={label} viewBox={`0 0 ${W} ${H}`} preserveAspectRatio="none" className="block h-8 w-full">
        <line x1={0} y1={H - 0.5} x2={W} y2={H - 0.5} className="stroke-border" strokeWidth={1} vectorEffect="non-scaling-stroke" />
        {d && (
          <path
            d={d}
            fill="none"
            stroke="currentColor"
            strokeWidth={1.5}
            strokeLinejoin="round"
            strokeLinecap="round"
            vectorEffect="non-scaling-stroke"
          />
        )}
        {lone && <circle cx={lone[1]} cy={lone[2]} r={1.5} fill="currentColor" />}
      </svg>
      <span className="sr-only">
        {known.length > 0
          ? `Over the last ${known.length} readings: lowest ${format(Math.min(...known))}, highest ${format(Math.max(...known))}.`
          : "No readings yet."}
      </span>
    </div>
  );
}
