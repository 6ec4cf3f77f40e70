// Builds the two entry points into dist/, each to its own minified file (see bundles.mjs); then
// `npm run build` writes the type declarations.
import { buildBundles } from "./bundles.mjs";

await buildBundles("dist");
