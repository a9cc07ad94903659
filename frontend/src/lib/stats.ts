// An app's resource figures over time: GET /api/apps/{app}/stats asked every few seconds
// while the page is visible, the answers kept (the last SAMPLES) with the time each came,
// and the rates worked out from two answers in a row. The API gives cumulative counters
// (CPU seconds, requests, answers by class): a rate is a difference over the wall time
// between two answers. A counter that went backwards (a new deployment's container starts
// from zero, Rivetr restarted) gives no rate for that interval: never a negative one.
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { enc, get, type AppStats } from "./api";

export const POLL_MS = 5_000;
export const SAMPLES = 60;

export interface Sample {
  /** When the answer arrived, in ms (Date.now()). */
  at: number;
  stats: AppStats;
}

/** `history` with `sample` added at the end, at most `keep` long. */
export function appendSample(history: readonly Sample[], sample: Sample, keep = SAMPLES): Sample[] {
  const next = [...history, sample];
  return next.length > keep ? next.slice(next.length - keep) : next;
}

/** The per-second rate of a counter between two readings `seconds` apart; `null` when it
 * cannot be known: a reading missing, no time between them, or the counter went back. */
export function rate(before: number | null | undefined, after: number | null | undefined, seconds: number): number | null {
  if (before == null || after == null || !(seconds > 0)) return null;
  const delta = after - before;
  if (delta < 0 || !Number.isFinite(delta)) return null;
  return delta / seconds;
}

/** CPU use between two samples, as a percentage of one CPU (200 = two CPUs busy).
 * Worked out container by container (by name), so that a container replaced by a new
 * deployment, whose counter starts again from zero, is not taken for negative use; `null`
 * when the engine cannot say or no container ran through the whole interval. */
export function cpuPercent(prev: Sample, cur: Sample): number | null {
  const seconds = (cur.at - prev.at) / 1000;
  if (prev.stats.cpu_seconds == null || cur.stats.cpu_seconds == null || !(seconds > 0)) return null;
  const before = new Map(prev.stats.containers.map((c) => [c.name, c.cpu_seconds]));
  let used = 0;
  let common = 0;
  for (const c of cur.stats.containers) {
    const r = rate(before.get(c.name), c.cpu_seconds, seconds);
    if (r == null) continue;
    used += r;
    common += 1;
  }
  return common > 0 ? used * 100 : null;
}

/** One container's CPU use between two samples, in % of one CPU, as `cpuPercent`. */
export function containerCpuPercent(prev: Sample | undefined, cur: Sample, name: string): number | null {
  if (!prev) return null;
  const a = prev.stats.containers.find((c) => c.name === name);
  const b = cur.stats.containers.find((c) => c.name === name);
  const r = rate(a?.cpu_seconds, b?.cpu_seconds, (cur.at - prev.at) / 1000);
  return r == null ? null : r * 100;
}

/** Requests per second through the proxy between two samples. */
export function requestsPerSecond(prev: Sample, cur: Sample): number | null {
  return rate(prev.stats.proxy.requests, cur.stats.proxy.requests, (cur.at - prev.at) / 1000);
}

/** 5xx answers since Rivetr started. */
export function serverErrors(s: AppStats): number {
  return s.proxy.by_class["5xx"] ?? 0;
}

/** 5xx answers that came between two samples (`null` after a restart of Rivetr). */
export function newServerErrors(prev: Sample, cur: Sample): number | null {
  const d = serverErrors(cur.stats) - serverErrors(prev.stats);
  return d < 0 ? null : d;
}

/** The app's memory limit over its running containers: `configured` (the app's setting,
 * per container) times their number; `null` when the app sets none. The engine's own
 * figure is not taken alone: Podman reports the host's memory for a container without a
 * limit, which would read as a limit nobody set. */
export function memoryLimit(s: AppStats, configured: number | null | undefined): number | null {
  if (configured == null || s.containers.length === 0) return null;
  return s.containers.reduce((sum, c) => sum + (c.memory_limit_bytes ?? configured), 0);
}

/** A series per sample (`null` where unknown), from a function of the sample before and
 * the sample: the first sample has no value. */
export function series(history: readonly Sample[], f: (prev: Sample, cur: Sample) => number | null): (number | null)[] {
  return history.map((s, i) => {
    const prev = history[i - 1];
    return prev ? f(prev, s) : null;
  });
}

/** "3.2 %", with more digits for small values. */
export function percent(v: number): string {
  return `${v < 10 ? v.toFixed(1) : v.toFixed(0)} %`;
}

/** "0.4/s", "12/s". */
export function perSecond(v: number): string {
  return `${v < 10 ? v.toFixed(1) : v.toFixed(0)}/s`;
}

/** "250 ms", "1.5 s". */
export function duration(seconds: number): string {
  return seconds < 1 ? `${Math.round(seconds * 1000)} ms` : `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
}

/** The app's samples: the query's data is the whole history, each answer appended to the
 * one before. Asked every POLL_MS while the page is visible (TanStack Query stops the
 * interval in a hidden tab). */
export function useAppStats(app: string) {
  const client = useQueryClient();
  const queryKey = ["app-stats", app];
  return useQuery({
    queryKey,
    queryFn: async () => {
      const stats = await get<AppStats>(`/api/apps/${enc(app)}/stats`);
      const history = client.getQueryData<Sample[]>(queryKey) ?? [];
      return appendSample(history, { at: Date.now(), stats });
    },
    refetchInterval: POLL_MS,
    refetchIntervalInBackground: false,
    staleTime: 0,
  });
}
