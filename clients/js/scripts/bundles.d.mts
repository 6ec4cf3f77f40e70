/** Builds `keyturn.js` and `dpop.js` into `outdir` (emptied first); see bundles.mjs. */
export function buildBundles(outdir: string, options?: { shareNames?: boolean }): Promise<void>;
