import { DomainLinks } from "@/components/DomainLinks";
import { useState } from "react";
import { Link, NavLink, Outlet, useNavigate, useParams } from "react-router";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, enc, get, type App, type Deployment } from "@/lib/api";
import { Button } from "@/components/ui/button";
import { Card, CardContent, CardHeader, CardTitle } from "@/components/ui/card";
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
import { StatusBadge } from "@/components/StatusBadge";
import { ErrorNote } from "@/components/ErrorNote";
import { ResourcesCard } from "@/components/ResourcesCard";
import { PreviewsCard } from "@/components/PreviewsCard";
import { Alert } from "@/components/ui/alert";
import { ago, cn, shortSha } from "@/lib/utils";

export function useAppName(): string {
  return useParams().app ?? "";
}

export function useApp(name: string) {
  return useQuery({ queryKey: ["app", name], queryFn: () => get<App>(`/api/apps/${enc(name)}`) });
}

const TABS = [
  { to: "", label: "Overview", end: true },
  { to: "settings", label: "Settings", ownSettings: true },
  { to: "env", label: "Environment" },
  { to: "databases", label: "Databases", ownSettings: true },
  { to: "webhook", label: "Webhook", ownSettings: true },
  { to: "logs", label: "Logs" },
];

/** An app: its header (status, actions) and its sub-pages. */
export function AppPage() {
  const name = useAppName();
  const app = useApp(name);
  const client = useQueryClient();
  const action = useMutation({
    mutationFn: (what: "start" | "stop" | "restart") => api<App>("POST", `/api/apps/${enc(name)}/${what}`),
    onSuccess: (a) => {
      client.setQueryData(["app", name], a);
      void client.invalidateQueries({ queryKey: ["apps"] });
    },
  });
  const deploy = useMutation({
    mutationFn: () => api<Deployment>("POST", `/api/apps/${enc(name)}/deployments`, {}),
    onSuccess: () => client.invalidateQueries({ queryKey: ["deployments", name] }),
  });
  const navigate = useNavigate();
  if (app.error) return <ErrorNote error={app.error} />;
  if (!app.data) return <p className="text-sm text-muted-foreground">Loading…</p>;
  const a = app.data;
  // A preview follows the settings, webhook and databases of the app it previews.
  const tabs = a.preview_of ? TABS.filter((t) => !t.ownSettings) : TABS;
  return (
    <div className="grid gap-4">
      {a.preview_of && <PreviewBanner of={a.preview_of} />}
      <div className="flex flex-wrap items-center gap-3">
        <h1 className="text-2xl font-semibold">{a.name}</h1>
        <StatusBadge status={a.status} />
        <div className="flex w-full flex-wrap gap-2 sm:ml-auto sm:w-auto">
          <Button onClick={() => deploy.mutate()} disabled={deploy.isPending || a.stopped}>
            Deploy now
          </Button>
          {a.stopped ? (
            <Button variant="outline" onClick={() => action.mutate("start")} disabled={action.isPending}>
              Start
            </Button>
          ) : (
            <Button variant="outline" onClick={() => action.mutate("stop")} disabled={action.isPending || !a.running_deployment}>
              Stop
            </Button>
          )}
          <Button variant="outline" onClick={() => action.mutate("restart")} disabled={action.isPending || !a.running_deployment}>
            Restart
          </Button>
          <DeleteApp name={a.name} onDeleted={() => navigate("/apps")} />
        </div>
      </div>
      {deploy.data && (
        <p className="text-sm" role="status">
          Deployment <Link className="underline" to={`/deployments/${deploy.data.id}`}>#{deploy.data.id}</Link> queued.
        </p>
      )}
      <ErrorNote error={deploy.error ?? action.error} />
      <nav aria-label="App" className="flex gap-1 overflow-x-auto border-b">
        {tabs.map((t) => (
          <NavLink
            key={t.label}
            to={t.to}
            end={t.end}
            className={({ isActive }) =>
              cn(
                "-mb-px whitespace-nowrap border-b-2 px-3 py-2 text-sm font-medium focus-visible:outline-none focus-visible:ring-2 focus-visible:ring-ring",
                isActive ? "border-primary text-foreground" : "border-transparent text-muted-foreground hover:text-foreground",
              )
            }
          >
            {t.label}
          </NavLink>
        ))}
      </nav>
      <Outlet context={a} />
    </div>
  );
}

/** Says which app and pull request a preview app previews. */
function PreviewBanner({ of }: { of: NonNullable<App["preview_of"]> }) {
  return (
    <Alert role="note" data-testid="preview-of" className="border-primary/40 bg-primary/5">
      <p className="font-medium">
        Preview of PR #{of.number} of{" "}
        <Link className="underline underline-offset-4" to={`/apps/${enc(of.app)}`}>
          {of.app}
        </Link>
      </p>
      <p className="text-muted-foreground">
        It follows {of.app}'s settings, webhook and databases: change them there. Closing or merging the pull request removes it.
      </p>
    </Alert>
  );
}

function DeleteApp({ name, onDeleted }: { name: string; onDeleted: () => void }) {
  const [typed, setTyped] = useState("");
  const client = useQueryClient();
  const del = useMutation({
    mutationFn: () => api<void>("DELETE", `/api/apps/${enc(name)}`),
    onSuccess: () => {
      void client.invalidateQueries({ queryKey: ["apps"] });
      onDeleted();
    },
  });
  return (
    <Dialog onOpenChange={() => setTyped("")}>
      <DialogTrigger asChild>
        <Button variant="destructive">Delete</Button>
      </DialogTrigger>
      <DialogContent>
        <DialogHeader>
          <DialogTitle>Delete {name}?</DialogTitle>
          <DialogDescription>
            Its containers, images, deployments and variables go too. This cannot be undone.
          </DialogDescription>
        </DialogHeader>
        <form
          className="grid gap-3"
          onSubmit={(e) => {
            e.preventDefault();
            if (typed === name) del.mutate();
          }}
        >
          <Label htmlFor="confirm-name">
            Type <strong>{name}</strong> to confirm
          </Label>
          <Input id="confirm-name" value={typed} onChange={(e) => setTyped(e.target.value)} autoComplete="off" />
          <ErrorNote error={del.error} />
          <DialogFooter>
            <DialogClose asChild>
              <Button type="button" variant="outline">
                Cancel
              </Button>
            </DialogClose>
            <Button type="submit" variant="destructive" disabled={typed !== name || del.isPending}>
              Delete app
            </Button>
          </DialogFooter>
        </form>
      </DialogContent>
    </Dialog>
  );
}

/** Status, the current deployment, and every deployment with its stage times. */
export function AppOverview() {
  const name = useAppName();
  const app = useApp(name);
  const deployments = useQuery({
    queryKey: ["deployments", name],
    queryFn: () => get<Deployment[]>(`/api/apps/${enc(name)}/deployments?limit=50`),
  });
  const a = app.data;
  if (!a) return null;
  const current = deployments.data?.find((d) => d.id === a.running_deployment);
  return (
    <div className="grid gap-4">
      <div className="grid gap-4 md:grid-cols-2">
        <Card>
          <CardHeader>
            <CardTitle>Current deployment</CardTitle>
          </CardHeader>
          <CardContent className="grid gap-1 text-sm">
            {current ? (
              <>
                <p>
                  <Link className="underline" to={`/deployments/${current.id}`}>
                    #{current.id}
                  </Link>{" "}
                  <span className="font-mono text-xs">{shortSha(current.commit_sha)}</span> {current.commit_subject}
                </p>
                <p className="text-muted-foreground">Running since {ago(current.running_at)}</p>
              </>
            ) : (
              <p className="text-muted-foreground">No version is running.</p>
            )}
          </CardContent>
        </Card>
        <Card>
          <CardHeader>
            <CardTitle>Source</CardTitle>
          </CardHeader>
          <CardContent className="grid gap-1 text-sm">
            <p className="break-all">{a.image ?? `${a.git_url} (${a.branch})`}</p>
            <DomainLinks domains={a.domains} />
          </CardContent>
        </Card>
      </div>
      <ResourcesCard app={a.name} memoryLimitBytes={a.resources.memory_bytes} />
      {!a.preview_of && <PreviewsCard app={a} />}
      <DeploymentsTable app={a} deployments={deployments.data ?? []} />
      <ErrorNote error={deployments.error} />
    </div>
  );
}

const STAGES: [keyof Deployment, string][] = [
  ["queued_at", "queued"],
  ["cloning_at", "clone"],
  ["building_at", "build"],
  ["starting_at", "start"],
  ["health_checking_at", "health"],
  ["switching_at", "switch"],
  ["running_at", "running"],
  ["finished_at", "finished"],
];

function time(iso: unknown): string {
  if (typeof iso !== "string") return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleTimeString();
}

function DeploymentsTable({ app, deployments }: { app: App; deployments: Deployment[] }) {
  const client = useQueryClient();
  const rollback = useMutation({
    mutationFn: (id: number) => api<Deployment>("POST", `/api/apps/${enc(app.name)}/rollback`, { deployment_id: id }),
    onSuccess: () => client.invalidateQueries({ queryKey: ["deployments", app.name] }),
  });
  return (
    <Card>
      <CardHeader>
        <CardTitle>Deployments</CardTitle>
      </CardHeader>
      <CardContent className="grid gap-2">
        <ErrorNote error={rollback.error} />
        {deployments.length === 0 && <p className="text-sm text-muted-foreground">Not deployed yet.</p>}
        <ul className="grid gap-2" data-testid="deployments">
          {deployments.map((d) => (
            <li key={d.id} className="grid gap-1 rounded-lg border p-3 text-sm" data-deployment={d.id} data-status={d.status}>
              <div className="flex flex-wrap items-center gap-2">
                <Link className="font-medium underline-offset-4 hover:underline" to={`/deployments/${d.id}`}>
                  #{d.id}
                </Link>
                <StatusBadge status={d.status} />
                <span className="font-mono text-xs">{shortSha(d.commit_sha)}</span>
                <span className="truncate">{d.commit_subject}</span>
                <span className="text-xs text-muted-foreground">{d.trigger}{d.rollback_of ? ` of #${d.rollback_of}` : ""}</span>
                {(d.status === "replaced" || d.status === "running") && d.id !== app.running_deployment && d.image && (
                  <Button size="sm" variant="outline" className="ml-auto" onClick={() => rollback.mutate(d.id)} disabled={rollback.isPending}>
                    Roll back to #{d.id}
                  </Button>
                )}
              </div>
              <ol className="flex flex-wrap gap-x-3 gap-y-0.5 text-xs text-muted-foreground" aria-label="Stage times">
                {STAGES.filter(([k]) => d[k]).map(([k, label]) => (
                  <li key={k}>
                    {label} {time(d[k])}
                  </li>
                ))}
              </ol>
              {d.reason && <p className="text-xs text-destructive">{d.reason}</p>}
            </li>
          ))}
        </ul>
      </CardContent>
    </Card>
  );
}
