import { Button } from "@/components/ui/button";
import { Input } from "@/components/ui/input";
import { Field } from "@/components/ui/field";
import { SecretInput } from "@/components/notifications/SecretInput";
import { DEFAULT_TEMPLATE, newRow, type EnvRow, type PreviewValues } from "@/lib/previews";

/** The form fields of the previews' settings, as the API names them in its errors. */
export type PreviewField = "preview_enabled" | "preview_domain_template" | "preview_limit" | "preview_forks" | "preview_drafts" | "preview_env";

/** The settings of an app's previews, part of the app's settings form: the switches, the
 * host template, the limit, and the previews' own variables (write-only). */
export function PreviewSettings({
  app,
  hasDomain,
  value: v,
  onChange,
  err,
  envError,
  rowErrors,
}: {
  app: string;
  /** The app has a domain (in the form as typed), which `{domain}` stands for. */
  hasDomain: boolean;
  value: PreviewValues;
  onChange: (v: PreviewValues) => void;
  /** The error to show at a field, if any. */
  err: (f: PreviewField) => string | undefined;
  /** An error about the variables as a whole. */
  envError?: string;
  /** Errors by row id. */
  rowErrors: Map<number, string>;
}) {
  const set = <K extends keyof PreviewValues>(k: K, x: PreviewValues[K]) => onChange({ ...v, [k]: x });
  const setRow = (id: number, change: Partial<EnvRow>) => set("env", v.env.map((r) => (r.id === id ? { ...r, ...change } : r)));
  return (
    <fieldset className="grid gap-4" data-testid="preview-settings">
      <legend className="mb-2 text-sm font-semibold">Previews of pull requests</legend>
      <p className="text-sm text-muted-foreground">
        Each open pull request is deployed as an app of its own, <code className="font-mono text-xs">{app}-pr-N</code>, at a host of
        its own, with this app's variables. The pull request events come through this app's webhook.
      </p>
      <Toggle
        id="preview_enabled"
        label="Deploy a preview of each open pull request"
        hint="Closing or merging the pull request removes its preview."
        checked={v.enabled}
        onChange={(x) => set("enabled", x)}
        error={err("preview_enabled")}
      />
      <div className="grid gap-4 sm:grid-cols-[2fr_1fr]">
        <Field
          id="preview_domain_template"
          label="Domain template"
          hint={
            `The preview's host: {number} (required), {app} and {domain} (this app's first domain). Empty: ${DEFAULT_TEMPLATE}.` +
            (!hasDomain && (v.domain_template.trim() || DEFAULT_TEMPLATE).includes("{domain}")
              ? " This app has no domain: with {domain} here, pull requests get no preview."
              : "")
          }
          error={err("preview_domain_template")}
        >
          <Input
            value={v.domain_template}
            onChange={(e) => set("domain_template", e.target.value)}
            placeholder={DEFAULT_TEMPLATE}
            autoComplete="off"
            spellCheck={false}
          />
        </Field>
        <Field id="preview_limit" label="Limit" hint="Previews at once, 1 to 100; a pull request past it gets none." error={err("preview_limit")}>
          <Input inputMode="numeric" value={v.limit} onChange={(e) => set("limit", e.target.value)} placeholder="5" />
        </Field>
      </div>
      <div className="grid gap-4 sm:grid-cols-2">
        <Toggle
          id="preview_forks"
          label="Pull requests from forks"
          hint="Their code would run with this app's variables and secrets."
          checked={v.forks}
          onChange={(x) => set("forks", x)}
          error={err("preview_forks")}
        />
        <Toggle
          id="preview_drafts"
          label="Draft pull requests"
          hint="Otherwise a draft gets its preview when it is marked ready."
          checked={v.drafts}
          onChange={(x) => set("drafts", x)}
          error={err("preview_drafts")}
        />
      </div>
      <div className="grid gap-2" role="group" aria-labelledby="preview_env-title" aria-describedby="preview_env-hint" data-testid="preview-env">
        <h3 id="preview_env-title" className="text-sm font-medium">
          Preview variables
        </h3>
        <p id="preview_env-hint" className="text-xs text-muted-foreground">
          Set in previews on top of this app's variables. Values are write-only: stored encrypted, never shown again. Saving a
          change here replaces them all, so keep a stored one by typing its value again. Left alone, they stay as they are.
        </p>
        {envError && (
          <p id="preview_env-error" className="text-xs font-medium text-destructive" role="alert">
            {envError}
          </p>
        )}
        {v.env.length === 0 && <p className="text-sm text-muted-foreground">No preview variables.</p>}
        <ul className="grid gap-3 sm:gap-2">
          {v.env.map((r, i) => {
            const n = i + 1;
            const error = rowErrors.get(r.id);
            const errorId = `preview_env-${n}-error`;
            return (
              <li key={r.id} className="grid gap-1" data-key={r.stored ?? undefined}>
                <div className="grid gap-2 sm:grid-cols-[1fr_2fr_auto]">
                  <Input
                    aria-label={`Preview variable ${n} name`}
                    value={r.key}
                    onChange={(e) => setRow(r.id, { key: e.target.value })}
                    placeholder="NAME"
                    autoComplete="off"
                    autoCapitalize="off"
                    spellCheck={false}
                    aria-invalid={error ? true : undefined}
                    aria-describedby={error ? errorId : undefined}
                  />
                  <SecretInput
                    aria-label={`Preview variable ${n} value`}
                    showLabel={`preview variable ${n}`}
                    value={r.value ?? ""}
                    onChange={(e) => setRow(r.id, { value: e.target.value })}
                    placeholder={r.value === null ? "stored, hidden: type to replace" : "value"}
                    // DejaVu Sans Mono at 14 px loses its underscores in a field: the sans font keeps them.
                    className="font-sans"
                    aria-invalid={error ? true : undefined}
                    aria-describedby={error ? errorId : undefined}
                  />
                  <Button type="button" variant="outline" onClick={() => set("env", v.env.filter((x) => x.id !== r.id))}>
                    Remove<span className="sr-only"> preview variable {r.key.trim() || n}</span>
                  </Button>
                </div>
                {error && (
                  <p id={errorId} className="text-xs font-medium text-destructive" role="alert">
                    {error}
                  </p>
                )}
              </li>
            );
          })}
        </ul>
        <div>
          <Button type="button" variant="outline" size="sm" onClick={() => set("env", [...v.env, newRow()])}>
            Add a variable
          </Button>
        </div>
      </div>
    </fieldset>
  );
}

/** An on/off setting: a checkbox in the switch role, as the notifications page has. */
function Toggle({
  id,
  label,
  hint,
  checked,
  onChange,
  error,
}: {
  id: string;
  label: string;
  hint?: string;
  checked: boolean;
  onChange: (checked: boolean) => void;
  error?: string;
}) {
  const described = [hint ? `${id}-hint` : null, error ? `${id}-error` : null].filter(Boolean).join(" ") || undefined;
  return (
    <div className="grid content-start gap-1">
      <label className="flex items-center gap-2 text-sm font-medium" htmlFor={id}>
        <input
          id={id}
          type="checkbox"
          role="switch"
          className="h-4 w-4 shrink-0 accent-primary"
          checked={checked}
          onChange={(e) => onChange(e.target.checked)}
          aria-invalid={error ? true : undefined}
          aria-describedby={described}
        />
        {label}
      </label>
      {hint && (
        <p id={`${id}-hint`} className="pl-6 text-xs text-muted-foreground">
          {hint}
        </p>
      )}
      {error && (
        <p id={`${id}-error`} className="pl-6 text-xs font-medium text-destructive" role="alert">
          {error}
        </p>
      )}
    </div>
  );
}
