// End-to-end test of the dashboard's notifications page in Debian's Chromium, against a real
// `rivetr serve` (no container engine needed) and a real HTTP receiver. Started by
// tests/dashboard_e2e.rs, which starts both and passes in:
//   RIVETR_URL              the API listener (the dashboard), e.g. http://127.0.0.1:20001
//   RIVETR_TOKEN            the initial admin token, typed into the sign-in form
//   RIVETR_E2E_HOOK_URL     the receiver's URL, for a signed webhook channel
//   RIVETR_E2E_DEAD_URL     a URL nothing listens at, for a channel whose test fails
//   RIVETR_E2E_SECRET_FILE  where to write the signing secret the page showed, so the Rust
//                           test can check the signature the receiver got
//   RIVETR_E2E_SHOTS        the folder for screenshots (desktop, phone width, dark, per step)
//   CHROMIUM                the browser (default /usr/bin/chromium)
// A webhook channel is added (its signing secret seen once), sent a test message (seen
// `sent` in the deliveries), a Slack channel is refused for a bad URL (the 422 next to the
// field), then added with a dead URL, its test failing in the receiver's words; the
// deliveries are filtered by status; the Slack channel is disabled, then deleted through the
// confirm dialog. Every state is checked with axe-core in both themes.
import { writeFileSync } from "node:fs";
import { env, openBrowser, signIn } from "./lib.mjs";

const BASE = env("RIVETR_URL");
const TOKEN = env("RIVETR_TOKEN");
const HOOK_URL = env("RIVETR_E2E_HOOK_URL");
const DEAD_URL = env("RIVETR_E2E_DEAD_URL");
const SECRET_FILE = env("RIVETR_E2E_SECRET_FILE");
const SHOTS = env("RIVETR_E2E_SHOTS");
const HOOK = "ops-hook";
const SLACK = "team-slack";

const browser = await openBrowser(SHOTS);
const { page, capture, step } = browser;

/** Screenshots and the axe check of the page as it is, the mouse moved off whatever was
 * clicked last (a hovered button is not the state being looked at). */
async function shoot(name, options) {
  await page.mouse.move(0, 0);
  await capture(page, name, options);
}

const channel = (name) => page.locator(`li[data-channel="${name}"]`);
const deliveryRows = () => page.locator("tr[data-delivery]");

/** The statuses of the deliveries table's rows, top to bottom. */
async function shownStatuses() {
  return deliveryRows().evaluateAll((rows) => rows.map((r) => `${r.dataset.channel}:${r.dataset.status}`));
}

/** Waits until the deliveries table shows exactly `want` (channel:status, newest first). */
async function deliveriesAre(want) {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const now = await shownStatuses();
    if (now.join(",") === want.join(",")) return;
    if (Date.now() > deadline) throw new Error(`deliveries shown: ${now.join(", ")}; wanted ${want.join(", ")}`);
    await page.waitForTimeout(100);
  }
}

try {
  await step("sign in and open Notifications from the navigation", async () => {
    await signIn(page, BASE, TOKEN);
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Notifications" }).click();
    await page.waitForURL(/\/notifications$/);
    await page.getByRole("heading", { name: "Notifications", level: 1 }).waitFor();
    await page.getByText("No channels yet").waitFor();
    await page.getByTestId("no-deliveries").filter({ hasText: "No deliveries yet" }).waitFor();
    await shoot("notifications-empty");
  });

  let secret;
  await step("add a signed webhook to the receiver and see its signing secret once", async () => {
    await page.getByLabel("Name", { exact: true }).fill(HOOK);
    if ((await page.getByLabel("Kind").inputValue()) !== "webhook") throw new Error("the kind does not start as webhook");
    const url = page.getByLabel("URL", { exact: true });
    for (const secretField of [url, page.getByLabel("Signing secret (optional)")]) {
      if ((await secretField.getAttribute("type")) !== "password") throw new Error("a secret field is not of type password");
    }
    await url.fill(HOOK_URL);
    await page.getByLabel(/A deployment failed/).check();
    await page.getByLabel(/A database backup failed/).check();
    await page.getByRole("button", { name: "Add channel" }).click();
    const added = page.getByTestId("channel-added");
    await added.getByText(`Channel ${HOOK} added.`).waitFor();
    secret = (await page.getByTestId("secret").textContent()).trim();
    if (!/^[0-9a-f]{32,}$/.test(secret)) throw new Error(`no signing secret shown: ${secret}`);
    if (!(await added.textContent()).includes("never again")) throw new Error("no warning that the secret is shown only now");
    await added.getByRole("button", { name: "Copy" }).waitFor();
    writeFileSync(SECRET_FILE, secret);
    // The list shows where it goes without the URL's path (which holds a receiver's token).
    const item = channel(HOOK);
    const target = (await item.locator("[data-target]").textContent()).trim();
    const origin = new URL(HOOK_URL).origin;
    if (target !== `${origin}/…`) throw new Error(`target shown as ${target}, wanted ${origin}/…`);
    const events = await item.locator("[data-events] code").allTextContents();
    if (events.join(",") !== "deployment.failed,backup.failed") throw new Error(`events shown: ${events}`);
    // The form starts again empty: nothing typed stays in it.
    if ((await page.getByLabel("Name", { exact: true }).inputValue()) !== "") throw new Error("the form kept the name");
    if ((await url.inputValue()) !== "") throw new Error("the form kept the URL");
    await shoot("webhook-added", { axe: true });
    // Shown once: after a reload neither the secret nor the URL's path is in the page.
    await page.reload();
    await channel(HOOK).waitFor();
    const html = await page.content();
    if (html.includes(secret)) throw new Error("the signing secret is still in the page after a reload");
    if (html.includes(new URL(HOOK_URL).pathname)) throw new Error("the webhook URL's path is in the page");
  });

  await step("send a test message and see it sent in the deliveries", async () => {
    await page.getByRole("button", { name: `Send test to ${HOOK}` }).click();
    await channel(HOOK).locator('[data-test-result="sent"]').waitFor();
    await deliveriesAre([`${HOOK}:sent`]);
    const row = deliveryRows().first();
    const text = await row.textContent();
    if (!text.includes("test") || !text.includes(`Test message to ${HOOK}`)) throw new Error(`delivery row: ${text}`);
    if ((await row.locator("[data-attempts]").textContent()).trim() !== "1") throw new Error("not one attempt");
    await shoot("test-sent", { axe: true });
  });

  await step("a Slack channel with a bad URL shows the API's 422 next to the URL", async () => {
    await page.getByLabel("Name", { exact: true }).fill(SLACK);
    await page.getByLabel("Kind").selectOption("slack");
    if (await page.getByLabel("Signing secret (optional)").count()) throw new Error("a Slack channel is asked for a signing secret");
    const url = page.getByLabel("URL", { exact: true });
    await url.fill("hooks.slack.com/services/T000/B000/XXXX");
    await page.getByRole("button", { name: "Add channel" }).click();
    const error = page.locator("#channel-url-error");
    await error.waitFor();
    if ((await url.getAttribute("aria-invalid")) !== "true") throw new Error("the URL field is not marked invalid");
    console.log(`     the API said: ${await error.textContent()}`);
    // Show reveals what was typed, to see the mistake.
    await page.getByRole("button", { name: "Show URL" }).click();
    if ((await url.getAttribute("type")) !== "text") throw new Error("Show did not reveal the URL");
    await shoot("slack-422", { axe: true });
    await page.getByRole("button", { name: "Hide URL" }).click();
    await url.fill(DEAD_URL);
    await page.getByRole("button", { name: "Add channel" }).click();
    await channel(SLACK).waitFor();
    if ((await channel(SLACK).locator("[data-events]").textContent()).trim() !== "all events") throw new Error("no events checked is not shown as all");
    if (await page.locator("#channel-url-error").count()) throw new Error("the old error is still shown");
    // A Slack channel has no signing secret to show.
    if (await page.getByTestId("secret").count()) throw new Error("a secret shown for a Slack channel");
  });

  await step("a test that cannot be delivered shows the receiver's (here: the network's) words", async () => {
    await page.getByRole("button", { name: `Send test to ${SLACK}` }).click();
    const failed = channel(SLACK).locator('[data-test-result="failed"]');
    await failed.waitFor();
    const said = await failed.textContent();
    console.log(`     the page said: ${said}`);
    if (!said.includes("Connection refused")) throw new Error("the network's words are not shown");
    await deliveriesAre([`${SLACK}:failed`, `${HOOK}:sent`]);
    const row = deliveryRows().first();
    if (!(await row.textContent()).trim()) throw new Error("an empty row");
    await shoot("test-failed", { axe: true });
  });

  await step("filter the deliveries by status and by channel", async () => {
    await page.getByLabel("Status").selectOption("failed");
    await deliveriesAre([`${SLACK}:failed`]);
    await page.getByLabel("Status").selectOption("sent");
    await deliveriesAre([`${HOOK}:sent`]);
    await page.getByLabel("Status").selectOption("pending");
    await page.getByTestId("no-deliveries").filter({ hasText: "No deliveries match." }).waitFor();
    await page.getByLabel("Status").selectOption("");
    await page.getByLabel("Channel", { exact: true }).selectOption(SLACK);
    await deliveriesAre([`${SLACK}:failed`]);
    await shoot("deliveries-filtered", { axe: true });
    await page.getByLabel("Channel", { exact: true }).selectOption("");
    await deliveriesAre([`${SLACK}:failed`, `${HOOK}:sent`]);
  });

  await step("disable a channel, and it stays disabled", async () => {
    const toggle = page.getByRole("switch", { name: `Enabled ${SLACK}` });
    if (!(await toggle.isChecked())) throw new Error("a new channel is not enabled");
    await toggle.uncheck();
    await page.locator(`li[data-channel="${SLACK}"][data-enabled="false"]`).waitFor();
    await page.reload();
    await channel(SLACK).waitFor();
    if (await page.getByRole("switch", { name: `Enabled ${SLACK}` }).isChecked()) throw new Error("disabled did not stay");
    if (!(await page.getByRole("switch", { name: `Enabled ${HOOK}` }).isChecked())) throw new Error("the other channel changed");
    await shoot("channel-disabled", { axe: true });
  });

  await step("delete a channel through the confirm dialog", async () => {
    await page.getByRole("button", { name: `Delete ${SLACK}` }).click();
    let dialog = page.getByRole("dialog");
    await dialog.getByRole("heading", { name: `Delete channel ${SLACK}?` }).waitFor();
    await shoot("delete-dialog", { axe: true });
    // Cancel keeps it.
    await dialog.getByRole("button", { name: "Cancel" }).click();
    await dialog.waitFor({ state: "hidden" });
    await channel(SLACK).waitFor();
    await page.getByRole("button", { name: `Delete ${SLACK}` }).click();
    dialog = page.getByRole("dialog");
    await dialog.getByRole("button", { name: "Delete channel" }).click();
    await channel(SLACK).waitFor({ state: "detached" });
    await channel(HOOK).waitFor();
    // Its deliveries went with it.
    await deliveriesAre([`${HOOK}:sent`]);
    await page.reload();
    await channel(HOOK).waitFor();
    if (await channel(SLACK).count()) throw new Error("the deleted channel is back after a reload");
    await shoot("channel-deleted");
  });

  await step("the email kind asks for an SMTP server instead of a URL", async () => {
    await page.getByLabel("Kind").selectOption("email");
    if (await page.getByLabel("URL", { exact: true }).count()) throw new Error("an email channel is asked for a URL");
    for (const label of ["SMTP host", "Port", "Security", "From", "To"]) await page.getByLabel(label, { exact: true }).waitFor();
    if ((await page.getByLabel("Password", { exact: true }).getAttribute("type")) !== "password") throw new Error("the SMTP password is shown");
    // A missing host is named by the API next to its field.
    await page.getByLabel("Name", { exact: true }).fill("mail");
    await page.getByLabel("To", { exact: true }).fill("ops@example.com");
    await page.getByLabel("From", { exact: true }).fill("Rivetr <rivetr@example.com>");
    await page.getByRole("button", { name: "Add channel" }).click();
    await page.locator("#channel-host-error").waitFor();
    await shoot("email-form", { axe: true });
  });

  browser.verdict("notifications");
} catch (e) {
  await browser.failed(e);
} finally {
  await browser.close();
}
