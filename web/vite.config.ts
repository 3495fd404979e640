// Two pages from one build: the dashboard (index.html, served at /) and GraphiQL (graphiql.html, served at /graphql).
import { fileURLToPath } from "node:url";

import { defineConfig } from "vite";

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));
const api = process.env.TIDINGS_API_URL || "http://127.0.0.1:8000";

export default defineConfig({
  base: "/",
  resolve: {
    // The dashboard uses @tidings/client from its source; its imports resolve from this package's node_modules.
    alias: { "@tidings/client": here("../clients/js/src/index.ts") },
    dedupe: ["graphql-ws", "graphql"],
  },
  optimizeDeps: {
    // `npm run dev` pre-bundles dependencies with esbuild, which cannot read Vite's `?worker` imports: GraphiQL's
    // worker setup is served as it is, and Vite builds the workers.
    exclude: ["graphiql/setup-workers/vite", "@graphiql/react/setup-workers/vite"],
  },
  worker: { format: "es" }, // GraphiQL's Monaco workers; the default (iife) cannot be code-split
  build: {
    outDir: "dist",
    emptyOutDir: true,
    chunkSizeWarningLimit: 4096, // GraphiQL's Monaco editor is large; it loads only on /graphql
    rollupOptions: {
      input: { index: here("index.html"), graphiql: here("graphiql.html") },
      onwarn(warning, warn) {
        if (warning.code !== "MODULE_LEVEL_DIRECTIVE") warn(warning); // React's "use client" means nothing here
      },
    },
  },
  server: {
    // `npm run dev`: the API of a `make serve` on the default port, or of TIDINGS_API_URL.
    proxy: { "/graphql": { target: api, ws: true }, "/dashboard": api },
  },
});
