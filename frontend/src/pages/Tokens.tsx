import { useState } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, get, type CreatedToken, type Token } from "@/lib/api";
import { Button } from "@/components/ui/button";
import { Card, CardContent, CardHeader, CardTitle } from "@/components/ui/card";
import { Input } from "@/components/ui/input";
import { Field } from "@/components/ui/field";
import { SecretOnce } from "@/components/SecretOnce";
import { ErrorNote } from "@/components/ErrorNote";
import { ApiError, fieldMessage } from "@/lib/api";
import { ago } from "@/lib/utils";

export function Tokens() {
  const client = useQueryClient();
  const tokens = useQuery({ queryKey: ["tokens"], queryFn: () => get<Token[]>("/api/tokens") });
  const [name, setName] = useState("");
  const create = useMutation({
    mutationFn: (n: string) => api<CreatedToken>("POST", "/api/tokens", { name: n }),
    onSuccess: () => {
      setName("");
      void client.invalidateQueries({ queryKey: ["tokens"] });
    },
  });
  const revoke = useMutation({
    mutationFn: (id: number) => api<Token>("DELETE", `/api/tokens/${id}`),
    onSuccess: () => void client.invalidateQueries({ queryKey: ["tokens"] }),
  });
  const nameError =
    create.error instanceof ApiError && (create.error.status === 422 || create.error.status === 409)
      ? fieldMessage(create.error.message)
      : undefined;
  return (
    <div className="grid gap-4">
      <h1 className="text-2xl font-semibold">API tokens</h1>
      <Card>
        <CardHeader>
          <CardTitle>New token</CardTitle>
        </CardHeader>
        <CardContent className="grid gap-3">
          <form
            className="flex flex-wrap items-end gap-3"
            onSubmit={(e) => {
              e.preventDefault();
              create.mutate(name.trim());
            }}
          >
            <Field id="token-name" label="Name" error={nameError} className="min-w-48 flex-1">
              <Input value={name} onChange={(e) => setName(e.target.value)} autoComplete="off" />
            </Field>
            <Button type="submit" disabled={!name.trim() || create.isPending}>
              Create token
            </Button>
          </form>
          {!nameError && <ErrorNote error={create.error} />}
          {create.data && (
            <SecretOnce
              title={`Token ${create.data.name}`}
              secret={create.data.token}
              text="Shown only now: store it somewhere safe. Rivetr keeps only its hash."
            />
          )}
        </CardContent>
      </Card>
      <ErrorNote error={tokens.error ?? revoke.error} />
      <Card className="overflow-x-auto">
        <table className="w-full text-sm">
          <thead className="border-b bg-muted text-left text-xs uppercase text-muted-foreground">
            <tr>
              <th scope="col" className="px-4 py-2 font-medium">Name</th>
              <th scope="col" className="hidden px-4 py-2 font-medium sm:table-cell">Created</th>
              <th scope="col" className="px-4 py-2 font-medium">Last used</th>
              <th scope="col" className="px-4 py-2 font-medium">
                <span className="sr-only">State</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {tokens.data?.map((t) => (
              <tr key={t.id} className="border-b last:border-0" data-token={t.name}>
                <td className="px-4 py-3 font-medium">{t.name}</td>
                <td className="hidden px-4 py-3 text-muted-foreground sm:table-cell" title={t.created_at}>
                  {ago(t.created_at)}
                </td>
                <td className="px-4 py-3 text-muted-foreground" title={t.last_used_at ?? undefined}>
                  {ago(t.last_used_at)}
                </td>
                <td className="px-4 py-3 text-right">
                  {t.revoked_at ? (
                    <span className="text-xs text-muted-foreground">revoked {ago(t.revoked_at)}</span>
                  ) : (
                    <Button size="sm" variant="outline" onClick={() => revoke.mutate(t.id)} disabled={revoke.isPending}>
                      Revoke<span className="sr-only"> {t.name}</span>
                    </Button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </Card>
    </div>
  );
}
