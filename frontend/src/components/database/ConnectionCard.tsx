import type { ManagedDatabase } from "@/lib/api";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { ago, bytes } from "@/lib/utils";

/** How linked apps reach the database, and what it runs as. The API never sends the
 * password: a linked app gets it inside its connection URL, and nothing else does. */
export function ConnectionCard({ db }: { db: ManagedDatabase }) {
  return (
    <div className="grid gap-4 md:grid-cols-2">
      <Card>
        <CardHeader>
          <CardTitle>Connection</CardTitle>
          <CardDescription>From the apps linked to it, on their own network; it is not published on the host.</CardDescription>
        </CardHeader>
        <CardContent>
          <dl className="grid grid-cols-[auto_1fr] gap-x-4 gap-y-1 text-sm" data-testid="connection">
            <Row term="Host" value={db.name} mono />
            <Row term="Port" value={String(db.port)} mono />
            {db.username && <Row term="User" value={db.username} mono />}
            {db.database && <Row term="Database" value={db.database} mono />}
            <dt className="text-muted-foreground">Password</dt>
            <dd>Not shown: each linked app gets it in its connection URL.</dd>
          </dl>
        </CardContent>
      </Card>
      <Card>
        <CardHeader>
          <CardTitle>Container</CardTitle>
        </CardHeader>
        <CardContent>
          <dl className="grid grid-cols-[auto_1fr] gap-x-4 gap-y-1 text-sm">
            <Row term="Image" value={db.image} mono />
            <Row term="Volume" value={db.volume} mono />
            <Row term="Container" value={db.container} mono />
            <Row term="Limits" value={limits(db)} />
            <dt className="text-muted-foreground">Created</dt>
            <dd title={db.created_at}>{ago(db.created_at)}</dd>
          </dl>
        </CardContent>
      </Card>
    </div>
  );
}

function limits(db: ManagedDatabase): string {
  const parts = [db.memory_bytes ? `${bytes(db.memory_bytes)} memory` : null, db.cpus ? `${db.cpus} CPUs` : null];
  return parts.filter(Boolean).join(", ") || "none";
}

function Row({ term, value, mono = false }: { term: string; value: string; mono?: boolean }) {
  return (
    <>
      <dt className="text-muted-foreground">{term}</dt>
      <dd className={mono ? "min-w-0 break-all font-mono text-xs leading-5" : undefined}>{value}</dd>
    </>
  );
}
