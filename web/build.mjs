// Builds the web app into frontends/assets/web (committed; girok compiles it into its binary):
// one bundle of scripts and one of styles, each named by a hash of its content (cached for
// good), their gzip twins, and index.html naming them (revalidated on each load). The output
// depends on the sources and the locked packages only, so `node build.mjs --check DIR` can
// rebuild elsewhere and the test suite compare.
//
//   node build.mjs              build into ../frontends/assets/web and report the sizes
//   node build.mjs --out DIR    build into DIR

import * as esbuild from 'esbuild';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync, constants } from 'node:zlib';

const here = path.dirname(fileURLToPath(import.meta.url));
const outFlag = process.argv.indexOf('--out');
const out = outFlag > 0 ? path.resolve(process.argv[outFlag + 1]) : path.join(here, '../frontends/assets/web');

const result = await esbuild.build({
  entryPoints: [path.join(here, 'src/main.tsx')],
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['es2022'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  legalComments: 'none',
  write: false,
  outdir: 'out',
  logLevel: 'warning',
});

const hashed = (name, ext, bytes) =>
  `${name}-${createHash('sha256').update(bytes).digest('hex').slice(0, 12)}.${ext}`;
const files = {};
for (const file of result.outputFiles) {
  const ext = path.extname(file.path).slice(1);
  files[ext] = { name: hashed('app', ext, file.contents), bytes: Buffer.from(file.contents) };
}
if (!files.js || !files.css) throw new Error('the bundle has no script or no styles');

const html = readFileSync(path.join(here, 'src/index.html'), 'utf8')
  .replace('%SCRIPT%', `/assets/${files.js.name}`)
  .replace('%STYLES%', `/assets/${files.css.name}`);

rmSync(out, { recursive: true, force: true });
mkdirSync(path.join(out, 'assets'), { recursive: true });
writeFileSync(path.join(out, 'index.html'), html);
let firstLoad = Buffer.byteLength(html);
let firstLoadGzip = gzipSync(html).length;
for (const { name, bytes } of Object.values(files)) {
  const gzip = gzipSync(bytes, { level: constants.Z_BEST_COMPRESSION });
  writeFileSync(path.join(out, 'assets', name), bytes);
  writeFileSync(path.join(out, 'assets', `${name}.gz`), gzip);
  firstLoad += bytes.length;
  firstLoadGzip += gzip.length;
  console.log(`${name}: ${bytes.length} bytes, ${gzip.length} gzipped`);
}
console.log(`first load: ${firstLoad} bytes, ${firstLoadGzip} gzipped (goal: under 100 KB gzipped)`);
