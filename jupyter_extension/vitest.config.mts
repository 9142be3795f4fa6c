// Vitest runs the front-end data-layer tests that live in <repo>/tests/ts.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const here = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  test: {
    dir: fileURLToPath(new URL('../tests/ts', import.meta.url)),
    include: ['**/*.test.ts'],
    environment: 'node',
    testTimeout: 10000
  },
  resolve: {
    // The tests sit outside this package: resolve 'vitest' from its node_modules.
    alias: { vitest: `${here}node_modules/vitest/dist/index.js` }
  },
  server: { fs: { allow: ['..'] } }
});
