// The live event stream (GET /api/events): which cached queries each change makes stale.
// The lists subscribe once, in the layout; two open tabs agree within a second without polling.
import { useEffect, useState } from "react";
import { useQueryClient, type Query, type QueryClient, type QueryKey } from "@tanstack/react-query";

export interface Change {
  kind: "app" | "deployment_created" | "deployment_stage" | "deployment_finished";
  app: string;
  deployment?: number;
  status: string;
}

/** The query keys to refetch after `event` (`ready` and `resync`: everything). */
export function staleKeys(event: string, data: string): QueryKey[] | "all" {
  if (event === "ready" || event === "resync") return "all";
  let change: Change;
  try {
    change = JSON.parse(data) as Change;
  } catch {
    return "all";
  }
  if (!change || typeof change.app !== "string") return "all";
  const keys: QueryKey[] = [["apps"], ["app", change.app], ["deployments", change.app]];
  if (change.kind === "app") keys.push(["env", change.app]);
  // A preview is an app of its own (`web-pr-7`): the list of its app's PRs shows its stage.
  keys.push(["previews"]);
  if (change.deployment !== undefined) keys.push(["deployment", change.deployment]);
  return keys;
}

export const EVENT_NAMES = ["ready", "resync", "app", "deployment_created", "deployment_stage", "deployment_finished"];

/** What the hook needs of an EventSource. */
export interface Source {
  addEventListener(type: string, listener: (e: Event) => void): void;
  close(): void;
  onerror: ((e: Event) => unknown) | null;
}

/** Subscribes to the event stream and invalidates queries as changes come. `connected` is
 * false while the stream is down (the browser reconnects by itself). */
export function useLiveEvents(open: (url: string) => Source = (url) => new EventSource(url)) {
  const client = useQueryClient();
  const [connected, setConnected] = useState(false);
  useEffect(() => {
    const source = open("/api/events");
    for (const name of EVENT_NAMES) {
      source.addEventListener(name, (e) => {
        const keys = staleKeys(name, (e as MessageEvent<string>).data);
        if (name === "ready") setConnected(true);
        if (keys === "all") invalidate(client, undefined);
        else for (const key of keys) invalidate(client, key);
      });
    }
    source.onerror = () => setConnected(false);
    return () => source.close();
  }, [client, open]);
  return connected;
}

/** Queries whose first fetch was in flight when a change came, each fetched again when it settles. */
const refetchWhenSettled = new WeakSet<Query>();

/** Marks the queries under `key` (all, for `undefined`) stale and refetches those in use.
 *
 * TanStack Query joins a refetch to a fetch still in flight when the query has no data yet (it
 * cancels one only when there is data to fall back on), so the answer of a page's first fetch
 * would stand even when the server read it before the change: a deployment's page opened as
 * its build began kept showing "cloning" while its log went on (stop 34, the dashboard's
 * end-to-end test). Such a query is fetched again once that first fetch has settled. */
export function invalidate(client: QueryClient, key: QueryKey | undefined) {
  const cache = client.getQueryCache();
  for (const query of cache.findAll(key === undefined ? {} : { queryKey: key })) {
    if (query.state.data !== undefined || query.state.fetchStatus !== "fetching" || refetchWhenSettled.has(query)) continue;
    refetchWhenSettled.add(query);
    const unsubscribe = cache.subscribe((event) => {
      if (event.query !== query) return;
      if (event.type === "removed") {
        refetchWhenSettled.delete(query);
        unsubscribe();
      } else if (query.state.fetchStatus !== "fetching") {
        refetchWhenSettled.delete(query);
        unsubscribe();
        void client.invalidateQueries({ queryKey: query.queryKey, exact: true });
      }
    });
  }
  void client.invalidateQueries(key === undefined ? undefined : { queryKey: key });
}
