// Builds the two entry points, each to its own minified file: `dist/keyturn.js` (the package) and
// `dist/dpop.js` (`@keyturn/client/dpop`), which imports the first at run time (`./keyturn.js`) rather
// than carry a copy of it. Then the type declarations. Internal members (`_name`) are minified to short
// names; the second build takes the first one's names (its mangle cache), so that `dpop.js` reaches the
// base bundle's internal members (the session's `_dpop`) by the names they have there.
import { rmSync } from "node:fs";
import { build } from "esbuild";

const common = { bundle: true, format: "esm", minify: true, target: "es2022", mangleProps: /^_/ };

rmSync("dist", { recursive: true, force: true });
const base = await build({ ...common, entryPoints: ["src/index.ts"], outfile: "dist/keyturn.js", mangleCache: {} });
await build({
  ...common,
  mangleCache: base.mangleCache,
  entryPoints: ["src/dpop.ts"],
  outfile: "dist/dpop.js",
  plugins: [
    {
      name: "base-package",
      setup(b) {
        // dpop.ts's `./index.js` is the base bundle beside it, never bundled in.
        b.onResolve({ filter: /^\.\/index\.js$/ }, () => ({ path: "./keyturn.js", external: true }));
      },
    },
  ],
});
