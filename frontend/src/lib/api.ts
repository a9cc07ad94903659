// The dashboard's only way to the API: same-origin fetch with the session cookie, and the
// header that tells Rivetr a change comes from the dashboard itself (its CSRF check).
import type { components } from "./api-types";

export type Schemas = components["schemas"];
export type App = Schemas["AppView"];
export type AppBody = Schemas["AppBody"];
export type CreatedApp = Schemas["CreatedApp"];
export type Deployment = Schemas["Deployment"];
export type LogLine = Schemas["LogLineView"];
export type EnvVar = Schemas["EnvVarView"];
export type Token = Schemas["TokenInfo"];
export type CreatedToken = Schemas["CreatedTokenBody"];
export type Session = Schemas["SessionView"];
export type System = Schemas["SystemView"];
export type RotatedSecret = Schemas["RotatedSecret"];
export type ManagedDatabase = Schemas["ManagedDatabaseView"];
export type CreateDatabaseBody = Schemas["CreateDatabaseBody"];
export type DeletedDatabase = Schemas["DeletedDatabase"];
export type DbEngine = Schemas["DbKind"];
export type DatabaseLink = Schemas["LinkView"];
export type Backup = Schemas["BackupView"];
export type Restored = Schemas["RestoreView"];
export type Schedule = Schemas["ScheduleView"];
export type ScheduleBody = Schemas["ScheduleBody"];
export type Destination = Schemas["DestinationView"];
export type Channel = Schemas["ChannelView"];
export type NewChannel = Schemas["NewChannel"];
export type ChannelUpdate = Schemas["ChannelUpdate"];
export type ChannelKind = Schemas["Kind"];
export type NotifyEvent = Schemas["Event"];
export type EmailSettings = Schemas["EmailSettings"];
export type SmtpSecurity = Schemas["Security"];
export type Delivery = Schemas["DeliveryView"];
export type AppStats = Schemas["AppStats"];
export type Preview = Schemas["PreviewView"];
export type PreviewsBody = Schemas["PreviewsBody"];
export type PreviewsSettings = Schemas["PreviewsView"];

/** An answer of the API that is not a success: its status, code and message, and the
 * field it names (for a 422 `invalid_value`: "field `healthcheck.path`: ..."). */
export class ApiError extends Error {
  status: number;
  code: string;
  field?: string;

  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = fieldOf(message);
  }
}

/** The field a 422 message names, with list indexes dropped (`domains[1]` -> `domains`). */
export function fieldOf(message: string): string | undefined {
  const m = /^field `([^`]+)`/.exec(message) ?? /JSON field `([^`]+)`/.exec(message);
  return m?.[1]?.replace(/\[\d+\]/g, "");
}

/** The message without its "field `x`: " prefix, for showing next to the field. */
export function fieldMessage(message: string): string {
  return message.replace(/^field `[^`]+`: /, "");
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { "X-Rivetr-Request": "1", Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    // Not JSON (a proxy's error page, say): the status line says what happened.
  }
  if (!res.ok) {
    const err = (json as { error?: { code?: string; message?: string } } | undefined)?.error;
    throw new ApiError(res.status, err?.code ?? "error", err?.message ?? `${res.status} ${res.statusText}`);
  }
  return json as T;
}

export const get = <T>(path: string) => api<T>("GET", path);
export const enc = encodeURIComponent;
