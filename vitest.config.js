// Only our JS tests: the repo also holds .venv and node_modules, full of other projects' files.
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["js/test/**/*.test.js"],
    testTimeout: 30000,
  },
});
