import { useState } from "react";
import { ApiError, fieldMessage, type ChannelKind, type NewChannel, type NotifyEvent, type SmtpSecurity } from "@/lib/api";
import { EVENTS, KINDS, splitList } from "@/lib/notifications";
import { Button } from "@/components/ui/button";
import { Input, Textarea } from "@/components/ui/input";
import { Select } from "@/components/ui/select";
import { Field } from "@/components/ui/field";
import { ErrorNote } from "@/components/ErrorNote";
import { SecretInput } from "./SecretInput";

/** The form's values, as typed. Empty means "none" or "the default". */
export interface ChannelFormValues {
  name: string;
  kind: ChannelKind;
  url: string;
  signing_secret: string;
  host: string;
  port: string;
  security: SmtpSecurity;
  username: string;
  password: string;
  from: string;
  to: string;
  ca_certificate: string;
  events: NotifyEvent[];
  enabled: boolean;
}

export function emptyValues(): ChannelFormValues {
  return {
    name: "",
    kind: "webhook",
    url: "",
    signing_secret: "",
    host: "",
    port: "",
    security: "starttls",
    username: "",
    password: "",
    from: "",
    to: "",
    ca_certificate: "",
    events: [],
    enabled: true,
  };
}

/** A number field's value: a number when it reads as one, else the text as typed, so the
 * API's own check names the field. Empty: none. */
function num(s: string): number | null {
  const t = s.trim();
  if (!t) return null;
  const n = Number(t);
  return Number.isFinite(n) ? n : (t as unknown as number);
}

const orNull = (s: string) => s.trim() || null;

/** The request body for the values: a URL for every kind but email, the SMTP settings for
 * email. What is empty is left for the API to default or to refuse by name. */
export function bodyOf(v: ChannelFormValues): NewChannel {
  const body: NewChannel = { name: v.name.trim(), kind: v.kind, events: v.events, enabled: v.enabled };
  if (v.kind === "email") {
    body.email = {
      host: v.host.trim(),
      port: num(v.port),
      security: v.security,
      username: orNull(v.username),
      from: v.from.trim(),
      to: splitList(v.to),
      ca_certificate: orNull(v.ca_certificate),
    };
    body.password = v.password || null;
  } else {
    body.url = orNull(v.url);
    if (v.kind === "webhook" && v.signing_secret) body.signing_secret = v.signing_secret;
  }
  return body;
}

type FormField =
  | "name"
  | "kind"
  | "url"
  | "signing_secret"
  | "host"
  | "port"
  | "security"
  | "username"
  | "password"
  | "from"
  | "to"
  | "ca_certificate"
  | "events";

/** The form field an API error names: a 422's field (`email.host` is the host field), a
 * taken name (409); none for the rest, which show above the button. */
export function fieldOfError(error: unknown): FormField | undefined {
  if (!(error instanceof ApiError)) return undefined;
  if (error.status === 409) return "name";
  const f = error.field;
  if (!f) return undefined;
  if (f === "email.password") return "password";
  const bare = f.replace(/^email\./, "") as FormField;
  const known: FormField[] = ["name", "kind", "url", "signing_secret", "host", "port", "security", "username", "password", "from", "to", "ca_certificate", "events"];
  return known.includes(bare) ? bare : undefined;
}

/** Adds a channel: the kind decides whether a URL or an SMTP server is asked for. Secrets
 * (the URL, which holds the receiver's token, the signing secret and the SMTP password)
 * are typed into password fields. */
export function ChannelForm({
  pending,
  error,
  onSubmit,
}: {
  pending: boolean;
  error: unknown;
  onSubmit: (body: NewChannel) => void;
}) {
  const [v, setV] = useState<ChannelFormValues>(emptyValues);
  const set =
    (k: keyof ChannelFormValues) => (e: React.ChangeEvent<HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement>) =>
      setV((old) => ({ ...old, [k]: e.target.value }));
  const field = fieldOfError(error);
  const err = (f: FormField) => (field === f && error instanceof Error ? fieldMessage(error.message) : undefined);
  const toggleEvent = (ev: NotifyEvent, on: boolean) =>
    setV((old) => ({ ...old, events: on ? [...old.events, ev] : old.events.filter((x) => x !== ev) }));
  const email = v.kind === "email";
  const urlHint: Record<ChannelKind, string> = {
    webhook: "Rivetr POSTs each message as JSON, signed in the X-Rivetr-Signature-256 header.",
    slack: "An incoming webhook URL: https://hooks.slack.com/services/…",
    mattermost: "An incoming webhook URL: https://mattermost.example.com/hooks/…",
    discord: "A channel webhook URL: https://discord.com/api/webhooks/…",
    email: "",
  };
  const eventsError = err("events");
  return (
    <form
      className="grid gap-4"
      noValidate
      onSubmit={(e) => {
        e.preventDefault();
        onSubmit(bodyOf(v));
      }}
    >
      <div className="grid gap-4 sm:grid-cols-2">
        <Field id="channel-name" label="Name" hint="Lower-case letters, digits and hyphens." error={err("name")}>
          <Input value={v.name} onChange={set("name")} autoComplete="off" spellCheck={false} />
        </Field>
        <Field id="channel-kind" label="Kind" error={err("kind")}>
          <Select value={v.kind} onChange={set("kind")}>
            {KINDS.map((k) => (
              <option key={k.value} value={k.value}>
                {k.label}
              </option>
            ))}
          </Select>
        </Field>
      </div>
      {!email && (
        <div className="grid gap-4 sm:grid-cols-2">
          <Field
            id="channel-url"
            label="URL"
            hint={`${urlHint[v.kind]} Stored encrypted; shown afterwards as its scheme and host only.`}
            error={err("url")}
          >
            <SecretInput value={v.url} onChange={set("url")} showLabel="URL" />
          </Field>
          {v.kind === "webhook" && (
            <Field
              id="channel-signing-secret"
              label="Signing secret (optional)"
              hint="At least 16 characters. Empty: Rivetr makes one and shows it once."
              error={err("signing_secret")}
            >
              <SecretInput value={v.signing_secret} onChange={set("signing_secret")} showLabel="signing secret" />
            </Field>
          )}
        </div>
      )}
      {email && (
        <fieldset className="grid gap-4 rounded-lg border p-3 sm:grid-cols-2 sm:p-4">
          <legend className="px-1 text-sm font-semibold">SMTP server and addresses</legend>
          <Field id="channel-host" label="SMTP host" error={err("host")}>
            <Input value={v.host} onChange={set("host")} autoComplete="off" spellCheck={false} placeholder="smtp.example.com" />
          </Field>
          <div className="grid grid-cols-2 gap-4">
            <Field id="channel-security" label="Security" error={err("security")}>
              <Select value={v.security} onChange={set("security")}>
                <option value="starttls">STARTTLS</option>
                <option value="tls">TLS</option>
                <option value="none">None (no password)</option>
              </Select>
            </Field>
            <Field id="channel-port" label="Port" hint={`Empty: ${v.security === "tls" ? 465 : v.security === "none" ? 25 : 587}.`} error={err("port")}>
              <Input value={v.port} onChange={set("port")} inputMode="numeric" autoComplete="off" />
            </Field>
          </div>
          <Field id="channel-username" label="Username (optional)" error={err("username")}>
            <Input value={v.username} onChange={set("username")} autoComplete="off" spellCheck={false} />
          </Field>
          <Field id="channel-password" label="Password" hint="With a username. Stored encrypted." error={err("password")}>
            <SecretInput value={v.password} onChange={set("password")} showLabel="password" />
          </Field>
          <Field id="channel-from" label="From" hint="An address, or Name <address>." error={err("from")}>
            <Input value={v.from} onChange={set("from")} autoComplete="off" spellCheck={false} placeholder="Rivetr <rivetr@example.com>" />
          </Field>
          <Field id="channel-to" label="To" hint="One address per line, or separated by commas." error={err("to")}>
            <Textarea value={v.to} onChange={set("to")} rows={2} spellCheck={false} />
          </Field>
          <Field
            id="channel-ca-certificate"
            label="CA certificate (optional)"
            hint="PEM: to trust a server whose certificate a private CA signed."
            error={err("ca_certificate")}
            className="sm:col-span-2"
          >
            <Textarea value={v.ca_certificate} onChange={set("ca_certificate")} rows={2} spellCheck={false} className="font-mono text-xs" />
          </Field>
        </fieldset>
      )}
      <fieldset className="grid gap-2" aria-describedby={eventsError ? "channel-events-hint channel-events-error" : "channel-events-hint"} aria-invalid={eventsError ? true : undefined}>
        <legend className="text-sm font-medium">Events</legend>
        <p id="channel-events-hint" className="-mt-1 text-xs text-muted-foreground">
          None checked: every event, also those added later.
        </p>
        <div className="grid gap-x-4 gap-y-2 sm:grid-cols-2 lg:grid-cols-3">
          {EVENTS.map((ev) => (
            <label key={ev.value} className="flex items-start gap-2 text-sm">
              <input
                type="checkbox"
                className="mt-0.5"
                value={ev.value}
                checked={v.events.includes(ev.value)}
                onChange={(e) => toggleEvent(ev.value, e.target.checked)}
              />
              <span>
                {ev.label} <code className="font-mono text-xs text-muted-foreground">{ev.value}</code>
              </span>
            </label>
          ))}
        </div>
        {eventsError && (
          <p id="channel-events-error" className="text-xs font-medium text-destructive" role="alert">
            {eventsError}
          </p>
        )}
      </fieldset>
      <label className="flex items-center gap-2 text-sm">
        <input type="checkbox" checked={v.enabled} onChange={(e) => setV((old) => ({ ...old, enabled: e.target.checked }))} />
        Enabled: send messages to it as events happen
      </label>
      {!field && <ErrorNote error={error} />}
      {field && (
        <p className="sr-only" role="status">
          The form has an error: {(error as Error).message}
        </p>
      )}
      <div>
        <Button type="submit" disabled={!v.name.trim() || pending}>
          {pending ? "Adding…" : "Add channel"}
        </Button>
      </div>
    </form>
  );
}
