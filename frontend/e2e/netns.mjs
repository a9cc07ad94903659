// Chromium in a network namespace of its own, reaching the host's loopback ports through relays.
//
// Chromium drops its connections in progress with net::ERR_NETWORK_CHANGED whenever an address
// of the host changes, and container engines add and remove addresses (a network's bridge, a
// container's veth) all the time: with other tests creating containers beside it, the
// dashboard's end-to-end test failed a page load that way (stop 28). In a namespace of its own
// Chromium sees only its loopback. Each port it needs is relayed: a listener on that port of the
// namespace's 127.0.0.1 (this file, run by netns-chromium.sh inside the namespace) forwards to a
// Unix socket (the file system is shared), and a listener on that socket in the test's own
// process forwards to the port on the host. Pages keep their URLs, so origins are unchanged.
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** Copies bytes both ways between two sockets until either side ends or fails. */
function splice(a, b) {
  a.pipe(b);
  b.pipe(a);
  const end = () => {
    a.destroy();
    b.destroy();
  };
  a.on("error", end).on("close", end);
  b.on("error", end).on("close", end);
}

/** Starts the host side: for each port, `<dir>/<port>.sock` forwarding to 127.0.0.1:port.
 * Returns the directory (for RIVETR_E2E_RELAY_DIR) and a function that stops the relays. */
export async function hostRelays(ports) {
  const dir = mkdtempSync(join(tmpdir(), "rivetr-e2e-relay-"));
  const servers = await Promise.all(
    ports.map(
      (port) =>
        new Promise((resolve, reject) => {
          const server = createServer((inner) => splice(inner, connect(port, "127.0.0.1")));
          server.on("error", reject).listen(join(dir, `${port}.sock`), () => resolve(server));
        }),
    ),
  );
  return {
    dir,
    close() {
      for (const s of servers) s.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Inside the namespace: listens on 127.0.0.1 at every port that has a socket in `dir`, then
 * writes `<dir>/ready`. */
async function namespaceRelays(dir) {
  const ports = readdirSync(dir)
    .filter((f) => f.endsWith(".sock"))
    .map((f) => Number(f.slice(0, -".sock".length)));
  await Promise.all(
    ports.map(
      (port) =>
        new Promise((resolve, reject) => {
          const server = createServer((outer) => splice(outer, connect(join(dir, `${port}.sock`))));
          server.on("error", reject).listen(port, "127.0.0.1", resolve);
        }),
    ),
  );
  writeFileSync(join(dir, "ready"), "");
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  namespaceRelays(process.argv[2]).catch((e) => {
    console.error(`netns relay: ${e.message}`);
    process.exit(1);
  });
}
