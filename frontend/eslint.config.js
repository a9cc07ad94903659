// The dashboard's lint: ESLint's and typescript-eslint's recommended rules, and the rules of
// React hooks. `npm run lint` runs it; the test command fails on any finding.
import js from "@eslint/js";
import globals from "globals";
import reactHooks from "eslint-plugin-react-hooks";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist", "node_modules", "src/lib/api-types.ts"] },
  {
    files: ["**/*.{ts,tsx}"],
    extends: [js.configs.recommended, ...tseslint.configs.recommended],
    languageOptions: { ecmaVersion: 2022, globals: globals.browser },
    plugins: { "react-hooks": reactHooks },
    rules: reactHooks.configs.recommended.rules,
  },
  {
    files: ["e2e/**/*.mjs", "scripts/**/*.mjs", "*.config.{js,ts}"],
    extends: [js.configs.recommended],
    // The end-to-end scripts run in Node but hand functions to the page (page.evaluate).
    languageOptions: { ecmaVersion: 2022, sourceType: "module", globals: { ...globals.node, ...globals.browser } },
  },
);
