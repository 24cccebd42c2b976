// Reference counter for bench/count.sh: OpenAI's tokenizer (npm tiktoken,
// the Rust core compiled to WASM, encode_ordinary) doing the same job as
// `oairl count`: stream a Batch API JSONL file, count each chat request
// with the OpenAI cookbook recipe ("How to count tokens with tiktoken":
// 3 per message + every string value, 1 per name, 3 reply priming; tools
// by num_tokens_for_tools), write "custom_id<TAB>prompt_tokens" per line.
//
//   node count.js INPUT.jsonl OUTPUT.tsv
"use strict";
const fs = require("fs");
const readline = require("readline");
const { get_encoding } = require("tiktoken");

const encs = {};
function encFor(model) {
  const name = /^(gpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|chatgpt-4o|o1|o3|o4)/.test(model) ? "o200k_base" : "cl100k_base";
  if (!encs[name]) encs[name] = get_encoding(name);
  return [encs[name], name];
}

function tools(enc, name, list) {
  if (!Array.isArray(list) || list.length === 0) return 0;
  const funcInit = name === "cl100k_base" ? 10 : 7;
  const n = (s) => enc.encode_ordinary(s).length;
  let t = 0;
  for (const tool of list) {
    const f = tool.function || tool;
    let desc = f.description || "";
    if (desc.endsWith(".")) desc = desc.slice(0, -1);
    t += funcInit + n((f.name || "") + ":" + desc);
    const props = (f.parameters && f.parameters.properties) || {};
    const keys = Object.keys(props);
    if (keys.length > 0) {
      t += 3;
      for (const k of keys) {
        t += 3;
        const p = props[k];
        let pd = p.description || "";
        if (Array.isArray(p.enum)) {
          t -= 3;
          for (const item of p.enum) t += 3 + n(String(item));
        }
        if (pd.endsWith(".")) pd = pd.slice(0, -1);
        t += n(`${k}:${p.type || ""}:${pd}`);
      }
    }
  }
  return t + 12;
}

async function main() {
  const [input, output] = process.argv.slice(2);
  const out = fs.createWriteStream(output);
  const rl = readline.createInterface({ input: fs.createReadStream(input), crlfDelay: Infinity });
  let buf = [];
  for await (const line of rl) {
    if (!line) continue;
    const l = JSON.parse(line);
    const body = l.body || {};
    const [enc, name] = encFor(body.model || "");
    let t = 0;
    for (const m of body.messages || []) {
      t += 3;
      for (const [k, v] of Object.entries(m)) {
        if (typeof v === "string") t += enc.encode_ordinary(v).length;
        if (k === "name") t += 1;
      }
    }
    t += 3;
    t += tools(enc, name, body.tools);
    buf.push(l.custom_id + "\t" + t);
    if (buf.length >= 1000) {
      if (!out.write(buf.join("\n") + "\n")) await new Promise((r) => out.once("drain", r));
      buf = [];
    }
  }
  if (buf.length) out.write(buf.join("\n") + "\n");
  out.end();
}

main().catch((e) => { console.error(e); process.exit(1); });
