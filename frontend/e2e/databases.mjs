// End-to-end test of the dashboard's managed databases in Debian's Chromium, against a real
// `rivetr serve` on a real container engine with the test images of PostgreSQL. Started by
// tests/dashboard_e2e.rs, which starts Rivetr, creates an app and passes in:
//   RIVETR_URL         the API listener (the dashboard), e.g. http://127.0.0.1:20001
//   RIVETR_TOKEN       the initial admin token, typed into the sign-in form
//   RIVETR_E2E_APP     an app (not deployed) to link the database to
//   RIVETR_E2E_SHOTS   the folder for screenshots (desktop and phone width, per step)
//   CHROMIUM           the browser (default /usr/bin/chromium)
// A database is created through the form, linked from the app's page, backed up now and by a
// schedule, downloaded (its SHA-256 checked), restored into itself and into a new database,
// and deleted through the dialog. Every page is checked with axe-core like run.mjs does.
import { createHash } from "node:crypto";
import { env, openBrowser, signIn } from "./lib.mjs";

const BASE = env("RIVETR_URL");
const TOKEN = env("RIVETR_TOKEN");
const APP = env("RIVETR_E2E_APP");
const SHOTS = env("RIVETR_E2E_SHOTS");
const DB = "shop";
const COPY = "shop-restored";
// Creating a database waits until it accepts connections; a backup or a restore runs the
// engine's tools. A loaded 2-CPU machine needs the margin.
const SLOW = { timeout: 180_000 };

const browser = await openBrowser(SHOTS);
const { context, page, capture, step } = browser;

const backupRows = () => page.locator("tr[data-backup]");

/** Waits until the newest backup has ended, and says it succeeded with a size and SHA-256. */
async function newestBackupSucceeded() {
  const row = backupRows().first();
  await page.waitForFunction(() => document.querySelector("tr[data-backup]")?.dataset.status !== "running", null, SLOW);
  const status = await row.getAttribute("data-status");
  if (status !== "succeeded") {
    const reason = await page.locator("[data-reason]").first().textContent();
    throw new Error(`the backup ${status}: ${reason}`);
  }
  const size = (await row.locator("[data-size]").textContent()).trim();
  if (!/^\d+(\.\d)? (B|KiB|MiB)$/.test(size)) throw new Error(`no size shown: ${size}`);
  const sha = await row.locator("[data-sha256]").getAttribute("data-sha256");
  if (!/^[0-9a-f]{64}$/.test(sha)) throw new Error(`no SHA-256 shown: ${sha}`);
  return { id: Number(await row.getAttribute("data-backup")), size, sha };
}

try {
  await step("sign in and open Databases from the navigation", async () => {
    await signIn(page, BASE, TOKEN);
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Databases" }).click();
    await page.getByRole("heading", { name: "Databases" }).waitFor();
    await page.getByText("No databases yet.").waitFor();
    await capture(page, "databases-empty");
  });

  await step("a bad name shows its error next to the field", async () => {
    await page.getByRole("link", { name: "New database" }).click();
    await page.getByLabel("Name", { exact: true }).fill("Shop_DB");
    await page.getByRole("button", { name: "Create database" }).click();
    const error = page.locator("#db-name-error");
    await error.waitFor();
    if ((await page.getByLabel("Name", { exact: true }).getAttribute("aria-invalid")) !== "true") {
      throw new Error("the Name field is not marked invalid");
    }
    console.log(`     the API said: ${await error.textContent()}`);
    await capture(page, "new-database-error");
  });

  await step("create PostgreSQL 15 through the form and see it running", async () => {
    await page.getByLabel("Name", { exact: true }).fill(DB);
    await page.getByLabel("Engine").selectOption("postgres");
    await page.getByLabel("Version").fill("15");
    const t = Date.now();
    await page.getByRole("button", { name: "Create database" }).click();
    await page.waitForURL(new RegExp(`/databases/${DB}$`), SLOW);
    console.log(`     created and accepting connections in ${Date.now() - t} ms`);
    await page.getByRole("heading", { name: DB, exact: true }).waitFor();
    await page.locator('h1 + [data-status="running"]').waitFor();
    const connection = await page.getByTestId("connection").textContent();
    for (const want of [DB, "5432"]) {
      if (!connection.includes(want)) throw new Error(`connection details lack ${want}: ${connection}`);
    }
    // The password is never in the page: no connection URL, no password variable.
    const html = await page.content();
    if (/postgres(ql)?:\/\/[^"<\s]*@/.test(html)) throw new Error("a connection URL with credentials is in the page");
    await page.getByText("No backups yet.").waitFor();
    await capture(page, "database");
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Databases" }).click();
    const row = page.locator(`tr[data-database="${DB}"]`);
    await row.locator('[data-status="running"]').waitFor();
    if (!(await row.textContent()).includes("PostgreSQL")) throw new Error(`row: ${await row.textContent()}`);
    await capture(page, "databases-list");
  });

  await step("link it from the app's page", async () => {
    await page.goto(`${BASE}/apps/${APP}`);
    await page.getByRole("navigation", { name: "App" }).getByRole("link", { name: "Databases" }).click();
    await page.getByText("No linked databases.").waitFor();
    const variable = page.getByLabel("Variable");
    if ((await variable.inputValue()) !== "DATABASE_URL") throw new Error("the variable's default is not DATABASE_URL");
    await page.getByLabel("Database", { exact: true }).selectOption(DB);
    // A name that is not a variable's is refused, with the API's words next to the field.
    await variable.fill("2-BAD");
    await page.getByRole("button", { name: "Link database" }).click();
    await page.locator("#link-env-error").waitFor();
    await variable.fill("DATABASE_URL");
    await page.getByRole("button", { name: "Link database" }).click();
    const link = page.locator(`li[data-link="${DB}"]`);
    await link.locator("[data-env]").filter({ hasText: "DATABASE_URL" }).waitFor();
    await page.getByText("Every database is linked already.").waitFor();
    await capture(page, "app-links");
  });

  let first;
  await step("back up now, see it succeed with a size and SHA-256, and download it", async () => {
    await page.goto(`${BASE}/databases/${DB}`);
    await page.getByRole("button", { name: "Back up now" }).click();
    await backupRows().first().waitFor();
    first = await newestBackupSucceeded();
    console.log(`     backup #${first.id}: ${first.size}, sha256 ${first.sha}`);
    // The download link works with the session cookie alone, and gives the file the list
    // describes.
    const href = await page.getByRole("link", { name: `Download backup #${first.id}` }).getAttribute("href");
    const res = await context.request.get(`${BASE}${href}`);
    if (res.status() !== 200) throw new Error(`download: ${res.status()}`);
    const body = await res.body();
    const sha = createHash("sha256").update(body).digest("hex");
    if (sha !== first.sha) throw new Error(`downloaded ${body.length} bytes with sha256 ${sha}, listed ${first.sha}`);
    if (body[0] !== 0x1f || body[1] !== 0x8b) throw new Error("the download is not gzip");
    await capture(page, "backup-succeeded");
  });

  await step("add a schedule (a bad pattern first), see it listed, run it now", async () => {
    await page.getByLabel("Cron (UTC)").fill("0 0 3 * * *");
    await page.getByRole("button", { name: "Add schedule" }).click();
    await page.locator("#schedule-cron-error").waitFor();
    console.log(`     the API said: ${await page.locator("#schedule-cron-error").textContent()}`);
    await capture(page, "schedule-error");
    await page.getByLabel("Cron (UTC)").fill("0 3 * * *");
    await page.getByLabel("Keep last").fill("3");
    await page.getByRole("button", { name: "Add schedule" }).click();
    const item = page.locator("li[data-schedule]").first();
    await item.filter({ hasText: "0 3 * * *" }).filter({ hasText: "keeps the last 3" }).waitFor();
    if ((await page.getByLabel("Cron (UTC)").inputValue()) !== "") throw new Error("the form kept the added pattern");
    await page.getByRole("button", { name: "Run now schedule 0 3 * * *" }).click();
    await backupRows().nth(1).waitFor();
    const second = await newestBackupSucceeded();
    if (second.id === first.id) throw new Error("no new backup from the schedule");
    if (!(await backupRows().first().textContent()).includes("scheduled")) throw new Error("the schedule's backup is not marked");
    await capture(page, "schedules");
  });

  await step("restore into a new database and see it appear", async () => {
    await page.getByRole("button", { name: `Restore backup #${first.id}` }).click();
    const dialog = page.getByRole("dialog");
    await dialog.getByLabel("A new database").check();
    await dialog.getByLabel("New database name").fill(COPY);
    await capture(page, "restore-dialog");
    const t = Date.now();
    await dialog.getByRole("button", { name: "Restore into the new database" }).click();
    await dialog.getByRole("status").filter({ hasText: `restored into ${COPY}` }).waitFor(SLOW);
    console.log(`     restored into a new database in ${Date.now() - t} ms`);
    await dialog.getByRole("button", { name: "Close", exact: true }).first().click();
    await page.getByTestId("restored").getByRole("link", { name: `Open ${COPY}` }).click();
    await page.getByRole("heading", { name: COPY, exact: true }).waitFor();
    await page.locator('h1 + [data-status="running"]').waitFor();
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Databases" }).click();
    await page.locator(`tr[data-database="${COPY}"] [data-status="running"]`).waitFor();
    await capture(page, "restored-listed");
  });

  await step("restore into the database itself, after saying so", async () => {
    await page.goto(`${BASE}/databases/${DB}`);
    await page.getByRole("button", { name: `Restore backup #${first.id}` }).click();
    const dialog = page.getByRole("dialog");
    await dialog.getByLabel(`${DB} itself`).check();
    await dialog.getByText("replaces the same tables").waitFor();
    await dialog.getByRole("button", { name: `Restore into ${DB}` }).click();
    await dialog.getByRole("status").filter({ hasText: `restored into ${DB}` }).waitFor(SLOW);
    await page.keyboard.press("Escape");
    await page.getByTestId("restored").filter({ hasText: `restored into ${DB}` }).waitFor();
  });

  await step("a linked database cannot be deleted: the dialog says why", async () => {
    await page.getByRole("button", { name: "Delete", exact: true }).click();
    const dialog = page.getByRole("dialog");
    const confirm = dialog.getByRole("button", { name: "Delete database" });
    if (!(await confirm.isDisabled())) throw new Error("delete is possible without typing the name");
    await dialog.getByLabel(/Type .* to confirm/).fill(DB);
    await confirm.click();
    await dialog.getByRole("alert").filter({ hasText: "remove the links first" }).waitFor();
    await capture(page, "delete-linked-refused");
    await page.keyboard.press("Escape");
  });

  await step("delete the restored copy with its volume through the dialog", async () => {
    await page.goto(`${BASE}/databases/${COPY}`);
    await page.getByRole("button", { name: "Delete", exact: true }).click();
    const dialog = page.getByRole("dialog");
    await dialog.getByLabel(/Also remove the data volume/).check();
    await dialog.getByLabel(/Type .* to confirm/).fill(COPY);
    await capture(page, "delete-dialog");
    await dialog.getByRole("button", { name: "Delete database" }).click();
    await page.waitForURL(/\/databases$/, SLOW);
    await page.getByTestId("notice").filter({ hasText: `database ${COPY} deleted with its data` }).waitFor();
    await page.locator(`tr[data-database="${COPY}"]`).waitFor({ state: "detached" });
    await page.locator(`tr[data-database="${DB}"]`).waitFor();
    await capture(page, "database-deleted");
  });

  await step("unlink from the app's page", async () => {
    await page.goto(`${BASE}/apps/${APP}/databases`);
    await page.getByRole("button", { name: `Unlink ${DB}` }).click();
    await page.locator(`li[data-link="${DB}"]`).waitFor({ state: "detached" });
    await page.getByText("No linked databases.").waitFor();
  });

  browser.verdict("databases");
} catch (e) {
  await browser.failed(e);
} finally {
  await browser.close();
}
