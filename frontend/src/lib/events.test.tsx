import { afterEach, describe, expect, it } from "vitest";
import { act, cleanup, render, waitFor } from "@testing-library/react";
import { QueryClient, QueryClientProvider, useQuery } from "@tanstack/react-query";
import { staleKeys, useLiveEvents } from "./events";

afterEach(cleanup);

describe("staleKeys", () => {
  it("refetches everything on ready and resync", () => {
    expect(staleKeys("ready", "{}")).toBe("all");
    expect(staleKeys("resync", "{}")).toBe("all");
    expect(staleKeys("app", "not json")).toBe("all");
  });

  it("refetches the lists a deployment change shows in", () => {
    const data = JSON.stringify({ kind: "deployment_stage", app: "web", deployment: 7, status: "building" });
    expect(staleKeys("deployment_stage", data)).toEqual([["apps"], ["app", "web"], ["deployments", "web"], ["previews"], ["deployment", 7]]);
  });

  it("refetches an app's variables when the app changed", () => {
    const data = JSON.stringify({ kind: "app", app: "web", status: "updated" });
    expect(staleKeys("app", data)).toContainEqual(["env", "web"]);
  });
});

/** The browser's side of an event stream, as an EventTarget: what `useLiveEvents` listens to. */
class Stream extends EventTarget {
  onerror: ((e: Event) => unknown) | null = null;
  closed = false;
  url: string;
  constructor(url: string) {
    super();
    this.url = url;
  }
  close() {
    this.closed = true;
  }
  emit(name: string, data: object) {
    this.dispatchEvent(new MessageEvent(name, { data: JSON.stringify(data) }));
  }
}

describe("useLiveEvents", () => {
  it("subscribes to /api/events, marks queries stale as changes come, and closes on unmount", async () => {
    const client = new QueryClient();
    client.setQueryData(["apps"], []);
    client.setQueryData(["app", "web"], {});
    client.setQueryData(["tokens"], []);
    let stream: Stream | undefined;
    const open = (url: string) => (stream = new Stream(url));
    let live = false;
    function Probe() {
      live = useLiveEvents(open);
      return null;
    }
    const { unmount } = render(
      <QueryClientProvider client={client}>
        <Probe />
      </QueryClientProvider>,
    );
    expect(stream!.url).toBe("/api/events");
    await act(async () => stream!.emit("ready", {}));
    expect(live).toBe(true);
    await act(async () => {
      client.setQueryData(["apps"], []);
      client.setQueryData(["tokens"], []);
    });
    expect(client.getQueryState(["apps"])!.isInvalidated).toBe(false);
    await act(async () => stream!.emit("deployment_created", { kind: "deployment_created", app: "web", deployment: 1, status: "queued" }));
    expect(client.getQueryState(["apps"])!.isInvalidated).toBe(true);
    expect(client.getQueryState(["tokens"])!.isInvalidated).toBe(false);
    await act(async () => stream!.onerror?.(new Event("error")));
    expect(live).toBe(false);
    unmount();
    expect(stream!.closed).toBe(true);
  });

  // Stop 34: TanStack Query joins a refetch to a first fetch in flight, whose answer the server
  // may have read before the change; the dashboard's end-to-end test then saw a deployment's
  // page show "cloning" while the log went on building.
  it("fetches a page's data again when a change came while its first fetch was in flight", async () => {
    const client = new QueryClient();
    let stream: Stream | undefined;
    const open = (url: string) => (stream = new Stream(url));
    let stage = "cloning";
    let answerFirst = () => {};
    let fetches = 0;
    const queryFn = async () => {
      fetches += 1;
      const read = stage; // what the server reads, before the answer travels back
      if (fetches === 1) await new Promise<void>((resolve) => (answerFirst = resolve));
      return read;
    };
    function DeploymentStage() {
      useLiveEvents(open);
      const deployment = useQuery({ queryKey: ["deployment", 4], queryFn });
      return <p data-testid="stage">{deployment.data ?? "loading"}</p>;
    }
    const view = render(
      <QueryClientProvider client={client}>
        <DeploymentStage />
      </QueryClientProvider>,
    );
    await waitFor(() => expect(fetches).toBe(1));
    stage = "building";
    await act(async () => stream!.emit("deployment_stage", { kind: "deployment_stage", app: "web", deployment: 4, status: "building" }));
    await act(async () => stream!.emit("deployment_stage", { kind: "deployment_stage", app: "web", deployment: 4, status: "building" }));
    await act(async () => answerFirst());
    await waitFor(() => expect(view.getByTestId("stage").textContent).toBe("building"));
    expect(fetches).toBe(2);
  });
});

