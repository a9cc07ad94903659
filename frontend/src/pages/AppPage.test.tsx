import { afterEach, describe, expect, it, vi } from "vitest";
import { cleanup, render, screen, within } from "@testing-library/react";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { MemoryRouter, Route, Routes } from "react-router";
import { AppOverview, AppPage } from "./AppPage";
import { AppSettings } from "./AppSettings";
import { appView, stubFetch } from "@/test/fixtures";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const preview = appView({
  name: "web-pr-7",
  branch: "feature/login",
  domains: ["pr-7.web.example.com"],
  preview_of: { app: "web", number: 7 },
});

function at(path: string) {
  const calls = stubFetch({
    "GET /api/apps/web": appView(),
    "GET /api/apps/web-pr-7": preview,
    "GET /api/apps/web/deployments": [],
    "GET /api/apps/web-pr-7/deployments": [],
    "GET /api/apps/web/previews": [],
    "GET /api/apps/web/stats": { app: "web", containers: [], proxy: { requests: 0, by_class: {}, received_bytes: 0, sent_bytes: 0, upstream_errors: {} } },
    "GET /api/apps/web-pr-7/stats": { app: "web-pr-7", containers: [], proxy: { requests: 0, by_class: {}, received_bytes: 0, sent_bytes: 0, upstream_errors: {} } },
  });
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  render(
    <QueryClientProvider client={client}>
      <MemoryRouter initialEntries={[path]}>
        <Routes>
          <Route path="/apps/:app" element={<AppPage />}>
            <Route index element={<AppOverview />} />
            <Route path="settings" element={<AppSettings />} />
          </Route>
        </Routes>
      </MemoryRouter>
    </QueryClientProvider>,
  );
  return calls;
}

describe("a preview app's page", () => {
  it("says which PR of which app it previews, and offers no settings of its own", async () => {
    const calls = at("/apps/web-pr-7");
    const banner = await screen.findByTestId("preview-of");
    expect(banner.textContent).toContain("Preview of PR #7 of web");
    expect(within(banner).getByRole("link", { name: "web" }).getAttribute("href")).toBe("/apps/web");
    const tabs = screen.getByRole("navigation", { name: "App" });
    expect(within(tabs).queryByRole("link", { name: "Settings" })).toBeNull();
    expect(within(tabs).queryByRole("link", { name: "Webhook" })).toBeNull();
    expect(within(tabs).getByRole("link", { name: "Logs" })).toBeTruthy();
    // Its deployments are listed; a preview has no previews.
    expect(await screen.findByRole("heading", { name: "Deployments" })).toBeTruthy();
    expect(screen.queryByTestId("previews")).toBeNull();
    expect(calls.some((c) => c.path.endsWith("/previews"))).toBe(false);
  });

  it("shows no settings form at the settings address, but where to change them", async () => {
    at("/apps/web-pr-7/settings");
    const note = await screen.findByText(/follows the settings of/);
    expect(within(note).getByRole("link", { name: "web" }).getAttribute("href")).toBe("/apps/web/settings");
    expect(screen.queryByRole("button", { name: "Save" })).toBeNull();
  });
});

describe("an app's page", () => {
  it("has the previews card, and no banner", async () => {
    at("/apps/web");
    expect(await screen.findByTestId("previews-empty")).toBeTruthy();
    expect(screen.queryByTestId("preview-of")).toBeNull();
    expect(within(screen.getByRole("navigation", { name: "App" })).getByRole("link", { name: "Settings" })).toBeTruthy();
  });
});
