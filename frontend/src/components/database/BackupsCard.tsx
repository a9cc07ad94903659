import { useState } from "react";
import { Link } from "react-router";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, enc, get, type Backup, type ManagedDatabase, type Restored } from "@/lib/api";
import { Alert } from "@/components/ui/alert";
import { Button, buttonVariants } from "@/components/ui/button";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Field } from "@/components/ui/field";
import { ErrorNote } from "@/components/ErrorNote";
import { ago, bytes } from "@/lib/utils";
import { BackupStatus } from "./BackupStatus";
import { DestinationSelect } from "./DestinationSelect";
import { RestoreDialog } from "./RestoreDialog";

/** The database's backups, newest first; asked again every second while one is running. */
export function useBackups(db: string) {
  return useQuery({
    queryKey: ["backups", db],
    queryFn: () => get<Backup[]>(`/api/databases/${enc(db)}/backups`),
    refetchInterval: (q) => (q.state.data?.some((b) => b.status === "running") ? 1_000 : false),
  });
}

/** Backups: take one now, see each one's status, size and checksum, download or restore it. */
export function BackupsCard({ db }: { db: ManagedDatabase }) {
  const client = useQueryClient();
  const backups = useBackups(db.name);
  const [destination, setDestination] = useState("local");
  const [restored, setRestored] = useState<Restored | null>(null);
  const start = useMutation({
    mutationFn: () => {
      const query = destination === "local" ? "" : `?destination=${enc(destination)}`;
      return api<Backup>("POST", `/api/databases/${enc(db.name)}/backups${query}`);
    },
    onSuccess: () => void client.invalidateQueries({ queryKey: ["backups", db.name] }),
  });
  const running = backups.data?.some((b) => b.status === "running") ?? false;
  return (
    <Card>
      <CardHeader>
        <CardTitle>Backups</CardTitle>
        <CardDescription>A compressed dump with its SHA-256, checked again before any restore.</CardDescription>
      </CardHeader>
      <CardContent className="grid gap-3">
        <form
          className="flex flex-wrap items-end gap-3"
          onSubmit={(e) => {
            e.preventDefault();
            start.mutate();
          }}
        >
          <Field id="backup-destination" label="Destination" className="min-w-48">
            <DestinationSelect value={destination} onChange={(e) => setDestination(e.target.value)} />
          </Field>
          <Button type="submit" disabled={start.isPending || running}>
            {running ? "Backing up…" : "Back up now"}
          </Button>
        </form>
        <ErrorNote error={start.error ?? backups.error} />
        {restored && <RestoredNote restored={restored} db={db.name} />}
        {backups.isPending && <p className="text-sm text-muted-foreground">Loading…</p>}
        {backups.data?.length === 0 && <p className="text-sm text-muted-foreground">No backups yet.</p>}
        {backups.data && backups.data.length > 0 && (
          <BackupsTable db={db.name} backups={backups.data} onRestored={setRestored} />
        )}
      </CardContent>
    </Card>
  );
}

function RestoredNote({ restored, db }: { restored: Restored; db: string }) {
  const other = restored.database.name !== db;
  return (
    <Alert variant="success" data-testid="restored">
      {restored.message}
      {other && (
        <>
          {" "}
          <Link className="font-medium underline" to={`/databases/${enc(restored.database.name)}`}>
            Open {restored.database.name}
          </Link>
        </>
      )}
    </Alert>
  );
}

function BackupsTable({ db, backups, onRestored }: { db: string; backups: Backup[]; onRestored: (r: Restored) => void }) {
  return (
    <div className="overflow-x-auto rounded-lg border">
      <table className="w-full text-sm" data-testid="backups-table">
        <thead className="border-b bg-muted text-left text-xs uppercase text-muted-foreground">
          <tr>
            <th scope="col" className="px-3 py-2 font-medium">Started</th>
            <th scope="col" className="hidden px-3 py-2 font-medium sm:table-cell">Status</th>
            <th scope="col" className="hidden px-3 py-2 font-medium sm:table-cell">Size</th>
            <th scope="col" className="hidden px-3 py-2 font-medium md:table-cell">SHA-256</th>
            <th scope="col" className="hidden px-3 py-2 font-medium lg:table-cell">Destination</th>
            <th scope="col" className="px-3 py-2 font-medium">
              <span className="sr-only">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {backups.map((b) => (
            <BackupRow key={b.id} db={db} backup={b} onRestored={onRestored} />
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** One backup. On a phone the first cell carries what the hidden columns show. */
function BackupRow({ db, backup: b, onRestored }: { db: string; backup: Backup; onRestored: (r: Restored) => void }) {
  const good = b.status === "succeeded";
  const size = b.size_bytes != null ? bytes(b.size_bytes) : "—";
  return (
    <>
      <tr className={b.error ? "" : "border-b last:border-0"} data-backup={b.id} data-status={b.status}>
        <td className="px-3 py-2 align-top">
          <span title={b.started_at}>{ago(b.started_at)}</span>
          <span className="block text-xs text-muted-foreground">
            #{b.id}
            {b.schedule_id ? ", scheduled" : ""}
            {b.key_fingerprint && <span title={`Key ${b.key_fingerprint}`}>, encrypted</span>}
            <span className="lg:hidden">, {b.destination}</span>
          </span>
          <span className="mt-1 flex flex-wrap items-center gap-x-2 gap-y-1 text-xs sm:hidden">
            <BackupStatus status={b.status} />
            {size}
            {b.sha256 && <code className="font-mono">{b.sha256.slice(0, 8)}…</code>}
          </span>
        </td>
        <td className="hidden px-3 py-2 align-top sm:table-cell">
          <BackupStatus status={b.status} />
        </td>
        <td className="hidden whitespace-nowrap px-3 py-2 align-top sm:table-cell" data-size>
          {size}
        </td>
        <td className="hidden px-3 py-2 align-top md:table-cell">
          {b.sha256 ? (
            <code className="font-mono text-xs" title={b.sha256} data-sha256={b.sha256}>
              {b.sha256.slice(0, 12)}…
            </code>
          ) : (
            "—"
          )}
        </td>
        <td className="hidden px-3 py-2 align-top lg:table-cell">{b.destination}</td>
        <td className="px-3 py-2 align-top">
          {good && (
            <div className="flex flex-col items-end gap-2 sm:flex-row sm:justify-end">
              <a
                className={buttonVariants({ variant: "outline", size: "sm" })}
                href={`/api/databases/${enc(db)}/backups/${b.id}/download`}
                download
              >
                Download<span className="sr-only"> backup #{b.id}</span>
              </a>
              <RestoreDialog db={db} backup={b} onRestored={onRestored} />
            </div>
          )}
        </td>
      </tr>
      {b.error && (
        <tr className="border-b last:border-0">
          <td colSpan={6} className="px-3 pb-2 pt-0 text-xs text-destructive" data-reason={b.id}>
            Failed: {b.error}
          </td>
        </tr>
      )}
    </>
  );
}
