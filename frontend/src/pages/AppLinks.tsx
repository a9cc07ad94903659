import { useState } from "react";
import { Link } from "react-router";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, ApiError, enc, fieldMessage, get, type DatabaseLink } from "@/lib/api";
import { engineLabel, useDatabases } from "@/lib/databases";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Input } from "@/components/ui/input";
import { Select } from "@/components/ui/select";
import { Field } from "@/components/ui/field";
import { ErrorNote } from "@/components/ErrorNote";
import { useAppName } from "./AppPage";

/** The databases an app is linked to. A link gives the app's containers the connection URL
 * in a variable from its next deployment, and puts the database on the app's network now. */
export function AppLinks() {
  const name = useAppName();
  const client = useQueryClient();
  const links = useQuery({ queryKey: ["links", name], queryFn: () => get<DatabaseLink[]>(`/api/apps/${enc(name)}/links`) });
  const unlink = useMutation({
    mutationFn: (db: string) => api<void>("DELETE", `/api/apps/${enc(name)}/links/${enc(db)}`),
    onSuccess: () => void client.invalidateQueries({ queryKey: ["links", name] }),
  });
  return (
    <div className="grid gap-4">
      <Card>
        <CardHeader>
          <CardTitle>Linked databases</CardTitle>
          <CardDescription>
            The variables apply at the next deployment. Removing a link takes the database off the app's network at once.
          </CardDescription>
        </CardHeader>
        <CardContent className="grid gap-2">
          <ErrorNote error={links.error ?? unlink.error} />
          {links.isPending && <p className="text-sm text-muted-foreground">Loading…</p>}
          {links.data?.length === 0 && <p className="text-sm text-muted-foreground">No linked databases.</p>}
          <ul className="grid gap-2" data-testid="links">
            {links.data?.map((l) => (
              <li key={l.database} className="flex flex-wrap items-center gap-x-4 gap-y-1 rounded-lg border p-3 text-sm" data-link={l.database}>
                <Link to={`/databases/${enc(l.database)}`} className="font-medium underline-offset-4 hover:underline">
                  {l.database}
                </Link>
                <span className="text-muted-foreground">{engineLabel(l.engine)}</span>
                <span>
                  <code className="font-mono text-xs" data-env>
                    {l.env}
                  </code>
                </span>
                <span className="text-xs text-muted-foreground">
                  host <code className="font-mono">{l.host}</code> ({l.address})
                </span>
                <Button size="sm" variant="outline" className="sm:ml-auto" onClick={() => unlink.mutate(l.database)} disabled={unlink.isPending}>
                  Unlink<span className="sr-only"> {l.database}</span>
                </Button>
              </li>
            ))}
          </ul>
        </CardContent>
      </Card>
      <AddLink app={name} linked={links.data ?? []} />
    </div>
  );
}

function AddLink({ app, linked }: { app: string; linked: DatabaseLink[] }) {
  const client = useQueryClient();
  const databases = useDatabases();
  const free = (databases.data ?? []).filter((d) => !linked.some((l) => l.database === d.name));
  const [database, setDatabase] = useState("");
  const [env, setEnv] = useState("DATABASE_URL");
  const chosen = free.some((d) => d.name === database) ? database : (free[0]?.name ?? "");
  const add = useMutation({
    mutationFn: () => api<DatabaseLink>("POST", `/api/apps/${enc(app)}/links`, { database: chosen, env: env.trim() }),
    onSuccess: () => {
      setDatabase("");
      void client.invalidateQueries({ queryKey: ["links", app] });
    },
  });
  const e = add.error;
  // A bad name is the variable's; a 409 is a taken variable or a link that exists.
  const envError = e instanceof ApiError && (e.field === "env" || (e.status === 409 && /already has/.test(e.message))) ? fieldMessage(e.message) : undefined;
  return (
    <Card>
      <CardHeader>
        <CardTitle>Link a database</CardTitle>
      </CardHeader>
      <CardContent className="grid gap-3">
        <ErrorNote error={databases.error} />
        {databases.data && free.length === 0 ? (
          <p className="text-sm text-muted-foreground">
            {databases.data.length === 0 ? "No databases yet." : "Every database is linked already."}{" "}
            <Link className="underline" to="/databases/new">
              Create a database
            </Link>
          </p>
        ) : (
          <form
            className="grid gap-4 sm:grid-cols-[1fr_1fr_auto] sm:items-start"
            noValidate
            onSubmit={(ev) => {
              ev.preventDefault();
              add.mutate();
            }}
          >
            <Field id="link-database" label="Database">
              <Select value={chosen} onChange={(ev) => setDatabase(ev.target.value)}>
                {free.map((d) => (
                  <option key={d.name} value={d.name}>
                    {d.name} ({engineLabel(d.engine)} {d.version})
                  </option>
                ))}
              </Select>
            </Field>
            <Field id="link-env" label="Variable" hint="Gets the connection URL." error={envError}>
              <Input value={env} onChange={(ev) => setEnv(ev.target.value)} autoComplete="off" spellCheck={false} />
            </Field>
            <Button type="submit" className="sm:mt-5" disabled={!chosen || !env.trim() || add.isPending}>
              Link database
            </Button>
          </form>
        )}
        {!envError && <ErrorNote error={e} />}
        {add.isSuccess && (
          <Alert variant="success">
            Linked {add.data.database} as {add.data.env}. Deploy the app for it to get the variable.
          </Alert>
        )}
      </CardContent>
    </Card>
  );
}
