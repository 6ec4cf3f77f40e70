// Prints the minified + gzipped size of the bundle: the package's budget is about 5 KB (5150 bytes).
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";

const file = process.argv[2] ?? "dist/keyturn.js";
const source = readFileSync(file);
const gzipped = gzipSync(source, { level: 9 }).length;
const budget = 5150;
console.log(`${file}: ${source.length} bytes minified, ${gzipped} bytes minified + gzipped (budget ${budget})`);
if (gzipped > budget) {
  console.error(`over budget by ${gzipped - budget} bytes`);
  process.exit(1);
}
