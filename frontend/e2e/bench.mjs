// Time from navigation to the apps list rendered with all its apps, in Debian's Chromium:
// `performance.now()` (milliseconds since the navigation started) when the last row is in
// the page. Signs in once, then loads /apps RUNS times; prints each time and the median.
// Used by bench/dashboard.sh, which starts Rivetr and creates the apps.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const BASE = process.env.RIVETR_URL;
const TOKEN = process.env.RIVETR_TOKEN;
const APPS = Number(process.env.APPS || 50);
const RUNS = Number(process.env.RUNS || 10);
const profile = mkdtempSync(join(tmpdir(), "rivetr-bench-profile-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1440, height: 900 },
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = context.pages()[0] ?? (await context.newPage());
  await page.goto(`${BASE}/signin`);
  await page.getByLabel("API token").fill(TOKEN);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(/\/apps$/);
  const times = [];
  for (let i = 0; i < RUNS; i++) {
    await page.goto("about:blank");
    await page.goto(`${BASE}/apps`, { waitUntil: "commit" });
    await page.locator("tr[data-app]").nth(APPS - 1).waitFor();
    const ms = await page.evaluate(() => performance.now());
    const rows = await page.locator("tr[data-app]").count();
    if (rows !== APPS) throw new Error(`${rows} rows, expected ${APPS}`);
    times.push(ms);
  }
  times.sort((a, b) => a - b);
  const median = RUNS % 2 ? times[(RUNS - 1) / 2] : (times[RUNS / 2 - 1] + times[RUNS / 2]) / 2;
  console.log(`apps list with ${APPS} apps rendered, ms from navigation: ${times.map((t) => t.toFixed(0)).join(" ")}`);
  console.log(`median of ${RUNS}: ${median.toFixed(0)} ms`);
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
