import { defineConfig } from 'vite';
import { fileURLToPath } from 'node:url';

// The workbench is a static bundle the API server serves at "/": index.html plus hashed files
// under /assets/. JSX is compiled by Vite's own oxc transform for Preact, so the build needs no
// Babel and no plugin (fast, offline).
const root = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root,
  base: '/',
  publicDir: false,
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsDir: 'assets',
    target: 'es2022',
    // Nothing is inlined as data: URIs; everything is a same-origin file (strict CSP).
    assetsInlineLimit: 0,
    // Every file is same-origin and the app is one chunk: no preload helper needed.
    modulePreload: { polyfill: false },
    sourcemap: false,
    reportCompressedSize: true,
  },
  server: {
    // `npx vite ui` during development: the API runs separately (npx visq start, port 8080).
    proxy: { '/v1': { target: 'http://localhost:8080', changeOrigin: false } },
  },
});
