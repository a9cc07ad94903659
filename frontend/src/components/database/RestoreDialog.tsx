import { useState } from "react";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { api, ApiError, enc, fieldMessage, type Backup, type Restored } from "@/lib/api";
import { Button } from "@/components/ui/button";
import { Input } from "@/components/ui/input";
import { Field } from "@/components/ui/field";
import {
  Dialog,
  DialogClose,
  DialogContent,
  DialogDescription,
  DialogFooter,
  DialogHeader,
  DialogTitle,
  DialogTrigger,
} from "@/components/ui/dialog";
import { ErrorNote } from "@/components/ErrorNote";
import { ago } from "@/lib/utils";

/** Restores one good backup, into the database itself (what the backup holds replaces the
 * same objects) or into a new database of the same engine and version. The API answers when
 * the restore has finished, after checking the file's SHA-256. */
export function RestoreDialog({ db, backup, onRestored }: { db: string; backup: Backup; onRestored: (r: Restored) => void }) {
  const client = useQueryClient();
  const [target, setTarget] = useState<"same" | "new">("new");
  const [into, setInto] = useState("");
  const restore = useMutation({
    mutationFn: () =>
      api<Restored>("POST", `/api/databases/${enc(db)}/restore`, target === "new" ? { backup: backup.id, into: into.trim() } : { backup: backup.id }),
    onSuccess: (r) => {
      void client.invalidateQueries({ queryKey: ["databases"] });
      client.setQueryData(["database", r.database.name], r.database);
      onRestored(r);
    },
  });
  // A taken or malformed name belongs to the name field; the rest is said above the buttons.
  const e = restore.error;
  const intoError =
    target === "new" && e instanceof ApiError && (e.field === "into" || (e.status === 409 && /already exists/.test(e.message)))
      ? fieldMessage(e.message)
      : undefined;
  const ready = target === "same" || into.trim() !== "";
  return (
    <Dialog
      onOpenChange={() => {
        setTarget("new");
        setInto("");
        restore.reset();
      }}
    >
      <DialogTrigger asChild>
        <Button size="sm" variant="outline">
          Restore<span className="sr-only"> backup #{backup.id}</span>
        </Button>
      </DialogTrigger>
      <DialogContent>
        <DialogHeader>
          <DialogTitle>Restore backup #{backup.id}</DialogTitle>
          <DialogDescription>
            Taken {ago(backup.started_at)} from {db}. Its SHA-256 is checked before anything changes.
          </DialogDescription>
        </DialogHeader>
        {restore.isSuccess ? (
          <>
            <p className="text-sm" role="status">
              {restore.data.message}
            </p>
            <DialogFooter>
              <DialogClose asChild>
                <Button type="button">Close</Button>
              </DialogClose>
            </DialogFooter>
          </>
        ) : (
          <form
            className="grid gap-4"
            noValidate
            onSubmit={(e) => {
              e.preventDefault();
              if (ready) restore.mutate();
            }}
          >
            <fieldset className="grid gap-2 text-sm">
              <legend className="mb-1 font-medium">Restore into</legend>
              <label className="flex items-center gap-2">
                <input type="radio" name="restore-target" checked={target === "new"} onChange={() => setTarget("new")} />A
                new database
              </label>
              <label className="flex items-center gap-2">
                <input type="radio" name="restore-target" checked={target === "same"} onChange={() => setTarget("same")} />
                {db} itself
              </label>
            </fieldset>
            {target === "new" ? (
              <Field id="restore-into" label="New database name" hint="Same engine and version; it must not exist yet." error={intoError}>
                <Input value={into} onChange={(e) => setInto(e.target.value)} autoComplete="off" spellCheck={false} />
              </Field>
            ) : (
              <p className="rounded-md border border-destructive/50 p-3 text-sm">
                What the backup holds replaces the same tables and keys in <strong>{db}</strong>. Apps linked to it keep running:
                stop their writes first if they matter.
              </p>
            )}
            {!intoError && <ErrorNote error={restore.error} />}
            {restore.isPending && (
              <p className="text-sm text-muted-foreground" role="status">
                Restoring…
              </p>
            )}
            <DialogFooter>
              <DialogClose asChild>
                <Button type="button" variant="outline">
                  Cancel
                </Button>
              </DialogClose>
              <Button type="submit" variant={target === "same" ? "destructive" : "default"} disabled={!ready || restore.isPending}>
                {target === "same" ? `Restore into ${db}` : "Restore into the new database"}
              </Button>
            </DialogFooter>
          </form>
        )}
      </DialogContent>
    </Dialog>
  );
}
