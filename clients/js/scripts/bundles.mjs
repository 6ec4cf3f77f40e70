// The two bundles, built into `outdir`: `keyturn.js` (the package) and `dpop.js` (`@keyturn/client/dpop`),
// which imports the first at run time (`./keyturn.js`) rather than carry a copy of it. Internal members
// (`_name`) are minified to short names; the second build takes the first one's names (its mangle cache),
// so that `dpop.js` reaches the base bundle's internal members (the session's `_dpop`) by the names they
// have there. `shareNames: false` builds the second without them: only test/bundle.test.ts does, to show
// that its check of the built bundles notices the difference.
import { rmSync } from "node:fs";
import { join } from "node:path";
import { build } from "esbuild";

const common = { bundle: true, format: "esm", minify: true, target: "es2022", mangleProps: /^_/ };

/** Builds both bundles into `outdir` (emptied first). */
export async function buildBundles(outdir, { shareNames = true } = {}) {
  rmSync(outdir, { recursive: true, force: true });
  const base = await build({ ...common, entryPoints: ["src/index.ts"], outfile: join(outdir, "keyturn.js"), mangleCache: {} });
  await build({
    ...common,
    mangleCache: shareNames ? base.mangleCache : {},
    entryPoints: ["src/dpop.ts"],
    outfile: join(outdir, "dpop.js"),
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
}
