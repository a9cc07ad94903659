// What the dashboard's end-to-end scripts (run.mjs, databases.mjs, notifications.mjs) share:
// Debian's Chromium driven by playwright-core with a throw-away profile, screenshots at
// desktop and phone width (and in the dark theme), an axe-core check of every page the first
// time it is seen (a serious or critical violation fails the run), a page wider than a phone
// fails it too, and steps that print their time. Console errors that mean a bug (a CSP
// violation, an uncaught exception) fail the run at the end.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { AxeBuilder } from "@axe-core/playwright";
import { hostRelays } from "./netns.mjs";

export const DESKTOP = { width: 1440, height: 900 };
export const PHONE = { width: 375, height: 812 };

/** The value of an environment variable the script needs. */
export function env(k) {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
}

/** The host's ports the browser reaches: the API's (RIVETR_URL) and the proxy's, if set. */
function browserPorts() {
  const ports = [Number(new URL(env("RIVETR_URL")).port)];
  if (process.env.RIVETR_PROXY_PORT) ports.push(Number(process.env.RIVETR_PROXY_PORT));
  return ports;
}

/** Starts the browser, in a network namespace of its own (netns.mjs says why); screenshots go
 * to `shots`. */
export async function openBrowser(shots) {
  mkdirSync(shots, { recursive: true });
  const profile = mkdtempSync(join(tmpdir(), "rivetr-e2e-profile-"));
  const relays = await hostRelays(browserPorts());
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: join(dirname(fileURLToPath(import.meta.url)), "netns-chromium.sh"),
    env: { ...process.env, RIVETR_E2E_RELAY_DIR: relays.dir },
    headless: true,
    viewport: DESKTOP,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--host-resolver-rules=MAP *.test 127.0.0.1",
    ],
  });
  context.setDefaultTimeout(30_000);
  const page = context.pages()[0] ?? (await context.newPage());
  const run = { context, page, profile, shots, current: "", shot: 0, checked: new Set(), violations: [], consoleErrors: [], assetErrors: [] };
  page.on("pageerror", (e) => run.consoleErrors.push(`${run.current}: Uncaught ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") run.consoleErrors.push(`${run.current} (${page.url()}): ${m.text()}`);
  });
  // The dashboard's own files that did not arrive (a page without its stylesheet was seen
  // once, under load, with nothing else to say why): named when the run fails.
  const isAsset = (url) => new URL(url).pathname.startsWith("/assets/");
  page.on("requestfailed", (r) => {
    if (isAsset(r.url())) run.assetErrors.push(`${run.current}: ${r.url()} failed: ${r.failure()?.errorText}`);
  });
  page.on("response", (r) => {
    if (isAsset(r.url()) && r.status() >= 400) run.assetErrors.push(`${run.current}: ${r.url()} answered ${r.status()}`);
  });

  /** Screenshots at desktop and phone width, and an axe-core check of the page (the first
   * time its route is seen, or again with `{ axe: true }` for a new state of the page). */
  run.capture = async (p, name, { axe = false } = {}) => {
    run.shot += 1;
    const base = `${String(run.shot).padStart(2, "0")}-${name}`;
    await p.setViewportSize(DESKTOP);
    await p.screenshot({ path: join(shots, `${base}-desktop.png`), fullPage: true, caret: "initial" });
    await p.setViewportSize(PHONE);
    await p.waitForTimeout(100);
    await p.screenshot({ path: join(shots, `${base}-phone.png`), fullPage: true, caret: "initial" });
    const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    if (overflow > 1) run.violations.push(`${name}: the page is ${overflow}px wider than a 375px phone screen`);
    await p.setViewportSize(DESKTOP);
    const route = new URL(p.url()).pathname.replace(/\/\d+$/, "/:id");
    const fresh = axe || !run.checked.has(route);
    run.checked.add(route);
    // Dark theme (it follows the system): a screenshot, and the axe check in both themes.
    for (const scheme of ["light", "dark"]) {
      await p.emulateMedia({ colorScheme: scheme });
      // Buttons and fields fade between colours (transition-colors): let them arrive.
      await p.waitForTimeout(400);
      if (scheme === "dark") await p.screenshot({ path: join(shots, `${base}-dark.png`), fullPage: true, caret: "initial" });
      if (fresh) {
        const result = await new AxeBuilder({ page: p }).analyze();
        for (const v of result.violations.filter((v) => v.impact === "serious" || v.impact === "critical")) {
          const where = v.nodes.map((n) => n.target.join(" ")).slice(0, 3).join("; ");
          run.violations.push(`${name} (${route}, ${scheme}): ${v.impact} ${v.id}: ${v.help} — ${where}`);
        }
      }
    }
    await p.emulateMedia({ colorScheme: "light" });
  };

  run.step = async (name, f) => {
    run.current = name;
    const t = Date.now();
    await f();
    console.log(`ok   ${name} (${Date.now() - t} ms)`);
  };

  /** After the last step: fails on the problems collected along the way, else says what
   * was checked. */
  run.verdict = (what) => {
    // Refused requests (401 after sign-out, a stream cut by a navigation) are expected; a
    // CSP violation or an uncaught exception is not.
    const unexpected = run.consoleErrors.filter((e) => /Content Security Policy|Uncaught|TypeError|ReferenceError/.test(e));
    if (unexpected.length) run.violations.push(`console errors: ${unexpected.join(" | ")}`);
    if (run.violations.length && run.assetErrors.length) {
      run.violations.push(`the dashboard's files that did not arrive: ${run.assetErrors.join(" | ")}`);
    }
    if (run.violations.length) {
      throw new Error(`accessibility and layout problems:\n  ${run.violations.join("\n  ")}`);
    }
    console.log(`all ${what} steps passed; pages checked with axe-core: ${[...run.checked].join(", ")}`);
    console.log(`screenshots: ${shots}`);
  };

  /** Says where the run failed, with a screenshot of the page as it was. */
  run.failed = async (e) => {
    console.error(`FAILED at "${run.current}": ${e.stack ?? e}`);
    if (run.assetErrors.length) console.error(`the dashboard's files that did not arrive: ${run.assetErrors.join(" | ")}`);
    await page.screenshot({ path: join(shots, "failure.png"), fullPage: true }).catch(() => {});
    process.exitCode = 1;
  };

  run.close = async () => {
    await context.close();
    relays.close();
    rmSync(profile, { recursive: true, force: true });
  };
  return run;
}

/** Signs in through the form with `token`; ends on the apps list. */
export async function signIn(page, base, token) {
  await page.goto(`${base}/signin`);
  await page.getByLabel("API token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(/\/apps$/);
}
