import { useState } from "react";
import { useNavigate } from "react-router";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { api, enc, type DeletedDatabase, type ManagedDatabase } from "@/lib/api";
import { Button } from "@/components/ui/button";
import { Input } from "@/components/ui/input";
import { Label } from "@/components/ui/label";
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

/** Deletes a database once its name is typed; its data volume stays unless the box is
 * ticked. The list it returns to says what was kept and where. */
export function DeleteDatabase({ db }: { db: ManagedDatabase }) {
  const [typed, setTyped] = useState("");
  const [volume, setVolume] = useState(false);
  const [backups, setBackups] = useState(false);
  const client = useQueryClient();
  const navigate = useNavigate();
  const del = useMutation({
    mutationFn: () => {
      const query = [volume && "volumes=true", backups && "backups=true"].filter(Boolean).join("&");
      return api<DeletedDatabase>("DELETE", `/api/databases/${enc(db.name)}${query ? `?${query}` : ""}`);
    },
    onSuccess: (deleted) => {
      client.removeQueries({ queryKey: ["database", db.name] });
      void client.invalidateQueries({ queryKey: ["databases"] });
      navigate("/databases", { state: { notice: deleted.message } });
    },
  });
  return (
    <Dialog
      onOpenChange={() => {
        setTyped("");
        setVolume(false);
        setBackups(false);
        del.reset();
      }}
    >
      <DialogTrigger asChild>
        <Button variant="destructive">Delete</Button>
      </DialogTrigger>
      <DialogContent>
        <DialogHeader>
          <DialogTitle>Delete {db.name}?</DialogTitle>
          <DialogDescription>
            Its container and network go; its backups and schedules leave Rivetr's lists. Its data stays in its volume, and its
            backup files where they are stored, unless you remove them too. Apps linked to it must be unlinked first.
          </DialogDescription>
        </DialogHeader>
        <form
          className="grid gap-3"
          onSubmit={(e) => {
            e.preventDefault();
            if (typed === db.name) del.mutate();
          }}
        >
          <label className="flex items-start gap-2 text-sm">
            <input type="checkbox" className="mt-0.5" checked={volume} onChange={(e) => setVolume(e.target.checked)} />
            <span>
              Also remove the data volume <code className="break-all font-mono text-xs">{db.volume}</code> (its data is gone for
              good)
            </span>
          </label>
          <label className="flex items-start gap-2 text-sm">
            <input type="checkbox" className="mt-0.5" checked={backups} onChange={(e) => setBackups(e.target.checked)} />
            <span>Also remove its backup files (locally and in S3)</span>
          </label>
          <Label htmlFor="confirm-db-name">
            Type <strong>{db.name}</strong> to confirm
          </Label>
          <Input id="confirm-db-name" value={typed} onChange={(e) => setTyped(e.target.value)} autoComplete="off" />
          <ErrorNote error={del.error} />
          <DialogFooter>
            <DialogClose asChild>
              <Button type="button" variant="outline">
                Cancel
              </Button>
            </DialogClose>
            <Button type="submit" variant="destructive" disabled={typed !== db.name || del.isPending}>
              {del.isPending ? "Deleting…" : "Delete database"}
            </Button>
          </DialogFooter>
        </form>
      </DialogContent>
    </Dialog>
  );
}
