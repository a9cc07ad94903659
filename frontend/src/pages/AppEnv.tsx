import { useState } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, enc, get, type EnvVar } from "@/lib/api";
import { Button } from "@/components/ui/button";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Input } from "@/components/ui/input";
import { Field } from "@/components/ui/field";
import { ErrorNote } from "@/components/ErrorNote";
import { useAppName } from "./AppPage";

/** The app's variables. A secret's value is write-only: the API never sends it back, so the
 * page shows it masked and editing it means typing a new one. */
export function AppEnv() {
  const name = useAppName();
  const client = useQueryClient();
  const vars = useQuery({ queryKey: ["env", name], queryFn: () => get<EnvVar[]>(`/api/apps/${enc(name)}/env`) });
  const [key, setKey] = useState("");
  const [value, setValue] = useState("");
  const [secret, setSecret] = useState(false);
  const refresh = () => client.invalidateQueries({ queryKey: ["env", name] });
  const set = useMutation({
    mutationFn: (v: { key: string; value: string; secret: boolean }) =>
      api<EnvVar>("PUT", `/api/apps/${enc(name)}/env/${enc(v.key)}`, { value: v.value, secret: v.secret }),
    onSuccess: () => {
      setKey("");
      setValue("");
      setSecret(false);
      void refresh();
    },
  });
  const unset = useMutation({
    mutationFn: (k: string) => api<void>("DELETE", `/api/apps/${enc(name)}/env/${enc(k)}`),
    onSuccess: () => void refresh(),
  });
  return (
    <div className="grid gap-4">
      <Card>
        <CardHeader>
          <CardTitle>Variables</CardTitle>
          <CardDescription>They apply at the next deployment. Secret values are encrypted and never shown again.</CardDescription>
        </CardHeader>
        <CardContent className="grid gap-2">
          <ErrorNote error={vars.error ?? unset.error} />
          {vars.data?.length === 0 && <p className="text-sm text-muted-foreground">No variables.</p>}
          <ul className="grid gap-2" data-testid="env-list">
            {vars.data?.map((v) => (
              <li key={v.key} className="flex flex-wrap items-center gap-2 rounded-lg border p-2 text-sm" data-key={v.key}>
                <code className="font-mono font-medium">{v.key}</code>
                <span className="min-w-0 flex-1 break-all font-mono text-xs text-muted-foreground" data-value>
                  {v.value}
                </span>
                {v.secret && <span className="text-xs text-muted-foreground">secret</span>}
                <Button
                  size="sm"
                  variant="outline"
                  onClick={() => {
                    setKey(v.key);
                    setValue(v.secret ? "" : v.value);
                    setSecret(v.secret);
                  }}
                >
                  Edit<span className="sr-only"> {v.key}</span>
                </Button>
                <Button size="sm" variant="outline" onClick={() => unset.mutate(v.key)} disabled={unset.isPending}>
                  Delete<span className="sr-only"> {v.key}</span>
                </Button>
              </li>
            ))}
          </ul>
        </CardContent>
      </Card>
      <Card>
        <CardHeader>
          <CardTitle>Set a variable</CardTitle>
        </CardHeader>
        <CardContent>
          <form
            className="grid gap-4 sm:grid-cols-[1fr_2fr_auto_auto] sm:items-end"
            onSubmit={(e) => {
              e.preventDefault();
              set.mutate({ key: key.trim(), value, secret });
            }}
          >
            <Field id="env-key" label="Key">
              <Input value={key} onChange={(e) => setKey(e.target.value)} autoComplete="off" spellCheck={false} />
            </Field>
            <Field id="env-value" label="Value">
              <Input
                type={secret ? "password" : "text"}
                value={value}
                onChange={(e) => setValue(e.target.value)}
                autoComplete="off"
                spellCheck={false}
              />
            </Field>
            <label className="flex h-9 items-center gap-2 text-sm">
              <input type="checkbox" checked={secret} onChange={(e) => setSecret(e.target.checked)} /> Secret
            </label>
            <Button type="submit" disabled={!key.trim() || set.isPending}>
              Save variable
            </Button>
          </form>
          <div className="mt-3">
            <ErrorNote error={set.error} />
          </div>
        </CardContent>
      </Card>
    </div>
  );
}
