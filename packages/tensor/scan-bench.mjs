import { firstNonFinite } from './dist/index.js';

const a = new Float32Array(64 * 1024 * 1024); // 256 MiB
for (let i = 0; i < a.length; i++) a[i] = (i % 1000) / 1000;
for (let rep = 0; rep < 4; rep++) {
  const t = performance.now();
  firstNonFinite(a);
  const ms = performance.now() - t;
  console.log(`scan 256 MiB: ${ms.toFixed(1)} ms = ${(0.25 / (ms / 1000)).toFixed(2)} GiB/s`);
}
