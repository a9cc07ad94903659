import { afterEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { MemoryRouter } from "react-router";
import { PreviewsCard } from "./PreviewsCard";
import type { App, Preview } from "@/lib/api";
import { appView, stubFetch } from "@/test/fixtures";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

function show(app: App, previews: Preview[], more: Record<string, unknown> = {}) {
  const calls = stubFetch({ [`GET /api/apps/${app.name}/previews`]: previews, ...more });
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  render(
    <QueryClientProvider client={client}>
      <MemoryRouter>
        <PreviewsCard app={app} />
      </MemoryRouter>
    </QueryClientProvider>,
  );
  return calls;
}

const running: Preview = {
  number: 7,
  state: "open",
  head_ref: "feature/login",
  head_sha: "0123456789abcdef0123456789abcdef01234567",
  refused: null,
  app: "web-pr-7",
  host: "pr-7.web.example.com",
  deployment: { id: 42, status: "running", queued_at: "2026-12-01T10:00:00Z", finished_at: "2026-12-01T10:01:00Z" },
  running_deployment: 42,
  updated_at: "2026-12-01T10:00:00Z",
};

describe("PreviewsCard", () => {
  it("says how previews start when there are none, with the settings off", async () => {
    show(appView(), []);
    const empty = await screen.findByTestId("previews-empty");
    expect(empty.textContent).toContain("No previews yet.");
    expect(within(empty).getByRole("link", { name: "Settings" }).getAttribute("href")).toBe("/apps/web/settings");
    expect(within(empty).getByRole("link", { name: "Webhook" }).getAttribute("href")).toBe("/apps/web/webhook");
    // The host a PR would get, by the app's template and first domain.
    expect(empty.textContent).toContain("pr-{number}.web.example.com");
    expect(screen.getByText("Off: pull requests get no preview.")).toBeTruthy();
  });

  it("says previews are on when they are, and no PR came yet", async () => {
    show(appView({ previews: { ...appView().previews, enabled: true } }), []);
    const empty = await screen.findByTestId("previews-empty");
    expect(empty.textContent).toContain("No pull requests yet.");
    expect(empty.textContent).toContain("Previews are on.");
    expect(within(empty).queryByRole("link", { name: "Settings" })).toBeNull();
  });

  it("lists a PR with its branch, commit, host and the preview's deployment", async () => {
    show(appView(), [running]);
    const item = (await screen.findByRole("heading", { name: "PR #7" })).closest("li")!;
    expect(item.getAttribute("data-state")).toBe("open");
    expect(within(item).getByText("feature/login")).toBeTruthy();
    expect(within(item).getByText("01234567")).toBeTruthy();
    expect(within(item).getByRole("link", { name: "pr-7.web.example.com" }).getAttribute("href")).toBe("https://pr-7.web.example.com");
    expect(within(item).getByRole("link", { name: "web-pr-7" }).getAttribute("href")).toBe("/apps/web-pr-7");
    expect(within(item).getByRole("link", { name: "deployment #42" }).getAttribute("href")).toBe("/deployments/42");
    expect(item.querySelector('[data-status="running"]')).toBeTruthy();
  });

  it("shows why a PR was refused a preview, with nothing to remove", async () => {
    const refused: Preview = {
      ...running,
      number: 8,
      app: null,
      host: null,
      deployment: null,
      running_deployment: null,
      refused: "the pull request comes from a fork, and forks.enabled is off",
    };
    show(appView(), [refused]);
    const item = (await screen.findByRole("heading", { name: "PR #8" })).closest("li")!;
    expect(item.querySelector("[data-refused]")!.textContent).toBe("No preview: the pull request comes from a fork, and forks.enabled is off");
    expect(within(item).queryByRole("button", { name: /Remove/ })).toBeNull();
  });

  it("removes a preview after asking, and shows the PR closed", async () => {
    let removed = false;
    const calls = show(appView(), [], {
      "GET /api/apps/web/previews": () => [removed ? { ...running, state: "closed", app: null, host: null, deployment: null } : running],
      "DELETE /api/apps/web/previews/7": () => {
        removed = true;
        return 204;
      },
    });
    fireEvent.click(await screen.findByRole("button", { name: "Remove the preview of PR #7" }));
    expect(calls.some((c) => c.method === "DELETE")).toBe(false);
    expect(screen.getByRole("heading", { name: "Remove the preview of PR #7?" })).toBeTruthy();
    fireEvent.click(screen.getByRole("button", { name: "Remove preview" }));
    await waitFor(() => expect(calls.filter((c) => c.method === "DELETE").map((c) => c.path)).toEqual(["/api/apps/web/previews/7"]));
    await waitFor(() => expect(document.querySelector('li[data-preview="7"]')!.getAttribute("data-state")).toBe("closed"));
    expect(screen.queryByRole("button", { name: "Remove the preview of PR #7" })).toBeNull();
    expect(screen.queryByRole("link", { name: "pr-7.web.example.com" })).toBeNull();
  });
});
