// Chromium as the end-to-end scripts start it (lib.mjs) loads a page from the host's loopback
// `rounds` times (argument 1, default 200) while the host's addresses change (the caller,
// tests/regression.rs, changes them), and its processes must be in a network namespace other
// than this script's. Every response closes its connection, so each load connects anew: a
// connection in progress is what Chromium drops with net::ERR_NETWORK_CHANGED when it sees an
// address change. Exits 1 on any failed load or a process in the host's namespace.
import { readFileSync, readdirSync, readlinkSync } from "node:fs";
import { createServer } from "node:http";
import { openBrowser } from "./lib.mjs";

const server = createServer((req, res) => {
  res.setHeader("connection", "close");
  res.setHeader("content-type", req.url === "/s.css" ? "text/css" : "text/html");
  res.end(
    req.url === "/s.css"
      ? "main{color:#000}"
      : '<!doctype html><html lang="en"><head><title>t</title><link rel="stylesheet" href="/s.css"></head><body><main>ok</main></body></html>',
  );
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const base = `http://127.0.0.1:${server.address().port}`;
process.env.RIVETR_URL = base;

/** Network namespaces of the processes whose command line names `profile`. */
function namespacesOf(profile) {
  const found = [];
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      if (!readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(profile)) continue;
      found.push({ pid, net: readlinkSync(`/proc/${pid}/ns/net`) });
    } catch {
      // The process ended while it was read.
    }
  }
  return found;
}

const rounds = Number(process.argv[2] || 200);
const run = await openBrowser(process.env.RIVETR_E2E_SHOTS || "/tmp/rivetr-network-changes");
const failures = [];
const started = Date.now();
for (let i = 0; i < rounds; i++) {
  try {
    await run.page.goto(`${base}/?${i}`);
  } catch (e) {
    failures.push(String(e.message).split("\n")[0]);
    // A failed navigation can leave the next one "interrupted"; start from a blank page.
    await run.page.goto("about:blank").catch(() => {});
  }
}
const ours = readlinkSync("/proc/self/ns/net");
const processes = namespacesOf(run.profile);
const shared = processes.filter((p) => p.net === ours);
console.log(`${rounds} loads in ${Date.now() - started} ms, ${failures.length} failed; ` +
  `${processes.length} Chromium processes, ${shared.length} in the host's network namespace (${ours})`);
for (const f of failures) console.log(`  ${f}`);
await run.close();
server.close();
if (failures.length || shared.length || !processes.length) process.exitCode = 1;
