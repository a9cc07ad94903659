import { useQuery } from "@tanstack/react-query";
import { get, type System } from "@/lib/api";
import { Card, CardContent, CardHeader, CardTitle } from "@/components/ui/card";
import { ErrorNote } from "@/components/ErrorNote";
import { bytes } from "@/lib/utils";

function duration(s: number): string {
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  return d ? `${d} d ${h} h` : h ? `${h} h ${m} min` : `${m} min ${s % 60} s`;
}

interface RuntimeStatus {
  status?: string;
  engine?: string;
  version?: string;
  rootless?: boolean;
  message?: string;
  tried?: { place?: string; error?: string }[];
}

export function SystemPage() {
  const sys = useQuery({ queryKey: ["system"], queryFn: () => get<System>("/api/system") });
  const s = sys.data;
  const rt = (s?.runtime ?? {}) as RuntimeStatus;
  return (
    <div className="grid gap-4">
      <h1 className="text-2xl font-semibold">System</h1>
      <ErrorNote error={sys.error} />
      {s && (
        <div className="grid gap-4 md:grid-cols-2">
          <Card>
            <CardHeader>
              <CardTitle>Rivetr</CardTitle>
            </CardHeader>
            <CardContent>
              <dl className="grid grid-cols-[auto_1fr] gap-x-4 gap-y-1 text-sm">
                <dt className="text-muted-foreground">Version</dt>
                <dd data-testid="version">{s.version}</dd>
                <dt className="text-muted-foreground">Uptime</dt>
                <dd>{duration(s.uptime_s)}</dd>
                <dt className="text-muted-foreground">Database</dt>
                <dd>
                  {s.database.status}, schema {s.database.schema_version}, {bytes(s.database.size_bytes)}; {s.database.apps} apps,{" "}
                  {s.database.deployments} deployments
                </dd>
              </dl>
            </CardContent>
          </Card>
          <Card>
            <CardHeader>
              <CardTitle>Container engine</CardTitle>
            </CardHeader>
            <CardContent className="text-sm">
              {rt.engine ? (
                <p data-testid="engine">
                  {rt.engine} {rt.version} ({rt.rootless ? "rootless" : "rootful"})
                </p>
              ) : (
                <div className="grid gap-1">
                  <p>No container engine found{rt.message ? `: ${rt.message}` : ""}.</p>
                  <pre className="overflow-x-auto whitespace-pre-wrap text-xs text-muted-foreground">{JSON.stringify(s.runtime, null, 2)}</pre>
                </div>
              )}
            </CardContent>
          </Card>
          <Card className="md:col-span-2">
            <CardHeader>
              <CardTitle>Proxy</CardTitle>
            </CardHeader>
            <CardContent className="overflow-x-auto">
              {s.proxy.length === 0 ? (
                <p className="text-sm text-muted-foreground">No routes yet.</p>
              ) : (
                <table className="w-full text-sm">
                  <thead className="text-left text-xs uppercase text-muted-foreground">
                    <tr>
                      <th scope="col" className="py-1 pr-4 font-medium">Domain</th>
                      <th scope="col" className="py-1 pr-4 font-medium">Requests</th>
                      <th scope="col" className="py-1 pr-4 font-medium">5xx</th>
                      <th scope="col" className="py-1 pr-4 font-medium">In</th>
                      <th scope="col" className="py-1 font-medium">Out</th>
                    </tr>
                  </thead>
                  <tbody>
                    {s.proxy.map((r) => (
                      <tr key={r.host} className="border-t">
                        <td className="break-all py-1 pr-4">{r.host}</td>
                        <td className="py-1 pr-4">{r.requests}</td>
                        <td className="py-1 pr-4">{r.responses_5xx}</td>
                        <td className="whitespace-nowrap py-1 pr-4">{bytes(r.bytes_in)}</td>
                        <td className="whitespace-nowrap py-1">{bytes(r.bytes_out)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              )}
            </CardContent>
          </Card>
        </div>
      )}
    </div>
  );
}
