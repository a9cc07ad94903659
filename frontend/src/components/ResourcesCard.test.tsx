import { afterEach, describe, expect, it, vi } from "vitest";
import { cleanup, render, screen, within } from "@testing-library/react";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { ResourcesCard } from "./ResourcesCard";
import type { AppStats } from "@/lib/api";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const proxy: AppStats["proxy"] = {
  requests: 0,
  by_class: { "1xx": 0, "2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0 },
  received_bytes: 0,
  sent_bytes: 0,
  upstream_errors: { connect: 0, timeout: 0, reset: 0 },
};

function show(stats: AppStats, memoryLimitBytes: number | null = null) {
  vi.stubGlobal("fetch", vi.fn(async () => new Response(JSON.stringify(stats), { status: 200 })));
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  render(
    <QueryClientProvider client={client}>
      <ResourcesCard app="web" memoryLimitBytes={memoryLimitBytes} />
    </QueryClientProvider>,
  );
}

describe("ResourcesCard", () => {
  it("says why CPU and memory are missing instead of showing zeros", async () => {
    show({ app: "web", containers: [], unavailable: "rootless Podman on cgroups v1 cannot report them", proxy });
    expect((await screen.findByTestId("stats-unavailable")).textContent).toContain("rootless Podman on cgroups v1");
    const cpu = document.querySelector('[data-metric="cpu"]') as HTMLElement;
    const memory = document.querySelector('[data-metric="memory"]') as HTMLElement;
    expect(within(cpu).getByText("Not reported")).toBeTruthy();
    expect(within(memory).getByText("Not reported")).toBeTruthy();
    expect(cpu.textContent).not.toMatch(/\b0(\.0)? %/);
    expect(memory.textContent).not.toMatch(/\b0 B/);
    expect(screen.getByRole("img", { name: "CPU use: not reported" })).toBeTruthy();
  });

  it("shows memory with the app's limit, and waits for a second reading for CPU", async () => {
    show({
      app: "web",
      containers: [{ name: "web-1", cpu_seconds: 1.5, memory_bytes: 3 << 20, memory_limit_bytes: 256 << 20 }],
      cpu_seconds: 1.5,
      memory_bytes: 3 << 20,
      proxy,
    }, 256 << 20);
    await screen.findByText("3.0 MiB");
    expect(screen.getByText("of 256.0 MiB limit")).toBeTruthy();
    expect(within(document.querySelector('[data-metric="cpu"]') as HTMLElement).getByText("Measuring…")).toBeTruthy();
    expect(screen.getByRole("img", { name: "Memory: 3.0 MiB of 256.0 MiB limit" })).toBeTruthy();
    expect(screen.getByText("web-1")).toBeTruthy();
  });
});
