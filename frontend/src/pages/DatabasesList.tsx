import { Link, useLocation } from "react-router";
import { enc } from "@/lib/api";
import { engineLabel, useDatabases } from "@/lib/databases";
import { Button } from "@/components/ui/button";
import { Alert } from "@/components/ui/alert";
import { Card } from "@/components/ui/card";
import { StatusBadge } from "@/components/StatusBadge";
import { ErrorNote } from "@/components/ErrorNote";

/** Every managed database with its engine, version and whether it accepts connections. */
export function DatabasesList() {
  const databases = useDatabases();
  // What a deletion on the database's page left in place (a kept volume and where it is).
  const notice = (useLocation().state as { notice?: string } | null)?.notice;
  return (
    <div className="grid gap-4">
      <div className="flex items-center justify-between gap-4">
        <h1 className="text-2xl font-semibold">Databases</h1>
        <Button asChild>
          <Link to="/databases/new">New database</Link>
        </Button>
      </div>
      {notice && <Alert variant="success" data-testid="notice">{notice}</Alert>}
      <ErrorNote error={databases.error} />
      {databases.isPending && <p className="text-sm text-muted-foreground">Loading…</p>}
      {databases.data && databases.data.length === 0 && (
        <Card className="p-6 text-sm text-muted-foreground">
          No databases yet. Create PostgreSQL, MariaDB, MySQL or Redis, then link apps to it.
        </Card>
      )}
      {databases.data && databases.data.length > 0 && (
        <Card className="overflow-hidden">
          <table className="w-full text-sm" data-testid="databases-table">
            <thead className="border-b bg-muted text-left text-xs uppercase text-muted-foreground">
              <tr>
                <th scope="col" className="px-4 py-2 font-medium">Database</th>
                <th scope="col" className="px-4 py-2 font-medium">Engine</th>
                <th scope="col" className="hidden px-4 py-2 font-medium sm:table-cell">Version</th>
                <th scope="col" className="px-4 py-2 font-medium">State</th>
              </tr>
            </thead>
            <tbody>
              {databases.data.map((d) => (
                <tr key={d.name} className="border-b last:border-0" data-database={d.name}>
                  <td className="px-4 py-3">
                    <Link to={`/databases/${enc(d.name)}`} className="font-medium underline-offset-4 hover:underline">
                      {d.name}
                    </Link>
                  </td>
                  <td className="px-4 py-3">
                    {engineLabel(d.engine)}
                    <span className="text-muted-foreground sm:hidden"> {d.version}</span>
                  </td>
                  <td className="hidden px-4 py-3 sm:table-cell">{d.version}</td>
                  <td className="px-4 py-3">
                    <StatusBadge status={d.status} />
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
