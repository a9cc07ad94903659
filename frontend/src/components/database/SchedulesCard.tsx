import { useState } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, ApiError, enc, fieldMessage, get, type Backup, type ManagedDatabase, type Schedule, type ScheduleBody } from "@/lib/api";
import { Button } from "@/components/ui/button";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Input } from "@/components/ui/input";
import { Field } from "@/components/ui/field";
import { ErrorNote } from "@/components/ErrorNote";
import { ago } from "@/lib/utils";
import { DestinationSelect } from "./DestinationSelect";

/** Backup schedules: cron patterns (UTC) with a destination and what to keep. */
export function SchedulesCard({ db }: { db: ManagedDatabase }) {
  const client = useQueryClient();
  const path = `/api/databases/${enc(db.name)}/schedules`;
  const schedules = useQuery({ queryKey: ["schedules", db.name], queryFn: () => get<Schedule[]>(path) });
  const refresh = () => {
    void client.invalidateQueries({ queryKey: ["schedules", db.name] });
    void client.invalidateQueries({ queryKey: ["backups", db.name] });
  };
  const run = useMutation({
    mutationFn: (id: number) => api<Backup>("POST", `${path}/${id}/run`),
    onSuccess: refresh,
  });
  const remove = useMutation({
    mutationFn: (id: number) => api<void>("DELETE", `${path}/${id}`),
    onSuccess: refresh,
  });
  return (
    <Card>
      <CardHeader>
        <CardTitle>Schedules</CardTitle>
        <CardDescription>
          Times are UTC. What a schedule keeps applies to its own good backups, after each one succeeds.
        </CardDescription>
      </CardHeader>
      <CardContent className="grid gap-4">
        <ErrorNote error={schedules.error ?? run.error ?? remove.error} />
        {schedules.data?.length === 0 && <p className="text-sm text-muted-foreground">No schedules.</p>}
        {schedules.data && schedules.data.length > 0 && (
          <ul className="grid gap-2" data-testid="schedules">
            {schedules.data.map((s) => (
              <li key={s.id} className="flex flex-wrap items-center gap-x-4 gap-y-1 rounded-lg border p-3 text-sm" data-schedule={s.id}>
                <code className="font-mono font-medium">{s.cron}</code>
                <span>to {s.destination}</span>
                <span className="text-muted-foreground">keeps {keeps(s)}</span>
                <span className="text-muted-foreground" title={s.next_run_at ?? undefined}>
                  next {when(s.next_run_at)}
                </span>
                <span className="text-muted-foreground" title={s.last_run_at ?? undefined}>
                  ran on schedule {ago(s.last_run_at)}
                </span>
                <span className="flex gap-2 sm:ml-auto">
                  <Button size="sm" variant="outline" onClick={() => run.mutate(s.id)} disabled={run.isPending}>
                    Run now<span className="sr-only"> schedule {s.cron}</span>
                  </Button>
                  <Button size="sm" variant="outline" onClick={() => remove.mutate(s.id)} disabled={remove.isPending}>
                    Remove<span className="sr-only"> schedule {s.cron}</span>
                  </Button>
                </span>
              </li>
            ))}
          </ul>
        )}
        <AddSchedule db={db.name} path={path} />
      </CardContent>
    </Card>
  );
}

function keeps(s: Schedule): string {
  const parts = [s.keep_last != null ? `the last ${s.keep_last}` : null, s.keep_days != null ? `${s.keep_days} days` : null];
  return parts.filter(Boolean).join(" and ") || "everything";
}

/** A time to come, in the reader's time zone (the title has it in UTC). */
function when(iso: string | null | undefined): string {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}

/** A number field's value: a number when it reads as one, else the text as typed, so the
 * API's own check names the field. Empty: none. */
function num(s: string): number | null {
  const t = s.trim();
  if (!t) return null;
  const n = Number(t);
  return Number.isFinite(n) ? n : (t as unknown as number);
}

type ScheduleField = "cron" | "destination" | "keep_last" | "keep_days";
const FIELDS: ScheduleField[] = ["cron", "destination", "keep_last", "keep_days"];

function AddSchedule({ db, path }: { db: string; path: string }) {
  const client = useQueryClient();
  const [cron, setCron] = useState("");
  const [destination, setDestination] = useState("local");
  const [keepLast, setKeepLast] = useState("");
  const [keepDays, setKeepDays] = useState("");
  const add = useMutation({
    mutationFn: (body: ScheduleBody) => api<Schedule>("POST", path, body),
    onSuccess: () => {
      setCron("");
      setKeepLast("");
      setKeepDays("");
      void client.invalidateQueries({ queryKey: ["schedules", db] });
    },
  });
  const e = add.error;
  const field = e instanceof ApiError ? FIELDS.find((f) => f === e.field) : undefined;
  const err = (f: ScheduleField) => (field === f && e ? fieldMessage(e.message) : undefined);
  return (
    <form
      className="grid gap-3 border-t pt-4"
      noValidate
      onSubmit={(ev) => {
        ev.preventDefault();
        add.mutate({ cron: cron.trim(), destination, keep_last: num(keepLast), keep_days: num(keepDays) });
      }}
    >
      <h3 className="text-sm font-semibold">Add a schedule</h3>
      <div className="grid gap-3 sm:grid-cols-2 lg:grid-cols-[2fr_2fr_1fr_1fr_auto] lg:items-start">
        <Field id="schedule-cron" label="Cron (UTC)" hint="minute hour day month weekday: 0 3 * * * is 03:00 daily." error={err("cron")}>
          <Input value={cron} onChange={(ev) => setCron(ev.target.value)} placeholder="0 3 * * *" autoComplete="off" spellCheck={false} />
        </Field>
        <Field id="schedule-destination" label="Destination" error={err("destination")}>
          <DestinationSelect value={destination} onChange={(ev) => setDestination(ev.target.value)} />
        </Field>
        <Field id="schedule-keep-last" label="Keep last" hint="Empty: all." error={err("keep_last")}>
          <Input inputMode="numeric" value={keepLast} onChange={(ev) => setKeepLast(ev.target.value)} />
        </Field>
        <Field id="schedule-keep-days" label="Keep days" hint="Empty: all." error={err("keep_days")}>
          <Input inputMode="numeric" value={keepDays} onChange={(ev) => setKeepDays(ev.target.value)} />
        </Field>
        <Button type="submit" className="lg:mt-5" disabled={!cron.trim() || add.isPending}>
          Add schedule
        </Button>
      </div>
      {!field && <ErrorNote error={e} />}
    </form>
  );
}
