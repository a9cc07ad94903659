// Previews of pull requests: the list of an app's PRs (GET /api/apps/{app}/previews), asked
// every few seconds while the page is visible, and the rules of the editor of the previews'
// own variables. Those values are write-only (the API shows only their names) and
// `previews.env` replaces them all: a variable is kept only by typing its value again.
import { useQuery } from "@tanstack/react-query";
import { enc, get, type Preview, type PreviewsBody, type PreviewsSettings } from "./api";

export const PREVIEWS_POLL_MS = 5_000;
/** What an empty domain template means (the API's default). */
export const DEFAULT_TEMPLATE = "pr-{number}.{domain}";

/** The app's pull requests and their previews, newest number first. */
export function usePreviews(app: string, enabled = true) {
  return useQuery({
    queryKey: ["previews", app],
    queryFn: () => get<Preview[]>(`/api/apps/${enc(app)}/previews`),
    enabled,
    refetchInterval: PREVIEWS_POLL_MS,
    refetchIntervalInBackground: false,
    staleTime: 0,
  });
}

/** One row of the variables editor. `value` is `null` for a stored variable whose value
 * was not typed again (the page cannot know it); `stored` is the name it was stored under. */
export interface EnvRow {
  id: number;
  key: string;
  value: string | null;
  stored?: string;
}

/** The preview settings as the form holds them. */
export interface PreviewValues {
  enabled: boolean;
  domain_template: string;
  limit: string;
  forks: boolean;
  drafts: boolean;
  env: EnvRow[];
  /** The names stored when the form opened. */
  env_keys: string[];
}

let nextRow = 0;
/** A new, empty row. */
export function newRow(): EnvRow {
  nextRow += 1;
  return { id: -nextRow, key: "", value: "" };
}

export function previewValuesOf(p?: PreviewsSettings): PreviewValues {
  const keys = p?.env_keys ?? [];
  return {
    enabled: p?.enabled ?? false,
    domain_template: p?.domain_template ?? DEFAULT_TEMPLATE,
    limit: String(p?.limit ?? 5),
    forks: p?.forks ?? false,
    drafts: p?.drafts ?? false,
    env: keys.map((key, id) => ({ id, key, value: null, stored: key })),
    env_keys: keys,
  };
}

/** A row nothing was typed into: left out. */
function blank(r: EnvRow): boolean {
  return r.stored === undefined && !r.key.trim() && !r.value;
}

/** Whether the variables were edited: a row added, removed, renamed or a value typed. */
export function envChanged(rows: readonly EnvRow[], storedKeys: readonly string[]): boolean {
  const kept = rows.filter((r) => r.stored !== undefined);
  if (kept.length !== storedKeys.length) return true;
  return rows.some((r) => !blank(r) && (r.stored === undefined || r.key.trim() !== r.stored || r.value !== null));
}

/** What stops the variables from being saved, by row id: a row without a name, a stored
 * value not typed again, a name given twice. */
export function envProblems(rows: readonly EnvRow[]): Map<number, string> {
  const problems = new Map<number, string>();
  const seen = new Set<string>();
  for (const r of rows) {
    if (blank(r)) continue;
    const key = r.key.trim();
    if (!key) problems.set(r.id, "Give the variable a name, or remove the row.");
    else if (seen.has(key)) problems.set(r.id, `${key} is given twice.`);
    else if (r.value === null)
      problems.set(r.id, "Type its value again, or remove the row: saving replaces every preview variable, and stored values cannot be read back.");
    seen.add(key);
  }
  return problems;
}

/** The variables as the API takes them (the whole set; `{}` removes them all). */
export function envOf(rows: readonly EnvRow[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const r of rows) if (!blank(r) && r.key.trim()) env[r.key.trim()] = r.value ?? "";
  return env;
}

/** A number field's value: a number when it reads as one, else the text as typed, so the
 * API's own check names the field. */
function num(s: string): number | undefined {
  const t = s.trim();
  if (!t) return undefined;
  const n = Number(t);
  return Number.isFinite(n) ? n : (t as unknown as number);
}

/** The `previews` part of a PATCH: every setting, and the variables only when edited. */
export function previewsBodyOf(v: PreviewValues): PreviewsBody {
  const body: PreviewsBody = {
    enabled: v.enabled,
    domain_template: v.domain_template.trim() || DEFAULT_TEMPLATE,
    forks: v.forks,
    drafts: v.drafts,
  };
  const limit = num(v.limit);
  if (limit !== undefined) body.limit = limit;
  if (envChanged(v.env, v.env_keys)) body.env = envOf(v.env);
  return body;
}
