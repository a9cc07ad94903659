import { useState } from "react";
import { useNavigate } from "react-router";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { api, ApiError, enc, fieldMessage, type CreateDatabaseBody, type DbEngine, type ManagedDatabase } from "@/lib/api";
import { ENGINES } from "@/lib/databases";
import { Button } from "@/components/ui/button";
import { Card, CardContent } from "@/components/ui/card";
import { Input } from "@/components/ui/input";
import { Select } from "@/components/ui/select";
import { Field } from "@/components/ui/field";
import { ErrorNote } from "@/components/ErrorNote";

type FormField = "name" | "engine" | "version";

/** The field an API error names (a 422, or a 409 for a taken name); none for the rest. */
function fieldOfError(error: unknown): FormField | undefined {
  if (!(error instanceof ApiError)) return undefined;
  if (error.status === 409) return "name";
  return error.field === "name" || error.field === "engine" || error.field === "version" ? error.field : undefined;
}

/** Creates a database. The API answers once it accepts connections, which takes a few
 * seconds (longer when its image is pulled first). */
export function NewDatabase() {
  const navigate = useNavigate();
  const client = useQueryClient();
  const [name, setName] = useState("");
  const [engine, setEngine] = useState<DbEngine>("postgres");
  const [version, setVersion] = useState("");
  const create = useMutation({
    mutationFn: (body: CreateDatabaseBody) => api<ManagedDatabase>("POST", "/api/databases", body),
    onSuccess: (db) => {
      client.setQueryData(["database", db.name], db);
      void client.invalidateQueries({ queryKey: ["databases"] });
      navigate(`/databases/${enc(db.name)}`);
    },
  });
  const field = fieldOfError(create.error);
  const err = (f: FormField) => (field === f && create.error instanceof Error ? fieldMessage(create.error.message) : undefined);
  const defaultVersion = ENGINES.find((e) => e.value === engine)?.version ?? "";
  return (
    <div className="grid max-w-2xl gap-4">
      <h1 className="text-2xl font-semibold">New database</h1>
      <Card>
        <CardContent className="pt-4 sm:pt-6">
          <form
            className="grid gap-4"
            noValidate
            onSubmit={(e) => {
              e.preventDefault();
              create.mutate({ name: name.trim(), engine, version: version.trim() || null });
            }}
          >
            <Field id="db-name" label="Name" hint="Lower-case letters, digits and hyphens; linked apps reach it by this host name." error={err("name")}>
              <Input value={name} onChange={(e) => setName(e.target.value)} autoComplete="off" spellCheck={false} required />
            </Field>
            <div className="grid gap-4 sm:grid-cols-2">
              <Field id="db-engine" label="Engine" error={err("engine")}>
                <Select value={engine} onChange={(e) => setEngine(e.target.value as DbEngine)}>
                  {ENGINES.map((e) => (
                    <option key={e.value} value={e.value}>
                      {e.label}
                    </option>
                  ))}
                </Select>
              </Field>
              <Field id="db-version" label="Version" hint={`The image's tag. Empty: ${defaultVersion}.`} error={err("version")}>
                <Input value={version} onChange={(e) => setVersion(e.target.value)} placeholder={defaultVersion} autoComplete="off" spellCheck={false} />
              </Field>
            </div>
            {!field && <ErrorNote error={create.error} />}
            {field && (
              <p className="sr-only" role="status">
                The form has an error: {create.error?.message}
              </p>
            )}
            <div className="flex flex-wrap items-center gap-3">
              <Button type="submit" disabled={!name.trim() || create.isPending}>
                {create.isPending ? "Creating…" : "Create database"}
              </Button>
              {create.isPending && (
                <p className="text-sm text-muted-foreground" role="status">
                  Starting it and waiting until it accepts connections…
                </p>
              )}
            </div>
          </form>
        </CardContent>
      </Card>
    </div>
  );
}
