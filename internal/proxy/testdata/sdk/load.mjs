// Drives an OpenAI-compatible server with the official OpenAI Node SDK, as
// an unchanged app would: OPENAI_BASE_URL and OPENAI_API_KEY from the
// environment, the SDK's default retries (2) and timeout. Prints one JSON
// document on stdout:
//   {"ok","failed","errors":{status:count},"seen429","statuses":{status:count},
//    "elapsed_ms","latency_ms":{"p50","p99"},"stream":{"chunks","text"}}
// seen429 counts every 429 the SDK received (its retries included): what
// the app's HTTP layer saw, whatever the SDK then did with it.
//
// Environment: N (requests, default 10), CONCURRENCY (default 5), MODEL
// (default gpt-4o-mini), PROMPT_WORDS (default 20), MAX_TOKENS (default
// 10), STREAM=1 to also send one streamed request and assemble it,
// TIME_SCALE=K to run the app's clock K times faster (every setTimeout,
// so the SDK's retry sleeps and timeouts) for rehearsal against
// `oairl sim --time-scale K`, whose waits are in sim time.
import OpenAI from 'openai';

const scale = Number(process.env.TIME_SCALE || 1);
if (scale !== 1) {
  const orig = globalThis.setTimeout;
  globalThis.setTimeout = (fn, ms, ...args) => orig(fn, (ms ?? 0) / scale, ...args);
}

const n = Number(process.env.N || 10);
const conc = Number(process.env.CONCURRENCY || 5);
const model = process.env.MODEL || 'gpt-4o-mini';
const words = Number(process.env.PROMPT_WORDS || 20);
const maxTokens = Number(process.env.MAX_TOKENS || 10);

const statuses = {};
let seen429 = 0;
const countingFetch = async (url, init) => {
  const r = await fetch(url, init);
  statuses[r.status] = (statuses[r.status] || 0) + 1;
  if (r.status === 429) seen429++;
  return r;
};
const client = new OpenAI({ fetch: countingFetch });

const prompt = Array.from({ length: words }, (_, i) => ['alpha', 'beta', 'gamma', 'delta'][i % 4]).join(' ');
let ok = 0, failed = 0;
const errors = {};
const lat = [];
let next = 0;
const t0 = performance.now();
async function worker() {
  while (next < n) {
    next++;
    const s = performance.now();
    try {
      await client.chat.completions.create({ model, messages: [{ role: 'user', content: prompt }], max_tokens: maxTokens });
      ok++;
      lat.push(performance.now() - s);
    } catch (e) {
      failed++;
      const k = String(e.status ?? e.name);
      errors[k] = (errors[k] || 0) + 1;
    }
  }
}
await Promise.all(Array.from({ length: Math.min(conc, n) }, worker));
const elapsed = performance.now() - t0;
lat.sort((a, b) => a - b);
const q = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] : 0);

let stream = null;
if (process.env.STREAM === '1') {
  stream = { chunks: 0, text: '' };
  const s = await client.chat.completions.create({ model, messages: [{ role: 'user', content: prompt }], max_tokens: maxTokens, stream: true });
  for await (const ch of s) {
    stream.chunks++;
    stream.text += ch.choices[0]?.delta?.content ?? '';
  }
}
console.log(JSON.stringify({ ok, failed, errors, seen429, statuses, elapsed_ms: Math.round(elapsed),
  latency_ms: { p50: +q(0.5).toFixed(2), p99: +q(0.99).toFixed(2) }, stream }));
