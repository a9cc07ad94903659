import { Link } from "react-router";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { api, enc, type App, type Preview } from "@/lib/api";
import { PREVIEWS_POLL_MS, usePreviews } from "@/lib/previews";
import { Badge } from "@/components/ui/badge";
import { Button } from "@/components/ui/button";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
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
import { StatusBadge } from "@/components/StatusBadge";
import { ErrorNote } from "@/components/ErrorNote";
import { ago, shortSha } from "@/lib/utils";

/** The host a PR's preview gets by the app's template, with `{number}` left for the reader. */
export function sampleHost(app: App): string {
  const domain = app.domains[0];
  let host = app.previews.domain_template.replaceAll("{app}", app.name);
  if (domain) host = host.replaceAll("{domain}", domain);
  return host;
}

/** The app's pull requests and their previews, asked every few seconds while the page is
 * open (and at once when the event stream says a deployment moved). */
export function PreviewsCard({ app }: { app: App }) {
  const previews = usePreviews(app.name);
  const list = previews.data ?? [];
  const on = app.previews.enabled;
  return (
    <Card data-testid="previews" data-enabled={on}>
      <CardHeader>
        <CardTitle>Previews</CardTitle>
        <CardDescription>
          {on
            ? `Each open pull request runs at a host of its own. Updated every ${PREVIEWS_POLL_MS / 1000} s while this page is open.`
            : "Off: pull requests get no preview."}
        </CardDescription>
      </CardHeader>
      <CardContent className="grid gap-3">
        <ErrorNote error={previews.error} />
        {previews.isPending && <p className="text-sm text-muted-foreground">Loading…</p>}
        {previews.isSuccess && list.length === 0 && <EmptyState app={app} />}
        {list.length > 0 && (
          <ul className="grid gap-2" data-testid="preview-list">
            {list.map((p) => (
              <PreviewItem key={p.number} parent={app.name} preview={p} />
            ))}
          </ul>
        )}
      </CardContent>
    </Card>
  );
}

/** How previews start: on in the settings, the webhook sending pull request events, a PR. */
function EmptyState({ app }: { app: App }) {
  const on = app.previews.enabled;
  const base = `/apps/${enc(app.name)}`;
  return (
    <div className="grid gap-2 text-sm" data-testid="previews-empty">
      <p className="font-medium">{on ? "No pull requests yet." : "No previews yet."}</p>
      <ol className="grid list-decimal gap-1 pl-5 text-muted-foreground">
        <li>
          {on ? (
            "Previews are on."
          ) : (
            <>
              Turn them on in{" "}
              <Link className="text-foreground underline underline-offset-4" to={`${base}/settings`}>
                Settings
              </Link>
              .
            </>
          )}
        </li>
        <li>
          Let the forge send pull request events to this app's webhook (the URL on the{" "}
          <Link className="text-foreground underline underline-offset-4" to={`${base}/webhook`}>
            Webhook
          </Link>{" "}
          tab): on GitHub tick “Pull requests”, on GitLab “Merge request events”, on Gitea “Pull Request”.
        </li>
        <li>
          Open a pull request: its head is deployed at <code className="break-all font-mono text-xs text-foreground">{sampleHost(app)}</code>,
          and removed when it is closed or merged.
        </li>
      </ol>
    </div>
  );
}

function PreviewItem({ parent, preview: p }: { parent: string; preview: Preview }) {
  const d = p.deployment;
  return (
    <li
      className="grid gap-2 rounded-lg border p-3 text-sm"
      data-preview={p.number}
      data-state={p.state}
      data-status={d?.status ?? ""}
    >
      <div className="flex flex-wrap items-center gap-x-2 gap-y-1">
        <h3 className="font-medium">PR #{p.number}</h3>
        <Badge variant={p.state === "open" ? "outline" : "secondary"}>{p.state}</Badge>
        <code className="min-w-0 break-all font-mono text-xs" title="Head branch">
          {p.head_ref}
        </code>
        <span className="font-mono text-xs text-muted-foreground" title={p.head_sha}>
          {shortSha(p.head_sha)}
        </span>
        <span className="text-xs text-muted-foreground sm:ml-auto" title={p.updated_at}>
          last event {ago(p.updated_at)}
        </span>
      </div>
      {p.refused && (
        <p className="rounded-md border border-destructive/50 px-3 py-2 text-destructive" data-refused>
          <strong className="font-semibold">No preview:</strong> {p.refused}
        </p>
      )}
      {p.app && (
        <div className="grid gap-3 sm:flex sm:items-end">
          <dl className="grid min-w-0 flex-1 grid-cols-[auto_1fr] gap-x-4 gap-y-1">
            <dt className="text-muted-foreground">Preview</dt>
            <dd className="flex min-w-0 flex-wrap items-center gap-2">
              {d ? <StatusBadge status={d.status} /> : <span className="text-muted-foreground">not deployed yet</span>}
              <Link className="break-all font-medium underline underline-offset-4" to={`/apps/${enc(p.app)}`}>
                {p.app}
              </Link>
              {d && (
                <Link className="text-xs text-muted-foreground underline underline-offset-4" to={`/deployments/${d.id}`}>
                  deployment #{d.id}
                </Link>
              )}
            </dd>
            <dt className="text-muted-foreground">Host</dt>
            <dd className="min-w-0 break-all">
              {p.host ? (
                <a className="text-primary underline-offset-4 hover:underline" href={`https://${p.host}`} target="_blank" rel="noreferrer">
                  {p.host}
                </a>
              ) : (
                "—"
              )}
            </dd>
          </dl>
          <RemovePreview parent={parent} preview={p} />
        </div>
      )}
    </li>
  );
}

function RemovePreview({ parent, preview: p }: { parent: string; preview: Preview }) {
  const client = useQueryClient();
  const remove = useMutation({
    mutationFn: () => api<void>("DELETE", `/api/apps/${enc(parent)}/previews/${p.number}`),
    onSuccess: () => {
      // As the API now has it: recorded closed, with no preview.
      client.setQueryData<Preview[]>(["previews", parent], (old) =>
        old?.map((x) => (x.number === p.number ? { ...x, state: "closed", app: null, host: null, deployment: null, running_deployment: null } : x)),
      );
      void client.invalidateQueries({ queryKey: ["previews", parent] });
      if (p.app) client.removeQueries({ queryKey: ["app", p.app] });
    },
  });
  return (
    <Dialog onOpenChange={() => remove.reset()}>
      <DialogTrigger asChild>
        <Button size="sm" variant="outline" className="justify-self-start">
          Remove<span className="sr-only"> the preview of PR #{p.number}</span>
        </Button>
      </DialogTrigger>
      <DialogContent>
        <DialogHeader>
          <DialogTitle>Remove the preview of PR #{p.number}?</DialogTitle>
          <DialogDescription>
            {p.app} goes with its containers, images, route and certificate. The pull request is recorded closed: only reopening
            it brings a preview back.
          </DialogDescription>
        </DialogHeader>
        <ErrorNote error={remove.error} />
        <DialogFooter>
          <DialogClose asChild>
            <Button type="button" variant="outline">
              Cancel
            </Button>
          </DialogClose>
          <Button type="button" variant="destructive" onClick={() => remove.mutate()} disabled={remove.isPending}>
            {remove.isPending ? "Removing…" : "Remove preview"}
          </Button>
        </DialogFooter>
      </DialogContent>
    </Dialog>
  );
}
