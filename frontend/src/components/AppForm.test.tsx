import { afterEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, screen } from "@testing-library/react";
import { AppForm, bodyOf, valuesOf } from "./AppForm";
import { ApiError } from "@/lib/api";

afterEach(cleanup);

function form(error: unknown, onSubmit = vi.fn()) {
  render(<AppForm initial={valuesOf()} create submitLabel="Create app" pending={false} error={error} onSubmit={onSubmit} />);
  return onSubmit;
}

describe("AppForm", () => {
  it("shows a 422 next to the field it names", () => {
    // The message as the API words it (src/api/apps.rs).
    form(new ApiError(422, "invalid_value", "field `healthcheck.path`: a path starting with `/`"));
    const path = screen.getByLabelText("Path");
    expect(path.getAttribute("aria-invalid")).toBe("true");
    const describedBy = path.getAttribute("aria-describedby")!;
    const note = document.getElementById(describedBy.split(" ").find((id) => id.endsWith("-error"))!)!;
    expect(note.textContent).toBe("a path starting with `/`");
    expect(screen.getByLabelText("Port").getAttribute("aria-invalid")).toBeNull();
  });

  it("puts an error about one domain of the list on the domains field", () => {
    form(new ApiError(422, "invalid_value", "field `domains[1]`: `-x` is not a host name"));
    expect(screen.getByLabelText("Domains").getAttribute("aria-invalid")).toBe("true");
    expect(screen.getByText("`-x` is not a host name")).toBeTruthy();
  });

  it("puts a taken name on the name field and other errors above the form", () => {
    form(new ApiError(409, "conflict", "an app named `web` already exists"));
    expect(screen.getByLabelText("Name").getAttribute("aria-invalid")).toBe("true");
    cleanup();
    form(new ApiError(503, "unavailable", "no container runtime"));
    expect(screen.getByRole("alert").textContent).toContain("no container runtime (HTTP 503)");
  });

  it("sends what was typed, numbers as numbers and the rest for the API to judge", () => {
    const onSubmit = form(null);
    fireEvent.change(screen.getByLabelText("Name"), { target: { value: "web" } });
    fireEvent.change(screen.getByLabelText("Git URL"), { target: { value: " file:///srv/web " } });
    fireEvent.change(screen.getByLabelText("Domains"), { target: { value: "web.test\nwww.web.test" } });
    fireEvent.change(screen.getByLabelText("Replicas"), { target: { value: "two" } });
    fireEvent.click(screen.getByRole("button", { name: "Create app" }));
    expect(onSubmit).toHaveBeenCalledWith(
      expect.objectContaining({
        name: "web",
        git_url: "file:///srv/web",
        branch: "main",
        port: 8080,
        domains: ["web.test", "www.web.test"],
        replicas: "two",
        healthcheck: { path: "/" },
      }),
    );
  });

  it("builds an image app's body without git fields", () => {
    const v = { ...valuesOf(), name: "img", source: "image" as const, image: "docker.io/library/nginx:1.27" };
    const body = bodyOf(v, true);
    expect(body.image).toBe("docker.io/library/nginx:1.27");
    expect(body.git_url).toBeUndefined();
  });
});
