import { useParams } from "react-router";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { api, enc, type ManagedDatabase } from "@/lib/api";
import { engineLabel, useDatabase } from "@/lib/databases";
import { Button } from "@/components/ui/button";
import { StatusBadge } from "@/components/StatusBadge";
import { ErrorNote } from "@/components/ErrorNote";
import { ConnectionCard } from "@/components/database/ConnectionCard";
import { DeleteDatabase } from "@/components/database/DeleteDatabase";
import { BackupsCard } from "@/components/database/BackupsCard";
import { SchedulesCard } from "@/components/database/SchedulesCard";

/** A database: its state and actions, how apps reach it, its backups and their schedules. */
export function DatabasePage() {
  const name = useParams().db ?? "";
  // Keyed by name: a link to another database (a restored copy) starts with fresh forms.
  return <DatabaseView key={name} name={name} />;
}

function DatabaseView({ name }: { name: string }) {
  const db = useDatabase(name);
  if (db.error) return <ErrorNote error={db.error} />;
  if (!db.data) return <p className="text-sm text-muted-foreground">Loading…</p>;
  const d = db.data;
  return (
    <div className="grid gap-4">
      <DatabaseHeader db={d} />
      <ConnectionCard db={d} />
      <BackupsCard db={d} />
      <SchedulesCard db={d} />
    </div>
  );
}

function DatabaseHeader({ db }: { db: ManagedDatabase }) {
  const client = useQueryClient();
  const action = useMutation({
    mutationFn: (what: "start" | "stop" | "restart") => api<ManagedDatabase>("POST", `/api/databases/${enc(db.name)}/${what}`),
    onSuccess: (d) => {
      client.setQueryData(["database", db.name], d);
      void client.invalidateQueries({ queryKey: ["databases"] });
    },
  });
  const pending = action.isPending ? action.variables : undefined;
  return (
    <>
      <div className="flex flex-wrap items-center gap-3">
        <h1 className="break-all text-2xl font-semibold">{db.name}</h1>
        <StatusBadge status={db.status} />
        <span className="text-sm text-muted-foreground">
          {engineLabel(db.engine)} {db.version}
        </span>
        <div className="flex w-full flex-wrap gap-2 sm:ml-auto sm:w-auto">
          {db.stopped ? (
            <Button variant="outline" onClick={() => action.mutate("start")} disabled={action.isPending}>
              {pending === "start" ? "Starting…" : "Start"}
            </Button>
          ) : (
            <Button variant="outline" onClick={() => action.mutate("stop")} disabled={action.isPending}>
              {pending === "stop" ? "Stopping…" : "Stop"}
            </Button>
          )}
          <Button variant="outline" onClick={() => action.mutate("restart")} disabled={action.isPending || db.stopped}>
            {pending === "restart" ? "Restarting…" : "Restart"}
          </Button>
          <DeleteDatabase db={db} />
        </div>
      </div>
      <ErrorNote error={action.error} />
    </>
  );
}
