// What the components' tests share: an app as the API shows it, and a fetch that answers
// from a table of routes (and records what it was asked).
import { vi } from "vitest";
import type { App } from "@/lib/api";

export function appView(over: Partial<App> = {}): App {
  return {
    name: "web",
    branch: "main",
    git_url: "https://git.example.com/web.git",
    certificates: [],
    created_at: "2026-12-01T10:00:00Z",
    updated_at: "2026-12-01T10:00:00Z",
    domains: ["web.example.com"],
    git_credential: false,
    healthcheck: { path: "/", interval_ms: 500, timeout_ms: 2000, retries: 60 },
    port: 8080,
    replicas: 1,
    placement: { constraints: [], max_per_node: 0, spread: [] },
    resources: {},
    status: "running",
    stopped: false,
    webhooks: {
      github: "https://rivetr.example.com/webhooks/github/web",
      gitlab: "https://rivetr.example.com/webhooks/gitlab/web",
      gitea: "https://rivetr.example.com/webhooks/gitea/web",
    },
    previews: { enabled: false, domain_template: "pr-{number}.{domain}", limit: 5, forks: false, drafts: false, env_keys: [] },
    preview_of: null,
    ...over,
  };
}

export interface Call {
  method: string;
  path: string;
  body: unknown;
}

/** Stubs `fetch`: `routes` maps "METHOD /path" (no query) to the JSON answer, to a number
 * for an empty answer with that status, or to a function giving either when asked. Unknown
 * routes answer 404. */
export function stubFetch(routes: Record<string, unknown>): Call[] {
  const calls: Call[] = [];
  vi.stubGlobal(
    "fetch",
    vi.fn(async (input: string, init?: RequestInit) => {
      const method = init?.method ?? "GET";
      const path = input.split("?")[0]!;
      calls.push({ method, path, body: init?.body ? JSON.parse(String(init.body)) : undefined });
      const route = routes[`${method} ${path}`];
      const answer: unknown = typeof route === "function" ? route() : route;
      if (answer === undefined) {
        return new Response(JSON.stringify({ error: { code: "not_found", message: `no route ${method} ${path}` } }), { status: 404 });
      }
      if (typeof answer === "number") return new Response(null, { status: answer });
      return new Response(JSON.stringify(answer), { status: 200 });
    }),
  );
  return calls;
}
