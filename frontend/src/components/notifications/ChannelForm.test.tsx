import { afterEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, screen } from "@testing-library/react";
import { ChannelForm, fieldOfError } from "./ChannelForm";
import { ApiError } from "@/lib/api";

afterEach(cleanup);

function form(error: unknown = null, onSubmit = vi.fn()) {
  render(<ChannelForm pending={false} error={error} onSubmit={onSubmit} />);
  return onSubmit;
}

const type = (label: string | RegExp, value: string) => fireEvent.change(screen.getByLabelText(label), { target: { value } });

describe("ChannelForm", () => {
  it("asks a webhook for a URL and a signing secret, in password fields", () => {
    form();
    expect(screen.getByLabelText("URL").getAttribute("type")).toBe("password");
    expect(screen.getByLabelText("Signing secret (optional)").getAttribute("type")).toBe("password");
    expect(screen.queryByLabelText("SMTP host")).toBeNull();
    fireEvent.click(screen.getByRole("button", { name: "Show URL" }));
    expect(screen.getByLabelText("URL").getAttribute("type")).toBe("text");
  });

  it("switches to the SMTP fields for email, and Slack has no signing secret", () => {
    form();
    type("Kind", "slack");
    expect(screen.getByLabelText("URL")).toBeTruthy();
    expect(screen.queryByLabelText("Signing secret (optional)")).toBeNull();
    type("Kind", "email");
    expect(screen.queryByLabelText("URL")).toBeNull();
    for (const label of ["SMTP host", "Port", "Security", "Username (optional)", "From", "To"]) {
      expect(screen.getByLabelText(label)).toBeTruthy();
    }
    expect(screen.getByLabelText("Password").getAttribute("type")).toBe("password");
  });

  it("sends the URL and the events checked, none meaning all", () => {
    const onSubmit = form();
    type("Name", " ops ");
    type("URL", " https://example.com/hook ");
    fireEvent.click(screen.getByRole("button", { name: "Add channel" }));
    expect(onSubmit).toHaveBeenLastCalledWith({ name: "ops", kind: "webhook", url: "https://example.com/hook", events: [], enabled: true });
    fireEvent.click(screen.getByLabelText(/A deployment failed/));
    fireEvent.click(screen.getByLabelText(/A database backup failed/));
    type("Signing secret (optional)", "0123456789abcdef0123");
    fireEvent.click(screen.getByRole("button", { name: "Add channel" }));
    expect(onSubmit).toHaveBeenLastCalledWith(
      expect.objectContaining({ events: ["deployment.failed", "backup.failed"], signing_secret: "0123456789abcdef0123" }),
    );
  });

  it("sends an email channel's settings with the recipients as a list", () => {
    const onSubmit = form();
    type("Name", "mail");
    type("Kind", "email");
    type("SMTP host", "smtp.example.com");
    type("Security", "tls");
    type("Username (optional)", "rivetr");
    type("Password", "s3cret");
    type("From", "Rivetr <rivetr@example.com>");
    type("To", "ops@example.com,\n dev@example.com");
    fireEvent.click(screen.getByRole("button", { name: "Add channel" }));
    expect(onSubmit).toHaveBeenLastCalledWith({
      name: "mail",
      kind: "email",
      events: [],
      enabled: true,
      email: {
        host: "smtp.example.com",
        port: null,
        security: "tls",
        username: "rivetr",
        from: "Rivetr <rivetr@example.com>",
        to: ["ops@example.com", "dev@example.com"],
        ca_certificate: null,
      },
      password: "s3cret",
    });
  });

  it("shows a 422 next to the field it names", () => {
    // As src/notify/channel.rs words it.
    form(new ApiError(422, "invalid_value", "field `url`: must start with https:// (or http://)"));
    const url = screen.getByLabelText("URL");
    expect(url.getAttribute("aria-invalid")).toBe("true");
    expect(document.getElementById("channel-url-error")?.textContent).toBe("must start with https:// (or http://)");
    expect(url.getAttribute("aria-describedby")).toContain("channel-url-error");
  });

  it("maps the API's field names onto the form's", () => {
    const e = (m: string, status = 422) => fieldOfError(new ApiError(status, "x", m));
    expect(e("field `email.host`: required")).toBe("host");
    expect(e("field `email.password`: a username and a password go together")).toBe("password");
    expect(e("field `events`: `x` is no event")).toBe("events");
    expect(e("a channel named `ops` already exists", 409)).toBe("name");
    expect(e("field `email`: required for `email`")).toBeUndefined();
    expect(fieldOfError(new Error("network"))).toBeUndefined();
  });
});
