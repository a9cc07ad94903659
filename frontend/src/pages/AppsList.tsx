import { DomainLinks } from "@/components/DomainLinks";
import { Link } from "react-router";
import { useQuery } from "@tanstack/react-query";
import { get, enc, type App } from "@/lib/api";
import { Button } from "@/components/ui/button";
import { Card } from "@/components/ui/card";
import { StatusBadge } from "@/components/StatusBadge";
import { ErrorNote } from "@/components/ErrorNote";
import { ago, shortSha } from "@/lib/utils";

export function AppsList() {
  const apps = useQuery({ queryKey: ["apps"], queryFn: () => get<App[]>("/api/apps") });
  return (
    <div className="grid gap-4">
      <div className="flex items-center justify-between gap-4">
        <h1 className="text-2xl font-semibold">Apps</h1>
        <Button asChild>
          <Link to="/apps/new">New app</Link>
        </Button>
      </div>
      <ErrorNote error={apps.error} />
      {apps.data && apps.data.length === 0 && (
        <Card className="p-6 text-sm text-muted-foreground">No apps yet. Create one from a git repository or an image.</Card>
      )}
      {apps.data && apps.data.length > 0 && (
        <Card className="overflow-hidden">
          <table className="w-full text-sm" data-testid="apps-table">
            <thead className="border-b bg-muted text-left text-xs uppercase text-muted-foreground">
              <tr>
                <th scope="col" className="px-4 py-2 font-medium">App</th>
                <th scope="col" className="px-4 py-2 font-medium">Status</th>
                <th scope="col" className="hidden px-4 py-2 font-medium md:table-cell">Commit</th>
                <th scope="col" className="hidden px-4 py-2 font-medium md:table-cell">Domains</th>
                <th scope="col" className="hidden px-4 py-2 font-medium sm:table-cell">Last deploy</th>
              </tr>
            </thead>
            <tbody>
              {apps.data.map((a) => (
                <tr key={a.name} className="border-b last:border-0" data-app={a.name}>
                  <td className="px-4 py-3">
                    <Link to={`/apps/${enc(a.name)}`} className="font-medium underline-offset-4 hover:underline">
                      {a.name}
                    </Link>
                    <DomainLinks domains={a.domains} truncate className="mt-0.5 text-xs md:hidden" />
                  </td>
                  <td className="px-4 py-3">
                    <StatusBadge status={a.status} />
                  </td>
                  <td className="hidden px-4 py-3 font-mono text-xs md:table-cell">{shortSha(a.current_commit)}</td>
                  <td className="hidden px-4 py-3 md:table-cell">
                    <DomainLinks domains={a.domains} />
                  </td>
                  <td className="hidden px-4 py-3 text-muted-foreground sm:table-cell" title={a.latest_deployment?.queued_at}>
                    {a.latest_deployment ? ago(a.latest_deployment.finished_at ?? a.latest_deployment.queued_at) : "never"}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </Card>
      )}
    </div>
  );
}
