// Builds the web app into frontends/assets/web (committed; girok compiles it into its binary):
// one bundle of scripts and one of styles, each named by a hash of its content (cached for
// good), their gzip twins, and index.html naming them (revalidated on each load). The output
// depends on the sources and the locked packages only, so the test suite can rebuild it and
// compare (the gzip twins by their content: another zlib may compress the same bytes otherwise).
//
//   node build.mjs              build into ../frontends/assets/web and report the sizes
//   node build.mjs --out DIR    build into DIR
//   node build.mjs --check      build in memory; exit 1 if ../frontends/assets/web differs

import * as esbuild from 'esbuild';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { constants, gunzipSync, gzipSync } from 'node:zlib';

const here = path.dirname(fileURLToPath(import.meta.url));
const committed = path.join(here, '../frontends/assets/web');
const outFlag = process.argv.indexOf('--out');
const out = outFlag > 0 ? path.resolve(process.argv[outFlag + 1]) : committed;
const checking = process.argv.includes('--check');

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

/** The build: relative path → bytes. */
const built = new Map([['index.html', Buffer.from(html)]]);
let firstLoad = Buffer.byteLength(html);
let firstLoadGzip = gzipSync(html).length;
for (const { name, bytes } of Object.values(files)) {
  const gzip = gzipSync(bytes, { level: constants.Z_BEST_COMPRESSION });
  built.set(`assets/${name}`, bytes);
  built.set(`assets/${name}.gz`, gzip);
  firstLoad += bytes.length;
  firstLoadGzip += gzip.length;
  console.log(`${name}: ${bytes.length} bytes, ${gzip.length} gzipped`);
}
console.log(`first load: ${firstLoad} bytes, ${firstLoadGzip} gzipped (goal: under 100 KB gzipped)`);

if (checking) {
  // Plain names (readdirSync's file types under `recursive` are broken in some Node 18s).
  const present = existsSync(committed)
    ? readdirSync(committed, { recursive: true })
        .map(String)
        .filter((name) => statSync(path.join(committed, name)).isFile())
        .map((name) => name.split(path.sep).join('/'))
    : [];
  const differences = [];
  for (const name of new Set([...present, ...built.keys()])) {
    const want = built.get(name);
    if (!want) {
      differences.push(`${name}: committed, but the sources do not make it`);
      continue;
    }
    if (!present.includes(name)) {
      differences.push(`${name}: made by the sources, not committed`);
      continue;
    }
    const have = readFileSync(path.join(committed, name));
    const same = name.endsWith('.gz') ? gunzipSync(have).equals(gunzipSync(want)) : have.equals(want);
    if (!same) differences.push(`${name}: differs`);
  }
  if (differences.length) {
    console.error(`frontends/assets/web is not what web/ builds:\n  ${differences.join('\n  ')}`);
    console.error('run scripts/web.sh build and commit the result');
    process.exit(1);
  }
  console.log('the committed web app is the one web/ builds');
} else {
  rmSync(out, { recursive: true, force: true });
  mkdirSync(path.join(out, 'assets'), { recursive: true });
  for (const [name, bytes] of built) writeFileSync(path.join(out, name), bytes);
}
