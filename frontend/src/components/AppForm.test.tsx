import { afterEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, screen } from "@testing-library/react";
import { AppForm, bodyOf, valuesOf } from "./AppForm";
import { ApiError } from "@/lib/api";
import { appView } from "@/test/fixtures";

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

describe("AppForm's preview settings", () => {
  const app = appView({
    previews: { enabled: false, domain_template: "pr-{number}.{domain}", limit: 5, forks: false, drafts: false, env_keys: ["API_URL"] },
  });

  function settings(error: unknown, onSubmit = vi.fn()) {
    render(<AppForm initial={valuesOf(app)} create={false} submitLabel="Save" pending={false} error={error} onSubmit={onSubmit} />);
    return onSubmit;
  }

  it("are in the settings form only", () => {
    form(null);
    expect(screen.queryByTestId("preview-settings")).toBeNull();
    cleanup();
    settings(null);
    expect(screen.getByTestId("preview-settings")).toBeTruthy();
    expect(screen.getByRole("switch", { name: "Deploy a preview of each open pull request" })).toBeTruthy();
  });

  it("sends the switches, template and limit, and no variables when they were left alone", () => {
    const onSubmit = settings(null);
    fireEvent.click(screen.getByRole("switch", { name: "Deploy a preview of each open pull request" }));
    fireEvent.click(screen.getByRole("switch", { name: "Draft pull requests" }));
    fireEvent.change(screen.getByLabelText("Domain template"), { target: { value: "{app}-{number}.preview.test" } });
    fireEvent.change(screen.getByLabelText("Limit"), { target: { value: "2" } });
    fireEvent.click(screen.getByRole("button", { name: "Save" }));
    expect(onSubmit).toHaveBeenCalledTimes(1);
    expect(onSubmit.mock.calls[0]![0].previews).toEqual({
      enabled: true,
      domain_template: "{app}-{number}.preview.test",
      limit: 2,
      forks: false,
      drafts: true,
    });
  });

  it("shows a stored variable by name with its value hidden, and asks for it again before replacing the set", () => {
    const onSubmit = settings(null);
    const name = screen.getByLabelText("Preview variable 1 name") as HTMLInputElement;
    const value = screen.getByLabelText("Preview variable 1 value") as HTMLInputElement;
    expect(name.value).toBe("API_URL");
    expect(value.value).toBe("");
    expect(value.placeholder).toMatch(/hidden/);
    expect(screen.getByText(/Values are write-only/)).toBeTruthy();
    // Adding a variable replaces the whole set: the stored value must be typed again.
    fireEvent.click(screen.getByRole("button", { name: "Add a variable" }));
    fireEvent.change(screen.getByLabelText("Preview variable 2 name"), { target: { value: "DEBUG" } });
    fireEvent.change(screen.getByLabelText("Preview variable 2 value"), { target: { value: "1" } });
    fireEvent.click(screen.getByRole("button", { name: "Save" }));
    expect(onSubmit).not.toHaveBeenCalled();
    expect(value.getAttribute("aria-invalid")).toBe("true");
    expect(document.getElementById(value.getAttribute("aria-describedby")!)!.textContent).toMatch(/Type its value again/);
    expect(document.activeElement).toBe(value);
    fireEvent.change(value, { target: { value: "https://api.test" } });
    fireEvent.click(screen.getByRole("button", { name: "Save" }));
    expect(onSubmit.mock.calls[0]![0].previews.env).toEqual({ API_URL: "https://api.test", DEBUG: "1" });
  });

  it("clears the variables with an empty set when every row is removed", () => {
    const onSubmit = settings(null);
    fireEvent.click(screen.getByRole("button", { name: "Remove preview variable API_URL" }));
    expect(screen.getByText("No preview variables.")).toBeTruthy();
    fireEvent.click(screen.getByRole("button", { name: "Save" }));
    expect(onSubmit.mock.calls[0]![0].previews.env).toEqual({});
  });

  it("shows the API's 422 at the preview field it names", () => {
    settings(new ApiError(422, "invalid_value", "field `previews.domain_template`: must contain {number}, or every preview would have the same host"));
    const template = screen.getByLabelText("Domain template");
    expect(template.getAttribute("aria-invalid")).toBe("true");
    expect(screen.getByText("must contain {number}, or every preview would have the same host")).toBeTruthy();
    cleanup();
    settings(new ApiError(422, "invalid_value", "field `previews.limit`: 0 is out of range (1 to 100)"));
    expect(screen.getByLabelText("Limit").getAttribute("aria-invalid")).toBe("true");
    expect(screen.getByLabelText("Domain template").getAttribute("aria-invalid")).toBeNull();
  });

  it("warns that {domain} gives no host while the app has no domain", () => {
    settings(null);
    const hint = () => document.getElementById("preview_domain_template-hint")!.textContent;
    expect(hint()).not.toMatch(/no domain/);
    fireEvent.change(screen.getByLabelText("Domains"), { target: { value: "" } });
    expect(hint()).toMatch(/This app has no domain/);
    fireEvent.change(screen.getByLabelText("Domain template"), { target: { value: "pr-{number}.preview.test" } });
    expect(hint()).not.toMatch(/no domain/);
  });

  it("puts an error about a variable's name on its row", () => {
    settings(new ApiError(422, "invalid_value", "field `previews.env.API_URL`: not a variable name"));
    expect(screen.getByLabelText("Preview variable 1 name").getAttribute("aria-invalid")).toBe("true");
    expect(screen.getByText("not a variable name")).toBeTruthy();
  });
});
