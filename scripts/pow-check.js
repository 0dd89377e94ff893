// Checks src/page/assets/pow.js, the waiting page's proof-of-work Web Worker, against Node's
// own SHA-256: `node scripts/pow-check.js` (Node 20; no npm packages). The worker script runs
// unmodified in a vm context whose `self` stands in for the worker global: setting
// self.usherPowTest = true before loading makes pow.js expose its functions on self.usherPow.
// Exits non-zero on any mismatch.
'use strict';
const fs = require('fs');
const path = require('path');
const vm = require('vm');
const crypto = require('crypto');

const source = fs.readFileSync(path.join(__dirname, '../src/page/assets/pow.js'), 'utf8');
const script = new vm.Script(source, { filename: 'pow.js' });
let failures = 0;

function fail(what) {
  failures += 1;
  console.error('FAIL ' + what);
}

// A fresh worker: pow.js takes one job per worker, as the page uses it.
function worker() {
  const w = { messages: [], times: [], closed: false };
  const global = {
    usherPowTest: true,
    postMessage(m) {
      if (w.closed) fail('postMessage after close: ' + JSON.stringify(m));
      w.messages.push(JSON.parse(JSON.stringify(m)));
      w.times.push(Date.now());
    },
    close() { w.closed = true; },
  };
  global.self = global;
  vm.createContext(global);
  script.runInContext(global);
  w.global = global;
  // Through the context, so that a search that never ends is stopped (and reported) too.
  w.post = (data) => {
    global.job = { data };
    try {
      vm.runInContext('self.onmessage(job)', global, { timeout: 60000 });
    } catch (err) {
      fail(`job ${JSON.stringify(data)}: ${err.message}`);
    }
  };
  return w;
}

function sha256(text) {
  return crypto.createHash('sha256').update(text, 'latin1').digest();
}

function zeroBits(digest) {
  let n = 0;
  for (const byte of digest) {
    if (byte !== 0) return n + Math.clz32(byte) - 24;
    n += 8;
  }
  return n;
}

function randomSeed() {
  return crypto.randomBytes(16).toString('hex');
}

// (1) The digest, by the path the search takes, against Node's.
const pow = worker().global.usherPow;
let matched = 0;
for (let i = 0; i < 10000; i++) {
  const seed = randomSeed();
  // Nonces of every length from 1 to 16 digits (all below 2^53).
  const nonce = Math.floor(Math.random() * 10 ** (1 + (i % 16)));
  const want = sha256(seed + ':' + nonce).toString('hex');
  const got = pow.digest(seed, nonce);
  if (got !== want) fail(`digest ${seed}:${nonce} = ${got}, node says ${want}`);
  else matched += 1;
}
// Every message length the one block allows (1..55 bytes), so every padding position.
for (let seedLen = 0; seedLen <= 53; seedLen++) {
  for (const nonce of [0, 7, 42, 999, 123456789]) {
    const seed = 'x'.repeat(seedLen);
    if (seedLen + 1 + String(nonce).length > 55) continue;
    const want = sha256(seed + ':' + nonce).toString('hex');
    if (pow.digest(seed, nonce) !== want) fail(`digest of a ${seedLen}-char seed, nonce ${nonce}`);
  }
}

// Jobs the worker must refuse with {error}, and close.
for (const job of [
  { seed: 'x'.repeat(54), bits: 1 },          // ':' and one digit make 56 bytes
  { seed: randomSeed(), bits: 0 },
  { seed: randomSeed(), bits: 33 },
  { seed: randomSeed(), bits: 1.5 },
  { seed: randomSeed(), bits: '18' },
  { seed: 'caf\u00e9', bits: 1 },
  { seed: 12345, bits: 1 },
  {},
]) {
  const w = worker();
  w.post(job);
  const m = w.messages;
  if (m.length !== 1 || typeof m[0].error !== 'string' || !w.closed) {
    fail(`job ${JSON.stringify(job)} gave ${JSON.stringify(m)}, closed ${w.closed}`);
  }
}
// The longest message that fits: 53-char seed, ':', one digit.
{
  const w = worker();
  w.post({ seed: 'x'.repeat(53), bits: 1 });
  const last = w.messages[w.messages.length - 1];
  if (!last || last.error !== undefined) fail('53-char seed: ' + JSON.stringify(w.messages));
}

// (2) Full solves through the message protocol, each answer checked by Node; `exhaustive`
// also checks that no smaller nonce would have done.
function solve(seed, bits, exhaustive) {
  const w = worker();
  const start = process.hrtime.bigint();
  const started = Date.now();
  w.post({ seed, bits });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  const m = w.messages;
  const last = m[m.length - 1];
  const where = `bits=${bits} seed=${seed}`;
  if (!last || typeof last.nonce !== 'number' || !w.closed) {
    fail(`${where}: ${JSON.stringify(m)}, closed ${w.closed}`);
    return { hashes: 0, ms, progress: [] };
  }
  if (last.hashes !== last.nonce + 1) fail(`${where}: hashes ${last.hashes} for nonce ${last.nonce}`);
  const progress = m.slice(0, -1).map((p) => p.progress);
  let before = 0;
  for (const p of progress) {
    if (!(Number.isInteger(p) && p > before && p < last.hashes)) fail(`${where}: progress ${progress}`);
    before = p;
  }
  // About every 100 ms: never sooner, and not much later (the slack is for a busy machine).
  const times = [started].concat(w.times.slice(0, -1));
  for (let i = 1; i < times.length; i++) {
    const gap = times[i] - times[i - 1];
    if (gap < 95 || gap > 1000) fail(`${where}: progress ${i} came ${gap} ms after the one before`);
  }
  const z = zeroBits(sha256(seed + ':' + last.nonce));
  if (z < bits) fail(`${where}: nonce ${last.nonce} has only ${z} zero bits`);
  if (exhaustive) {
    for (let n = 0; n < last.nonce; n++) {
      if (zeroBits(sha256(seed + ':' + n)) >= bits) {
        fail(`${where}: answered ${last.nonce} but ${n} already had ${bits} zero bits`);
        break;
      }
    }
  }
  return { hashes: last.hashes, ms, progress };
}

const stats = {};
for (const bits of [16, 18]) {
  stats[bits] = { hashes: 0, ms: 0 };
  for (let i = 0; i < 5; i++) {
    const r = solve(randomSeed(), bits, true);
    stats[bits].hashes += r.hashes;
    stats[bits].ms += r.ms;
  }
}
// One longer solve, to see the progress messages come about every 100 ms.
const long = solve(randomSeed(), 22, false);
const perProgress = long.progress.length ? long.ms / (long.progress.length + 1) : 0;

const mean18 = Math.round(stats[18].hashes / 5);
const rate = (stats[16].hashes + stats[18].hashes + long.hashes) /
  (stats[16].ms + stats[18].ms + long.ms) / 1000;
console.log(`pow.js: ${matched} hashes match node crypto; bits=18 mean ${mean18} hashes, ` +
  `${rate.toFixed(1)} M hashes/s; bits=22 took ${long.hashes} hashes in ${Math.round(long.ms)} ms ` +
  `with ${long.progress.length} progress messages` +
  (perProgress ? ` (one per ${Math.round(perProgress)} ms)` : ''));
if (failures) {
  console.error(`pow.js: ${failures} failures`);
  process.exit(1);
}
