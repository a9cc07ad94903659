import { Link, useParams } from "react-router";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, enc, get, type Deployment } from "@/lib/api";
import { useLogStream } from "@/lib/useLogStream";
import { LogViewer } from "@/components/LogViewer";
import { StatusBadge } from "@/components/StatusBadge";
import { ErrorNote } from "@/components/ErrorNote";
import { Button } from "@/components/ui/button";
import { shortSha } from "@/lib/utils";

const CANCELLABLE = ["queued", "cloning", "building", "starting", "health_checking"];

/** One deployment: its stage, its log streamed live from the first line to the end, cancel
 * and roll back. */
export function DeploymentPage() {
  const id = Number(useParams().id);
  const client = useQueryClient();
  const deployment = useQuery({ queryKey: ["deployment", id], queryFn: () => get<Deployment>(`/api/deployments/${id}`) });
  const log = useLogStream(Number.isFinite(id) ? `/api/deployments/${id}/logs?follow=1` : null, ["line"], true);
  const d = deployment.data;
  const status = log.ended ?? d?.status;
  const cancel = useMutation({
    mutationFn: () => api<Deployment>("POST", `/api/deployments/${id}/cancel`),
    onSuccess: (x) => client.setQueryData(["deployment", id], x),
  });
  const rollback = useMutation({
    mutationFn: () => api<Deployment>("POST", `/api/apps/${enc(d!.app)}/rollback`, { deployment_id: id }),
  });
  return (
    <div className="grid gap-4">
      <div className="flex flex-wrap items-center gap-3">
        <h1 className="text-2xl font-semibold">Deployment #{id}</h1>
        {status && (
          <span role="status" aria-label={`Stage: ${status}`} data-testid="deployment-status">
            <StatusBadge status={status} />
          </span>
        )}
        {d && (
          <Link className="text-sm underline" to={`/apps/${enc(d.app)}`}>
            {d.app}
          </Link>
        )}
        <div className="flex gap-2 sm:ml-auto">
          {status && CANCELLABLE.includes(status) && (
            <Button variant="outline" onClick={() => cancel.mutate()} disabled={cancel.isPending}>
              Cancel
            </Button>
          )}
          {d && status === "replaced" && d.image && (
            <Button variant="outline" onClick={() => rollback.mutate()} disabled={rollback.isPending}>
              Roll back to this deployment
            </Button>
          )}
        </div>
      </div>
      {d && (
        <p className="text-sm text-muted-foreground">
          <span className="font-mono">{shortSha(d.commit_sha)}</span> {d.commit_subject} · {d.trigger}
          {d.reason ? ` · ${d.reason}` : ""}
        </p>
      )}
      {rollback.data && (
        <p role="status" className="text-sm">
          Rollback queued as <Link className="underline" to={`/deployments/${rollback.data.id}`}>#{rollback.data.id}</Link>.
        </p>
      )}
      <ErrorNote error={deployment.error ?? cancel.error ?? rollback.error} />
      <LogViewer lines={log.lines} count={log.count} label={`Log of deployment ${id}`} />
      <p className="text-xs text-muted-foreground" data-testid="log-state">
        {log.count} lines · {log.state === "ended" ? `ended: ${log.ended}` : log.state === "open" ? "live" : log.state}
      </p>
    </div>
  );
}
