// The live event stream (GET /api/events): which cached queries each change makes stale.
// The lists subscribe once, in the layout; two open tabs agree within a second without polling.
import { useEffect, useState } from "react";
import { useQueryClient, type QueryKey } from "@tanstack/react-query";

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
        if (keys === "all") void client.invalidateQueries();
        else for (const key of keys) void client.invalidateQueries({ queryKey: key });
      });
    }
    source.onerror = () => setConnected(false);
    return () => source.close();
  }, [client, open]);
  return connected;
}
