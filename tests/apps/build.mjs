// Bundles host.mjs and the official bridge it imports into one browser ES module, dist/host.js.
import { build } from "esbuild";

await build({
  entryPoints: [new URL("host.mjs", import.meta.url).pathname],
  outfile: new URL("dist/host.js", import.meta.url).pathname,
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  logLevel: "warning",
});
