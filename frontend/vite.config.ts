/// <reference types="vitest/config" />
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";
import tailwindcss from "@tailwindcss/vite";
import { fileURLToPath } from "node:url";

// build.rs sets RIVETR_DASHBOARD_OUT to a folder under cargo's OUT_DIR: built files never
// land in the source tree.
export default defineConfig({
  plugins: [react(), tailwindcss()],
  resolve: { alias: { "@": fileURLToPath(new URL("./src", import.meta.url)) } },
  build: {
    outDir: process.env.RIVETR_DASHBOARD_OUT || "dist",
    emptyOutDir: true,
    // The binary's CSP forbids inline scripts and styles: no asset is inlined as a data URL.
    assetsInlineLimit: 0,
    sourcemap: false,
    target: "es2022",
  },
  server: { proxy: { "/api": "http://127.0.0.1:8080" } },
  test: {
    environment: "happy-dom",
    include: ["src/**/*.test.{ts,tsx}"],
  },
});
