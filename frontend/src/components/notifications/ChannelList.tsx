import { useState } from "react";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { api, ApiError, enc, type Channel, type ChannelUpdate, type Delivery } from "@/lib/api";
import { kindLabel } from "@/lib/notifications";
import { Badge } from "@/components/ui/badge";
import { Button } from "@/components/ui/button";
import { Alert } from "@/components/ui/alert";
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

/** Where a channel's messages go, without its secrets: the URL's scheme and host, or the
 * mail server and recipients. */
export function target(c: Channel): string {
  if (c.email) {
    const port = c.email.port ? `:${c.email.port}` : "";
    return `${c.email.to.join(", ")} via ${c.email.host}${port} (${c.email.security})`;
  }
  return c.url ?? "—";
}

/** A message as a sentence: its first letter in upper case. */
function sentence(message: string): string {
  return message.charAt(0).toUpperCase() + message.slice(1);
}

/** The channels, each with its switch, a test message and deletion. */
export function ChannelList({ channels }: { channels: Channel[] }) {
  if (channels.length === 0) {
    return <p className="text-sm text-muted-foreground">No channels yet: nothing is sent. Add one below.</p>;
  }
  return (
    <ul className="grid gap-3" data-testid="channels">
      {channels.map((c) => (
        <ChannelItem key={c.name} channel={c} />
      ))}
    </ul>
  );
}

function ChannelItem({ channel: c }: { channel: Channel }) {
  const client = useQueryClient();
  const path = `/api/notifications/${enc(c.name)}`;
  const update = useMutation({
    mutationFn: (body: ChannelUpdate) => api<Channel>("PATCH", path, body),
    onSuccess: (changed) => {
      client.setQueryData<Channel[]>(["channels"], (old) => old?.map((x) => (x.name === changed.name ? changed : x)));
      void client.invalidateQueries({ queryKey: ["channels"] });
    },
  });
  const test = useMutation({
    mutationFn: () => api<Delivery>("POST", `${path}/test`),
    onSettled: () => void client.invalidateQueries({ queryKey: ["deliveries"] }),
  });
  // The switch shows what was asked at once, until the server answers: the mutation's own
  // pending state reaches React a task later, and in between React put the controlled box back
  // as it was (a flicker; Playwright's uncheck saw no change, and failed CI once).
  const [asked, setAsked] = useState<boolean | null>(null);
  const enabled = asked ?? c.enabled;
  return (
    <li className="grid gap-3 rounded-lg border p-3 sm:p-4" data-channel={c.name} data-enabled={c.enabled}>
      <div className="flex flex-wrap items-center gap-x-3 gap-y-2">
        <h3 className="font-medium">{c.name}</h3>
        <Badge variant="outline">{kindLabel(c.kind)}</Badge>
        {!c.enabled && <Badge variant="secondary">disabled</Badge>}
        <span className="text-xs text-muted-foreground sm:ml-auto" title={c.created_at}>
          added {ago(c.created_at)}
        </span>
      </div>
      <dl className="grid gap-x-4 gap-y-1 text-sm sm:grid-cols-[auto_1fr]">
        <dt className="text-muted-foreground">To</dt>
        <dd className="break-all font-mono text-xs leading-5" data-target>
          {target(c)}
        </dd>
        <dt className="text-muted-foreground">Events</dt>
        <dd data-events>
          {c.events.length === 0 ? (
            "all events"
          ) : (
            <span className="flex flex-wrap gap-1">
              {c.events.map((e) => (
                <code key={e} className="rounded bg-muted px-1.5 py-0.5 font-mono text-xs">
                  {e}
                </code>
              ))}
            </span>
          )}
        </dd>
      </dl>
      <div className="flex flex-wrap items-center gap-3">
        <label className="flex items-center gap-2 text-sm">
          <input
            type="checkbox"
            role="switch"
            checked={enabled}
            disabled={update.isPending}
            onChange={(e) => {
              setAsked(e.target.checked);
              update.mutate({ enabled: e.target.checked }, { onSettled: () => setAsked(null) });
            }}
          />
          Enabled<span className="sr-only"> {c.name}</span>
        </label>
        <span className="flex flex-wrap gap-2 sm:ml-auto">
          <Button size="sm" variant="outline" onClick={() => test.mutate()} disabled={test.isPending}>
            {test.isPending ? "Sending…" : "Send test"}
            <span className="sr-only"> to {c.name}</span>
          </Button>
          <DeleteChannel name={c.name} />
        </span>
      </div>
      <ErrorNote error={update.error} />
      {test.isSuccess && (
        <Alert variant="success" data-test-result="sent">
          Sent: the receiver accepted the test message (attempt {test.data.attempts}).
        </Alert>
      )}
      {test.isError && (
        <Alert variant="destructive" data-test-result="failed">
          {/* A 502 carries the receiver's (or the network's) own words. */}
          {test.error instanceof ApiError && test.error.status === 502 ? (
            <span className="break-words">{sentence(test.error.message)}</span>
          ) : (
            <>Could not send the test message: {test.error.message}</>
          )}
        </Alert>
      )}
    </li>
  );
}

function DeleteChannel({ name }: { name: string }) {
  const client = useQueryClient();
  const del = useMutation({
    mutationFn: () => api<void>("DELETE", `/api/notifications/${enc(name)}`),
    onSuccess: () => {
      client.setQueryData<Channel[]>(["channels"], (old) => old?.filter((x) => x.name !== name));
      void client.invalidateQueries({ queryKey: ["channels"] });
      void client.invalidateQueries({ queryKey: ["deliveries"] });
    },
  });
  return (
    <Dialog onOpenChange={() => del.reset()}>
      <DialogTrigger asChild>
        <Button size="sm" variant="outline">
          Delete<span className="sr-only"> {name}</span>
        </Button>
      </DialogTrigger>
      <DialogContent>
        <DialogHeader>
          <DialogTitle>Delete channel {name}?</DialogTitle>
          <DialogDescription>
            No more messages go to it, and the record of its deliveries goes too. Its secrets are gone for good: adding it again
            needs its URL (or password) again.
          </DialogDescription>
        </DialogHeader>
        <ErrorNote error={del.error} />
        <DialogFooter>
          <DialogClose asChild>
            <Button type="button" variant="outline">
              Cancel
            </Button>
          </DialogClose>
          <Button type="button" variant="destructive" onClick={() => del.mutate()} disabled={del.isPending}>
            {del.isPending ? "Deleting…" : "Delete channel"}
          </Button>
        </DialogFooter>
      </DialogContent>
    </Dialog>
  );
}
