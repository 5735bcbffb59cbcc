// Build the terminal bundle into dist/ (not committed): `npm ci --ignore-scripts && npm run build`,
// or `make web` from the repository root.
//   dist/index.html, page.js, page.css   the page the runner serves at /ui/terminal
//   dist/terminal.js, terminal.css       the component, an ES module, for platforms to embed
import { copyFile, mkdir, rm } from "node:fs/promises";
import { build } from "esbuild";

const outdir = "dist";
const common = {
  bundle: true,
  minify: true,
  sourcemap: true,
  target: ["chrome110", "firefox110", "safari16"],
  legalComments: "linked",
  logLevel: "warning",
};

await rm(outdir, { recursive: true, force: true });
await mkdir(outdir, { recursive: true });
await Promise.all([
  build({ ...common, entryPoints: { page: "src/page.ts" }, format: "iife", outdir }),
  build({ ...common, entryPoints: { terminal: "src/terminal.ts" }, format: "esm", outdir }),
  build({ ...common, entryPoints: { page: "src/page.css", terminal: "src/terminal.css" }, outdir }),
]);
// last: the runner treats index.html as the mark of a complete bundle
await copyFile("index.html", `${outdir}/index.html`);
console.log(`built ${outdir}/`);
