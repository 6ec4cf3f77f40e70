/** The one Node.js API the tests use (the scenario table is read from disk), without `@types/node`. */
declare module "node:fs" {
  export function readFileSync(path: URL | string, encoding: "utf8"): string;
}
