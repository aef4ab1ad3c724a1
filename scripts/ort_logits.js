#!/usr/bin/env node
// ort_logits.js: run an ONNX model in onnxruntime (the onnxruntime-node package) on the
// inputs of a .npy file and write its output as a .npy, an independent forward pass to
// compare relutrim's with (cmd/relutrim's TestPrunedONNXRuntime).
//
//   node scripts/ort_logits.js MODEL.onnx INPUT.npy OUTPUT.npy
//   node scripts/ort_logits.js --version     (exit 0 when onnxruntime-node loads)
//
// INPUT.npy: '<f4' or '<f8', C order, of the model input's rank (N x C x H x W for a
// CNN); its fixed dimensions must match the model's. '<f8' values are rounded to float32
// (the model's input type). OUTPUT.npy: the model's one output, '<f4' (what onnxruntime
// computed, unconverted), C order, the output's shape.
//
// onnxruntime-node is looked for in $RELUTRIM_ORT_DIR/node_modules (a relative
// RELUTRIM_ORT_DIR is taken from the working directory), by default .cache/ort/node_modules
// in the repository (git-ignored). Install it with
//   npm install --prefix .cache/ort --ignore-scripts onnxruntime-node@1.30.0
// (its install script downloads extras and fails without network; the linux-x64
// libonnxruntime.so.1 is inside the package). scripts/test.sh does this when it can.
//
// Exit status: 0 done, 1 onnxruntime failed to load or run the model, 2 bad arguments or
// input file, 3 onnxruntime-node not installed.
'use strict';

const fs = require('fs');
const path = require('path');
const { createRequire } = require('module');

const ORT_VERSION = '1.30.0';

class UsageError extends Error {}

function ortDir() {
  return process.env.RELUTRIM_ORT_DIR || path.join(__dirname, '..', '.cache', 'ort');
}

// loadOrt requires onnxruntime-node from ortDir(); exits 3 with the install command if absent.
function loadOrt() {
  const dir = path.resolve(ortDir());
  const req = createRequire(path.join(dir, 'package.json'));
  try {
    const ort = req('onnxruntime-node');
    const pkg = req('onnxruntime-node/package.json');
    return { ort, version: pkg.version, dir };
  } catch (e) {
    process.stderr.write(`ort_logits.js: onnxruntime-node not found under ${dir}/node_modules (${e.message.split('\n')[0]}); ` +
      `install it with: npm install --prefix ${dir} --ignore-scripts onnxruntime-node@${ORT_VERSION}` +
      ` (or set RELUTRIM_ORT_DIR to where it is installed)\n`);
    process.exit(3);
  }
}

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY

// readNPY parses a .npy file: '<f4' or '<f8', C order. Returns { descr, shape, data }
// with data a Float32Array or Float64Array (copied: aligned, little-endian read).
function readNPY(file) {
  let buf;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new UsageError(`${file}: ${e.message}`);
  }
  const bad = (msg) => new UsageError(`${file}: not a supported .npy file: ${msg}`);
  if (buf.length < 10 || !buf.subarray(0, 6).equals(MAGIC)) {
    throw bad('no \\x93NUMPY magic');
  }
  const major = buf[6];
  let hlen, start;
  if (major === 1) {
    hlen = buf.readUInt16LE(8);
    start = 10;
  } else if (major === 2 || major === 3) {
    if (buf.length < 12) throw bad('truncated header');
    hlen = buf.readUInt32LE(8);
    start = 12;
  } else {
    throw bad(`format version ${major}.${buf[7]}`);
  }
  if (start + hlen > buf.length) throw bad('truncated header');
  const header = buf.subarray(start, start + hlen).toString(major === 3 ? 'utf8' : 'latin1');
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header);
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header);
  const shapeM = /'shape'\s*:\s*\(([^)]*)\)/.exec(header);
  if (!descr || !fortran || !shapeM) throw bad(`header ${JSON.stringify(header.trim())} lacks descr, fortran_order or shape`);
  let size;
  if (descr[1] === '<f4') size = 4;
  else if (descr[1] === '<f8') size = 8;
  else throw bad(`dtype '${descr[1]}' (want '<f4' or '<f8')`);
  if (fortran[1] !== 'False') throw bad('Fortran order (want C order)');
  const parts = shapeM[1].split(',').map((s) => s.trim()).filter((s) => s !== '');
  const shape = parts.map((s) => {
    if (!/^\d+$/.test(s)) throw bad(`shape (${shapeM[1]})`);
    return Number(s);
  });
  const count = shape.reduce((a, b) => a * b, 1);
  const off = start + hlen;
  if (buf.length - off !== count * size) {
    throw bad(`shape (${shape.join(', ')}) needs ${count * size} data bytes, the file has ${buf.length - off}`);
  }
  const data = size === 4 ? new Float32Array(count) : new Float64Array(count);
  for (let i = 0; i < count; i++) {
    data[i] = size === 4 ? buf.readFloatLE(off + 4 * i) : buf.readDoubleLE(off + 8 * i);
  }
  return { descr: descr[1], shape, data };
}

// writeNPY writes a Float32Array or Float64Array of the given shape as a version 1.0 .npy
// file, C order, the data starting at a multiple of 64 bytes.
function writeNPY(file, shape, data) {
  const f4 = data instanceof Float32Array;
  const sh = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  const dict = `{'descr': '${f4 ? '<f4' : '<f8'}', 'fortran_order': False, 'shape': ${sh}, }`;
  const total = Math.ceil((10 + dict.length + 1) / 64) * 64;
  const head = Buffer.alloc(total, 0x20);
  MAGIC.copy(head, 0);
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(total - 10, 8);
  head.write(dict, 10, 'latin1');
  head[total - 1] = 0x0a;
  const size = f4 ? 4 : 8;
  const body = Buffer.alloc(data.length * size);
  for (let i = 0; i < data.length; i++) {
    if (f4) body.writeFloatLE(data[i], 4 * i);
    else body.writeDoubleLE(data[i], 8 * i);
  }
  fs.writeFileSync(file, Buffer.concat([head, body]));
}

async function main(argv) {
  if (argv.length === 1 && argv[0] === '--version') {
    const { ort, version, dir } = loadOrt();
    process.stdout.write(`onnxruntime-node ${version} (${dir}); onnxruntime ${ort.env.versions ? ort.env.versions.common : '?'}\n`);
    return;
  }
  if (argv.length !== 3 || argv.some((a) => a.startsWith('-'))) {
    throw new UsageError('usage: node scripts/ort_logits.js MODEL.onnx INPUT.npy OUTPUT.npy (or --version)');
  }
  const [modelPath, inPath, outPath] = argv;
  if (!fs.existsSync(modelPath)) throw new UsageError(`${modelPath}: no such file`);
  const x = readNPY(inPath);
  const { ort } = loadOrt();
  let session;
  try {
    // One thread: the forward pass is small, and the machines running the tests are shared.
    session = await ort.InferenceSession.create(modelPath, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  } catch (e) {
    throw new Error(`${modelPath}: onnxruntime cannot load the model: ${e.message}`);
  }
  if (session.inputNames.length !== 1 || session.outputNames.length !== 1) {
    throw new UsageError(`${modelPath}: ${session.inputNames.length} inputs and ${session.outputNames.length} outputs, want one of each`);
  }
  const meta = session.inputMetadata[0];
  const name = session.inputNames[0];
  if (meta && meta.isTensor) {
    if (meta.type !== 'float32') throw new UsageError(`${modelPath}: input '${name}' is ${meta.type}, want float32`);
    const want = meta.shape;
    const fixed = want.every((d, i) => typeof d !== 'number' || d < 0 || d === x.shape[i]);
    if (want.length !== x.shape.length || !fixed) {
      throw new UsageError(`${inPath}: shape (${x.shape.join(', ')}) does not fit the model input '${name}' of shape [${want.join(', ')}]`);
    }
  }
  const data = x.data instanceof Float32Array ? x.data : Float32Array.from(x.data);
  const feeds = { [name]: new ort.Tensor('float32', data, x.shape) };
  let results;
  try {
    results = await session.run(feeds);
  } catch (e) {
    throw new Error(`${modelPath}: onnxruntime failed to run on ${inPath}: ${e.message}`);
  }
  const y = results[session.outputNames[0]];
  if (!(y.data instanceof Float32Array || y.data instanceof Float64Array)) {
    throw new Error(`${modelPath}: output '${session.outputNames[0]}' is ${y.type}, want float32 or float64`);
  }
  try {
    writeNPY(outPath, y.dims.map(Number), y.data);
  } catch (e) {
    throw new Error(`${outPath}: cannot write the output: ${e.message}`);
  }
}

main(process.argv.slice(2)).catch((e) => {
  process.stderr.write(`ort_logits.js: ${e.message}\n`);
  process.exit(e instanceof UsageError ? 2 : 1);
});
