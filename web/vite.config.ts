// The web app is served by every broker node from assets embedded in its binary (built into
// dist/ here, embedded by broker/build.rs). No inline script or style: the broker's
// Content-Security-Policy forbids them.
import { defineConfig } from "vite";

export default defineConfig({
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    target: "es2022",
    sourcemap: false,
    // libsodium (its WebAssembly inlined) is most of the page and loads in one piece by design.
    chunkSizeWarningLimit: 600,
  },
});
