/// <reference types="vitest/config" />
import { defineConfig } from "vite";

// The build is committed (dist/) and embedded in the connector's binary; scripts/explorer.sh
// check rebuilds it and compares. In development, `npm run dev` proxies the API to a node on
// 127.0.0.1:5173 (EXPLORER_URL to change it).
const target = process.env.EXPLORER_URL ?? "http://127.0.0.1:5173";

export default defineConfig({
  base: "/",
  build: { outDir: "dist", emptyOutDir: true, sourcemap: false, chunkSizeWarningLimit: 1024 },
  server: { port: 5174, proxy: { "/api": target, "/ws": { target, ws: true } } },
  test: { environment: "node", include: ["src/**/*.test.ts"] },
});
