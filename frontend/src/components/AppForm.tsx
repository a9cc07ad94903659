import { useState } from "react";
import { ApiError, fieldMessage, type App, type AppBody } from "@/lib/api";
import { envChanged, envProblems, previewValuesOf, previewsBodyOf, type PreviewValues } from "@/lib/previews";
import { PreviewSettings, type PreviewField } from "@/components/PreviewSettings";
import { Button } from "@/components/ui/button";
import { Input, Textarea } from "@/components/ui/input";
import { Field } from "@/components/ui/field";
import { Alert } from "@/components/ui/alert";

/** The form's values, as typed. Empty means "the default". */
export interface AppFormValues {
  name: string;
  source: "git" | "image";
  git_url: string;
  branch: string;
  image: string;
  port: string;
  domains: string;
  health_path: string;
  health_interval_ms: string;
  health_timeout_ms: string;
  health_retries: string;
  memory: string;
  cpus: string;
  replicas: string;
  /** How pull requests get previews (the settings form only). */
  previews: PreviewValues;
}

export function valuesOf(app?: App): AppFormValues {
  return {
    name: app?.name ?? "",
    source: app?.image ? "image" : "git",
    git_url: app?.git_url ?? "",
    branch: app?.branch ?? "main",
    image: app?.image ?? "",
    port: String(app?.port ?? 8080),
    domains: app?.domains.join("\n") ?? "",
    health_path: app?.healthcheck.path ?? "/",
    health_interval_ms: app ? String(app.healthcheck.interval_ms) : "",
    health_timeout_ms: app ? String(app.healthcheck.timeout_ms) : "",
    health_retries: app ? String(app.healthcheck.retries) : "",
    memory: app?.resources.memory_bytes ? String(app.resources.memory_bytes) : "",
    cpus: app?.resources.cpus ? String(app.resources.cpus) : "",
    replicas: String(app?.replicas ?? 1),
    previews: previewValuesOf(app?.previews),
  };
}

/** A number field's value: a number when it reads as one, else the text as typed, so the
 * API's own check names the field (and says what it wants). */
function num(s: string): number | undefined {
  const t = s.trim();
  if (!t) return undefined;
  const n = Number(t);
  return Number.isFinite(n) ? n : (t as unknown as number);
}

/** The request body for the values; `create` includes the name. */
export function bodyOf(v: AppFormValues, create: boolean): AppBody {
  const body: AppBody = {};
  if (create) body.name = v.name.trim();
  if (v.source === "git") {
    body.git_url = v.git_url.trim();
    body.branch = v.branch.trim() || "main";
  } else {
    body.image = v.image.trim();
  }
  body.port = num(v.port);
  body.domains = v.domains
    .split(/[\s,]+/)
    .map((d) => d.trim())
    .filter(Boolean);
  const hc: NonNullable<AppBody["healthcheck"]> = {};
  if (v.health_path.trim()) hc.path = v.health_path.trim();
  if (num(v.health_interval_ms) !== undefined) hc.interval_ms = num(v.health_interval_ms);
  if (num(v.health_timeout_ms) !== undefined) hc.timeout_ms = num(v.health_timeout_ms);
  if (num(v.health_retries) !== undefined) hc.retries = num(v.health_retries);
  body.healthcheck = hc;
  const resources: NonNullable<AppBody["resources"]> = {};
  if (v.memory.trim()) resources.memory = v.memory.trim();
  if (num(v.cpus) !== undefined) resources.cpus = num(v.cpus);
  body.resources = resources;
  body.replicas = num(v.replicas);
  if (!create) body.previews = previewsBodyOf(v.previews);
  return body;
}

type FormField = Exclude<keyof AppFormValues, "source" | "previews"> | PreviewField;

/** Which form field shows an error the API gave for `field`. */
const FIELD_OF: Record<string, FormField> = {
  name: "name",
  git_url: "git_url",
  branch: "branch",
  image: "image",
  port: "port",
  domains: "domains",
  "healthcheck.path": "health_path",
  "healthcheck.interval_ms": "health_interval_ms",
  "healthcheck.timeout_ms": "health_timeout_ms",
  "healthcheck.retries": "health_retries",
  "resources.memory": "memory",
  "resources.cpus": "cpus",
  replicas: "replicas",
  "previews.enabled": "preview_enabled",
  "previews.domain_template": "preview_domain_template",
  "previews.limit": "preview_limit",
  "previews.forks": "preview_forks",
  "previews.drafts": "preview_drafts",
  "previews.env": "preview_env",
};

/** The field an API error belongs to, and the error for the form as a whole otherwise. */
export function placeError(error: unknown): { field?: FormField; envKey?: string; message: string } | null {
  if (!error) return null;
  if (error instanceof ApiError) {
    // A preview variable's name: `previews.env.NAME` goes to its row.
    const envKey = error.field?.startsWith("previews.env.") ? error.field.slice("previews.env.".length) : undefined;
    if (envKey) return { field: "preview_env", envKey, message: fieldMessage(error.message) };
    const field = error.field ? FIELD_OF[error.field] : undefined;
    if (field) return { field, message: fieldMessage(error.message) };
    if (error.status === 409 && /app named/.test(error.message)) return { field: "name", message: error.message };
    if (error.status === 409 && /domain/.test(error.message)) return { field: "domains", message: error.message };
    return { message: `${error.message} (HTTP ${error.status})` };
  }
  return { message: String((error as Error).message ?? error) };
}

export function AppForm({
  initial,
  create,
  submitLabel,
  pending,
  error,
  onSubmit,
}: {
  initial: AppFormValues;
  create: boolean;
  submitLabel: string;
  pending: boolean;
  error: unknown;
  onSubmit: (body: AppBody) => void;
}) {
  const [v, setV] = useState(initial);
  // What stops the preview variables from being sent, found when the form is submitted.
  const [rowProblems, setRowProblems] = useState<Map<number, string>>(new Map());
  // When the page itself stopped a submission, the API error of the one before is stale: hidden.
  const [localFailed, setLocalFailed] = useState(false);
  const placed = localFailed ? null : placeError(error);
  const err = (f: FormField) => (placed?.field === f && !placed.envKey ? placed.message : undefined);
  const set = (f: keyof AppFormValues) => (e: { target: { value: string } }) => setV({ ...v, [f]: e.target.value });
  const rowErrors = new Map(rowProblems);
  if (placed?.envKey) {
    const row = v.previews.env.find((r) => r.key.trim() === placed.envKey);
    if (row) rowErrors.set(row.id, placed.message);
  }
  const envLost = placed?.envKey && !v.previews.env.some((r) => r.key.trim() === placed.envKey) ? `${placed.envKey}: ${placed.message}` : undefined;
  return (
    <form
      className="grid gap-6"
      noValidate
      onSubmit={(e) => {
        e.preventDefault();
        const problems = !create && envChanged(v.previews.env, v.previews.env_keys) ? envProblems(v.previews.env) : new Map<number, string>();
        setRowProblems(problems);
        setLocalFailed(problems.size > 0);
        if (problems.size > 0) {
          // The first row to fix gets the focus (its name field, or its value when named).
          const i = v.previews.env.findIndex((r) => problems.has(r.id));
          const row = v.previews.env[i];
          const which = row?.key.trim() ? "value" : "name";
          const input = e.currentTarget.querySelector<HTMLInputElement>(`[aria-label="Preview variable ${i + 1} ${which}"]`);
          input?.focus();
          return;
        }
        onSubmit(bodyOf(v, create));
      }}
    >
      {placed && !placed.field && <Alert variant="destructive">{placed.message}</Alert>}
      {rowProblems.size > 0 && (
        <p className="sr-only" role="status">
          The preview variables need attention: {[...rowProblems.values()][0]}
        </p>
      )}
      {placed?.field && (
        <p className="sr-only" role="status">
          The form has an error: {placed.message}
        </p>
      )}
      <fieldset className="grid gap-4">
        <legend className="mb-2 text-sm font-semibold">Source</legend>
        {create && (
          <Field id="name" label="Name" hint="Lower-case letters, digits and hyphens; part of container names." error={err("name")}>
            <Input value={v.name} onChange={set("name")} autoComplete="off" required />
          </Field>
        )}
        <div className="flex gap-4 text-sm" role="radiogroup" aria-label="Build from">
          <label className="flex items-center gap-2">
            <input type="radio" name="source" checked={v.source === "git"} onChange={() => setV({ ...v, source: "git" })} />
            Git repository
          </label>
          <label className="flex items-center gap-2">
            <input type="radio" name="source" checked={v.source === "image"} onChange={() => setV({ ...v, source: "image" })} />
            Prebuilt image
          </label>
        </div>
        {v.source === "git" ? (
          <div className="grid gap-4 sm:grid-cols-[2fr_1fr]">
            <Field id="git_url" label="Git URL" hint="https, ssh, file:// or an absolute local path." error={err("git_url")}>
              <Input value={v.git_url} onChange={set("git_url")} autoComplete="off" spellCheck={false} />
            </Field>
            <Field id="branch" label="Branch" error={err("branch")}>
              <Input value={v.branch} onChange={set("branch")} autoComplete="off" />
            </Field>
          </div>
        ) : (
          <Field id="image" label="Image" hint="For example docker.io/library/nginx:1.27" error={err("image")}>
            <Input value={v.image} onChange={set("image")} autoComplete="off" spellCheck={false} />
          </Field>
        )}
      </fieldset>
      <fieldset className="grid gap-4 sm:grid-cols-2">
        <legend className="mb-2 text-sm font-semibold">Serving</legend>
        <Field id="port" label="Port" hint="The port the app listens on inside its container." error={err("port")}>
          <Input inputMode="numeric" value={v.port} onChange={set("port")} />
        </Field>
        <Field id="replicas" label="Replicas" error={err("replicas")}>
          <Input inputMode="numeric" value={v.replicas} onChange={set("replicas")} />
        </Field>
        <Field id="domains" label="Domains" hint="One per line." error={err("domains")} className="sm:col-span-2">
          <Textarea value={v.domains} onChange={set("domains")} spellCheck={false} rows={2} />
        </Field>
      </fieldset>
      <fieldset className="grid gap-4 sm:grid-cols-4">
        <legend className="mb-2 text-sm font-semibold">Health check</legend>
        <Field id="health_path" label="Path" error={err("health_path")}>
          <Input value={v.health_path} onChange={set("health_path")} />
        </Field>
        <Field id="health_interval_ms" label="Interval (ms)" error={err("health_interval_ms")}>
          <Input inputMode="numeric" value={v.health_interval_ms} onChange={set("health_interval_ms")} placeholder="500" />
        </Field>
        <Field id="health_timeout_ms" label="Timeout (ms)" error={err("health_timeout_ms")}>
          <Input inputMode="numeric" value={v.health_timeout_ms} onChange={set("health_timeout_ms")} placeholder="2000" />
        </Field>
        <Field id="health_retries" label="Retries" error={err("health_retries")}>
          <Input inputMode="numeric" value={v.health_retries} onChange={set("health_retries")} placeholder="60" />
        </Field>
      </fieldset>
      <fieldset className="grid gap-4 sm:grid-cols-2">
        <legend className="mb-2 text-sm font-semibold">Resources</legend>
        <Field id="memory" label="Memory" hint="Bytes, or 256M, 1G. Empty: no limit." error={err("memory")}>
          <Input value={v.memory} onChange={set("memory")} />
        </Field>
        <Field id="cpus" label="CPUs" hint="Fractions allowed. Empty: no limit." error={err("cpus")}>
          <Input inputMode="decimal" value={v.cpus} onChange={set("cpus")} />
        </Field>
      </fieldset>
      {!create && (
        <PreviewSettings
          app={v.name}
          hasDomain={v.domains.split(/[\s,]+/).some((d) => d.trim())}
          value={v.previews}
          onChange={(previews) => {
            setV({ ...v, previews });
            if (rowProblems.size > 0) setRowProblems(new Map());
          }}
          err={err}
          envError={placed?.field === "preview_env" && !placed.envKey ? placed.message : envLost}
          rowErrors={rowErrors}
        />
      )}
      <div>
        <Button type="submit" disabled={pending}>
          {pending ? "Saving…" : submitLabel}
        </Button>
      </div>
    </form>
  );
}
