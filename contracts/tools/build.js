#!/usr/bin/env node
// Compiles the contracts in src/ with the pinned solc-js and writes one artifact per contract to
// out/<Name>.json: { contractName, abi, bytecode: { object }, deployedBytecode: { object } }, the
// shape alloy's `sol!` and most tools read. With --check, compiles and compares instead of
// writing, exiting 1 (and naming each file) if the committed artifacts differ from the sources.
// With --write-input FILE, writes the standard-JSON input (for slither) and nothing else.
'use strict';

const fs = require('fs');
const path = require('path');
const solc = require('solc');

const root = path.resolve(__dirname, '..');
const SOLC_VERSION = '0.8.28';
// The contracts whose artifacts the connector and its tests use.
const CONTRACTS = ['TokenNetworkRegistry', 'TokenNetwork', 'M2MToken'];

function standardInput() {
  const sources = {};
  for (const file of fs.readdirSync(path.join(root, 'src')).sort()) {
    if (file.endsWith('.sol')) {
      sources[`src/${file}`] = { content: fs.readFileSync(path.join(root, 'src', file), 'utf8') };
    }
  }
  return {
    language: 'Solidity',
    sources,
    settings: {
      optimizer: { enabled: true, runs: 200 },
      evmVersion: 'cancun',
      outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } },
    },
  };
}

function compile() {
  const version = solc.version();
  if (!version.startsWith(`${SOLC_VERSION}+`)) {
    throw new Error(`solc ${version} is installed, but the artifacts are built with ${SOLC_VERSION}: run npm ci in contracts/`);
  }
  const output = JSON.parse(solc.compile(JSON.stringify(standardInput())));
  const errors = (output.errors || []).filter((e) => e.severity === 'error');
  for (const message of output.errors || []) {
    process.stderr.write(message.formattedMessage || message.message);
  }
  if (errors.length > 0) {
    throw new Error(`${errors.length} compile error(s)`);
  }
  const artifacts = {};
  for (const name of CONTRACTS) {
    const unit = output.contracts[`src/${name}.sol`];
    const contract = unit && unit[name];
    if (!contract) throw new Error(`no contract ${name} in src/${name}.sol`);
    const artifact = {
      contractName: name,
      compiler: `solc ${version}`,
      abi: contract.abi,
      bytecode: { object: `0x${contract.evm.bytecode.object}` },
      deployedBytecode: { object: `0x${contract.evm.deployedBytecode.object}` },
    };
    artifacts[`${name}.json`] = `${JSON.stringify(artifact, null, 2)}\n`;
  }
  return artifacts;
}

function main() {
  const inputAt = process.argv.indexOf('--write-input');
  if (inputAt >= 0) {
    // The standard-JSON input itself, for tools that compile on their own (slither).
    const input = standardInput();
    input.settings.outputSelection = {
      '*': { '*': ['abi', 'devdoc', 'userdoc', 'evm.bytecode', 'evm.deployedBytecode', 'evm.methodIdentifiers'], '': ['ast'] },
    };
    fs.writeFileSync(process.argv[inputAt + 1], JSON.stringify(input, null, 2));
    return;
  }
  const check = process.argv.includes('--check');
  const artifacts = compile();
  const outDir = path.join(root, 'out');
  fs.mkdirSync(outDir, { recursive: true });
  const stale = [];
  for (const [file, text] of Object.entries(artifacts)) {
    const target = path.join(outDir, file);
    const current = fs.existsSync(target) ? fs.readFileSync(target, 'utf8') : null;
    if (check) {
      if (current !== text) stale.push(`contracts/out/${file}`);
    } else if (current !== text) {
      fs.writeFileSync(target, text);
      console.log(`wrote contracts/out/${file}`);
    }
  }
  if (check) {
    if (stale.length > 0) {
      console.error(`stale artifacts (the sources compile to something else): ${stale.join(', ')}`);
      console.error('run `node contracts/tools/build.js` and commit contracts/out/');
      process.exit(1);
    }
    console.log(`contracts/out matches src/ compiled with solc ${SOLC_VERSION} (${Object.keys(artifacts).length} artifacts)`);
  }
}

try {
  main();
} catch (error) {
  console.error(`contracts: ${error.message}`);
  process.exit(2);
}
