// Precompresses the built dashboard for the Rivetr binary to embed: writes NAME.gz and
// NAME.br beside each file where compression pays, and manifest.tsv listing every file as
// "path <TAB> content type <TAB> digest <TAB> gzip? <TAB> brotli?". build.rs turns the
// manifest into the table that src/ui.rs serves from.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, relative, extname } from "node:path";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";

const out = process.env.RIVETR_DASHBOARD_OUT || "dist";

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".json": "application/json",
  ".webmanifest": "application/manifest+json",
  ".txt": "text/plain; charset=utf-8",
  ".woff2": "font/woff2",
};

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const full = join(dir, name);
    return statSync(full).isDirectory() ? walk(full) : [full];
  });
}

const rows = [];
for (const file of walk(out).sort()) {
  const ext = extname(file);
  if ([".gz", ".br", ".map"].includes(ext) || file.endsWith("manifest.tsv")) continue;
  const type = TYPES[ext];
  if (!type) throw new Error(`precompress: no content type known for ${file}`);
  const raw = readFileSync(file);
  const digest = createHash("sha256").update(raw).digest("base64url").slice(0, 22);
  // Compression pays for text over a few hundred bytes; images are compressed already.
  const compressible = /^(text\/|application\/(json|manifest)|image\/svg)/.test(type) && raw.length > 256;
  let gz = false;
  let br = false;
  if (compressible) {
    const g = gzipSync(raw, { level: 9 });
    if (g.length < raw.length * 0.9) {
      writeFileSync(file + ".gz", g);
      gz = true;
    }
    const b = brotliCompressSync(raw, {
      params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: raw.length },
    });
    if (b.length < raw.length * 0.9) {
      writeFileSync(file + ".br", b);
      br = true;
    }
  }
  const path = "/" + relative(out, file).split("\\").join("/");
  rows.push([path, type, digest, gz ? "1" : "0", br ? "1" : "0"].join("\t"));
}
writeFileSync(join(out, "manifest.tsv"), rows.join("\n") + "\n");
console.log(`precompressed ${rows.length} files in ${out}`);
