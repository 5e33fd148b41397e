#!/usr/bin/env node
// A `solc` executable for forge and slither, backed by the pinned solc-js: forge and slither
// would download a native solc, which this machine cannot. It answers the two forms they use:
//   solc --version              the native binary's banner (forge parses "Version: X.Y.Z+commit...")
//   solc [...] --standard-json  standard JSON from stdin to stdout
// Imports the input does not inline are read from disk, under --base-path/--include-path or the
// current directory.
'use strict';

const fs = require('fs');
const path = require('path');
const solc = require(path.join(__dirname, '..', 'node_modules', 'solc'));

const args = process.argv.slice(2);

if (args.includes('--version')) {
  const version = solc.version().replace(/\.Emscripten\.clang$/, '.Linux.g++');
  process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${version}\n`);
  process.exit(0);
}

if (!args.includes('--standard-json')) {
  process.stderr.write('solc-shim: only --version and --standard-json are supported\n');
  process.exit(2);
}

const roots = [process.cwd()];
for (let i = 0; i < args.length; i += 1) {
  if ((args[i] === '--base-path' || args[i] === '--include-path') && args[i + 1]) {
    roots.push(path.resolve(args[i + 1]));
  }
}

function findImport(name) {
  for (const base of roots) {
    const candidate = path.resolve(base, name);
    if (fs.existsSync(candidate)) return { contents: fs.readFileSync(candidate, 'utf8') };
  }
  return { error: `File not found: ${name}` };
}

const chunks = [];
process.stdin.on('data', (chunk) => chunks.push(chunk));
process.stdin.on('end', () => {
  const input = Buffer.concat(chunks).toString('utf8');
  process.stdout.write(solc.compile(input, { import: findImport }));
});
