/* usher proof of work: a dedicated Web Worker that finds the nonce the waiting page asks for.
   Protocol, one job per worker:
     page -> worker  {seed: '<32 lowercase hex chars>', bits: N}    N an integer, 1..32
     worker -> page  {progress: H}           about every 100 ms, H = hashes tried so far
                     {nonce: n, hashes: H}   the answer, H = n + 1; then the worker closes
                     {error: '...'}          a job it cannot do; then the worker closes
   The answer is the first of nonce = 0, 1, 2, ... for which SHA-256 of the ASCII string
   seed + ':' + nonce (decimal, no leading zeros) starts with N zero bits, the most significant
   bit of the first byte first. Expected work is 2^N hashes. Plain ES5, and SHA-256 is done
   here rather than with crypto.subtle, which plain http does not have. The message always fits
   one 64-byte block, so only that case is written. For scripts/pow-check.js: with
   self.usherPowTest === true set before loading, the functions are also put on self.usherPow. */
(function () {
  'use strict';
  var K = new Int32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2]);
  var IV = new Int32Array([
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  var MAX_BYTES = 55;             // more, and the padding and length spill into a second block
  var CHECK_EVERY = 4095;         // a mask: look at the clock once every 4096 hashes
  var W = new Int32Array(64);     // the block's 16 words, then the rest of the schedule

  // Character codes of an ASCII string, or null: anything wider would need UTF-8, and the
  // server hashes the string as ASCII.
  function ascii(text) {
    var codes = [], i;
    for (i = 0; i < text.length; i++) {
      if (text.charCodeAt(i) > 127) return null;
      codes.push(text.charCodeAt(i));
    }
    return codes;
  }

  // Writes prefix then digits, padded, as the block: big-endian words W[0..15]. Words before
  // `from` hold only prefix bytes and are left as they are, so a search rewrites just the
  // nonce's words (the schedule never writes below W[16]).
  function load(prefix, digits, from) {
    var len = prefix.length + digits.length, i;
    for (i = from; i < 16; i++) W[i] = 0;
    for (i = from * 4; i < len; i++) {
      W[i >> 2] |= (i < prefix.length ? prefix[i] : digits[i - prefix.length]) << (24 - 8 * (i & 3));
    }
    W[len >> 2] |= 0x80 << (24 - 8 * (len & 3));
    W[15] = len * 8;              // the length in bits; the high word, W[14], stays 0
  }

  // SHA-256 rounds from..to-1 on the loaded block, starting from state st, into out (without
  // the final addition of the chaining value). The rounds before the nonce's first word depend
  // on the seed alone, so a search runs them once and starts every hash from there.
  function rounds(st, from, to, out) {
    var a = st[0], b = st[1], c = st[2], d = st[3], e = st[4], f = st[5], g = st[6], h = st[7];
    var t, x, y, t1, t2;
    for (t = 16; t < to; t++) {
      x = W[t - 15];
      y = W[t - 2];
      W[t] = (((x >>> 7 | x << 25) ^ (x >>> 18 | x << 14) ^ (x >>> 3)) + W[t - 16] + W[t - 7] +
        ((y >>> 17 | y << 15) ^ (y >>> 19 | y << 13) ^ (y >>> 10))) | 0;
    }
    // Ch and Maj in their cheaper equivalent forms: g ^ (e & (f ^ g)), (a & b) | (c & (a | b)).
    for (t = from; t < to; t++) {
      t1 = (h + ((e >>> 6 | e << 26) ^ (e >>> 11 | e << 21) ^ (e >>> 25 | e << 7)) +
        (g ^ (e & (f ^ g))) + K[t] + W[t]) | 0;
      t2 = (((a >>> 2 | a << 30) ^ (a >>> 13 | a << 19) ^ (a >>> 22 | a << 10)) +
        ((a & b) | (c & (a | b)))) | 0;
      h = g; g = f; f = e; e = (d + t1) | 0;
      d = c; c = b; b = a; a = (t1 + t2) | 0;
    }
    out[0] = a; out[1] = b; out[2] = c; out[3] = d; out[4] = e; out[5] = f; out[6] = g; out[7] = h;
  }

  // Counts in decimal ASCII in place, so no number is turned into a string per hash.
  function increment(digits) {
    var i = digits.length - 1;
    while (i >= 0 && digits[i] === 57) digits[i--] = 48;
    if (i < 0) digits.unshift(49); else digits[i] += 1;
  }

  // Finds the nonce; calls progress(hashes) about every 100 ms; throws on a job it cannot do.
  function solve(seed, bits, progress) {
    var prefix = typeof seed === 'string' ? ascii(seed + ':') : null;
    if (!prefix) throw new Error('seed must be an ASCII string');
    if (bits !== (bits | 0) || bits < 1 || bits > 32) throw new Error('bits must be an integer 1..32');
    var fixed = prefix.length >> 2;   // the words made of seed bytes alone
    var room = MAX_BYTES - prefix.length;
    var mid = new Int32Array(8), st = new Int32Array(8);
    var digits = [48], nonce = 0, shift = 32 - bits, last = Date.now(), now;
    if (room < 1) throw new Error('seed:nonce is over 55 bytes');
    load(prefix, digits, 0);
    rounds(IV, 0, fixed, mid);
    for (;;) {
      if (digits.length > room) throw new Error('seed:nonce is over 55 bytes');
      load(prefix, digits, fixed);
      rounds(mid, fixed, 64, st);
      // Only the first digest word matters for up to 32 zero bits; >>> reads it unsigned.
      if (((st[0] + IV[0]) | 0) >>> shift === 0) return nonce;
      nonce += 1;
      increment(digits);
      if ((nonce & CHECK_EVERY) === 0) {
        now = Date.now();
        if (now - last >= 100) { last = now; progress(nonce); }
      }
    }
  }

  // The whole digest, as hex, by the same path a search takes: for the tests only.
  function digest(seed, nonce) {
    var prefix = ascii(seed + ':'), digits = ascii(String(nonce)), fixed = prefix.length >> 2;
    var mid = new Int32Array(8), st = new Int32Array(8), hex = '', i;
    if (prefix.length + digits.length > MAX_BYTES) throw new Error('seed:nonce is over 55 bytes');
    load(prefix, digits, 0);
    rounds(IV, 0, fixed, mid);
    load(prefix, digits, fixed);
    rounds(mid, fixed, 64, st);
    for (i = 0; i < 8; i++) hex += ('0000000' + ((st[i] + IV[i]) >>> 0).toString(16)).slice(-8);
    return hex;
  }

  self.onmessage = function (event) {
    var job = event.data || {}, nonce;
    self.onmessage = null;          // one job per worker: a second message is not a second job
    try {
      nonce = solve(job.seed, job.bits, function (hashes) { self.postMessage({ progress: hashes }); });
      self.postMessage({ nonce: nonce, hashes: nonce + 1 });
    } catch (err) {
      self.postMessage({ error: String(err && err.message || err) });
    }
    self.close();
  };

  if (self.usherPowTest === true) self.usherPow = { solve: solve, digest: digest };
})();
