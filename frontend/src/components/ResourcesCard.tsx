import type { ReactNode } from "react";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Alert } from "@/components/ui/alert";
import { ErrorNote } from "@/components/ErrorNote";
import { Sparkline } from "@/components/Sparkline";
import {
  POLL_MS,
  SAMPLES,
  containerCpuPercent,
  cpuPercent,
  duration,
  memoryLimit,
  newServerErrors,
  perSecond,
  percent,
  requestsPerSecond,
  series,
  serverErrors,
  useAppStats,
  type Sample,
} from "@/lib/stats";
import { bytes } from "@/lib/utils";

const count = (v: number) => v.toLocaleString("en");

/** An app's CPU, memory and traffic, asked every few seconds while the page is visible,
 * with a small chart of the last readings of each. */
export function ResourcesCard({ app, memoryLimitBytes }: { app: string; memoryLimitBytes: number | null | undefined }) {
  const stats = useAppStats(app);
  const history = stats.data ?? [];
  const cur = history.at(-1);
  const prev = history.at(-2);
  return (
    <Card data-testid="resources">
      <CardHeader>
        <CardTitle>Resources</CardTitle>
        <CardDescription>
          Updated every {POLL_MS / 1000} s while this page is open; the charts show the last {SAMPLES} readings. Traffic is
          counted since Rivetr started.
        </CardDescription>
      </CardHeader>
      <CardContent className="grid gap-4">
        <ErrorNote error={stats.error} />
        {!cur && stats.isPending && <p className="text-sm text-muted-foreground">Loading…</p>}
        {cur && <Figures history={history} cur={cur} prev={prev} configuredLimit={memoryLimitBytes} />}
      </CardContent>
    </Card>
  );
}

function Figures({
  history,
  cur,
  prev,
  configuredLimit,
}: {
  history: Sample[];
  cur: Sample;
  prev: Sample | undefined;
  configuredLimit: number | null | undefined;
}) {
  const s = cur.stats;
  const reported = s.unavailable == null && s.cpu_seconds != null;
  const cpu = prev && reported ? cpuPercent(prev, cur) : null;
  const rps = prev ? requestsPerSecond(prev, cur) : null;
  const limit = memoryLimit(s, configuredLimit);
  const errors = serverErrors(s);
  const p95 = s.proxy.p95_duration_seconds;
  const none = s.containers.length === 0;
  const waiting = "Measuring…";
  return (
    <>
      {s.unavailable && (
        <Alert data-testid="stats-unavailable">
          CPU and memory are not reported: {s.unavailable}
        </Alert>
      )}
      <dl className="grid grid-cols-1 gap-3 sm:grid-cols-2 lg:grid-cols-5">
        <Metric
          id="cpu"
          label="CPU"
          value={cpu}
          shown={!reported ? "Not reported" : none ? "—" : cpu == null ? waiting : percent(cpu)}
          note={!reported ? "see the note above" : none ? "no container running" : "of one CPU"}
          values={reported ? series(history, cpuPercent) : []}
          format={percent}
          summary={!reported ? "CPU use: not reported" : cpu == null ? "CPU use: no reading yet" : `CPU use: ${percent(cpu)} of one CPU`}
        />
        <Metric
          id="memory"
          label="Memory"
          value={reported ? (s.memory_bytes ?? null) : null}
          shown={!reported ? "Not reported" : none ? "—" : bytes(s.memory_bytes ?? 0)}
          note={!reported ? "see the note above" : none ? "no container running" : limit != null ? `of ${bytes(limit)} limit` : "no limit set"}
          values={reported ? history.map((h) => h.stats.memory_bytes ?? null) : []}
          format={bytes}
          summary={
            !reported
              ? "Memory: not reported"
              : `Memory: ${bytes(s.memory_bytes ?? 0)}${limit != null ? ` of ${bytes(limit)} limit` : ""}`
          }
        />
        <Metric
          id="requests"
          label="Requests"
          value={rps}
          shown={rps == null ? waiting : perSecond(rps)}
          note={`${count(s.proxy.requests)} in all`}
          values={series(history, requestsPerSecond)}
          format={perSecond}
          summary={rps == null ? "Requests per second: no reading yet" : `Requests: ${perSecond(rps)}`}
        />
        <Metric
          id="5xx"
          label="5xx answers"
          value={errors}
          shown={count(errors)}
          note={prev ? `${count(newServerErrors(prev, cur) ?? 0)} in the last ${Math.round((cur.at - prev.at) / 1000)} s` : "in all"}
          values={series(history, newServerErrors)}
          format={(v) => `${count(v)} per reading`}
          summary={`5xx answers: ${count(errors)} in all`}
          alarm={errors > 0}
        />
        <Metric
          id="p95"
          label="p95 time to headers"
          value={p95 ?? null}
          shown={p95 != null ? duration(p95) : "—"}
          note={
            p95 != null
              ? `mean ${duration(s.proxy.mean_duration_seconds ?? 0)}`
              : s.proxy.requests > 0
                ? "slower than the longest bucket"
                : "no answers yet"
          }
          values={history.map((h) => h.stats.proxy.p95_duration_seconds ?? null)}
          format={duration}
          summary={p95 != null ? `95 % of answers within ${duration(p95)}` : "p95 time to headers: no answers yet"}
        />
      </dl>
      <Containers history={history} cur={cur} prev={prev} limited={configuredLimit != null} />
    </>
  );
}

function Metric({
  id,
  label,
  value,
  shown,
  note,
  values,
  format,
  summary,
  alarm = false,
}: {
  id: string;
  label: string;
  value: number | null;
  shown: ReactNode;
  note: string;
  values: (number | null)[];
  format: (v: number) => string;
  summary: string;
  alarm?: boolean;
}) {
  return (
    <div className="grid min-w-0 content-start gap-1 rounded-lg border p-3" data-metric={id} data-value={value ?? ""}>
      <dt className="text-xs font-medium text-muted-foreground">{label}</dt>
      <dd className="grid gap-1">
        <span className={alarm ? "text-xl font-semibold tabular-nums text-destructive" : "text-xl font-semibold tabular-nums"}>
          {shown}
        </span>
        <span className="text-xs text-muted-foreground">{note}</span>
        <Sparkline values={values} label={summary} format={format} className={alarm ? "text-destructive" : undefined} />
      </dd>
    </div>
  );
}

function Containers({
  history,
  cur,
  prev,
  limited,
}: {
  history: Sample[];
  cur: Sample;
  prev: Sample | undefined;
  limited: boolean;
}) {
  const s = cur.stats;
  if (s.containers.length === 0) {
    return (
      <p className="text-sm text-muted-foreground">
        {s.unavailable ? "The engine does not list the containers' use." : "No container is running."}
      </p>
    );
  }
  return (
    <div className="grid gap-2">
      <h3 className="text-sm font-medium">Containers</h3>
      <ul className="grid gap-2" data-testid="stats-containers" data-samples={history.length}>
        {s.containers.map((c) => {
          const cpu = containerCpuPercent(prev, cur, c.name);
          return (
            <li key={c.name} className="grid gap-1 rounded-lg border p-3 text-sm sm:flex sm:flex-wrap sm:items-center sm:gap-x-4">
              <span className="break-all font-mono text-xs">{c.name}</span>
              <span className="flex flex-wrap gap-x-4 text-muted-foreground sm:ml-auto">
                <span>CPU {cpu == null ? "—" : percent(cpu)}</span>
                <span>
                  Memory {bytes(c.memory_bytes)}
                  {limited && c.memory_limit_bytes != null && ` of ${bytes(c.memory_limit_bytes)}`}
                </span>
                <span>{c.cpu_seconds.toFixed(1)} CPU s in all</span>
              </span>
            </li>
          );
        })}
      </ul>
    </div>
  );
}
