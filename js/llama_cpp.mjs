// llama.cpp (through node-llama-cpp's prebuilt binaries) on a GGUF file, for the tests and benchmarks/runtimes.py.
//   node js/llama_cpp.mjs REQUEST.json   ->  prints one JSON line
// REQUEST: {"model": "x.gguf", "tokenize": ["text", ...], "prompt": [ids], "new_tokens": N, "repeats": R,
//           "threads": T (default: every core), "past_eos": false (true: go on after an end-of-generation token),
//           "windows": [[ids], ...], "logits_file": "x.f32"}
// With windows, the raw logits llama.cpp computes after each id but the last of each window (forced decoding, each
// window from an empty cache) go to logits_file as float32, (positions, vocabulary), windows one after the other.
// Answers the token ids of each text (special tokens parsed, no BOS added), and the greedy continuation of the
// prompt ids with the best time to the first new token and the rate of the rest (f32 KV cache, one sequence).
import { readFileSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { getLlama, LlamaLogLevel } from "node-llama-cpp";

const request = JSON.parse(readFileSync(process.argv[2], "utf8"));
// threads: a tiny model on a busy 2-core machine ran 15x faster on 1 thread than on 2 (benchmarks/runtimes.py tries both)
const threads = request.threads ?? availableParallelism();
const llama = await getLlama({
  gpu: false, maxThreads: threads, build: "never", usePrebuiltBinaries: true, logLevel: LlamaLogLevel.error,
});
const model = await llama.loadModel({ modelPath: request.model });
const answer = { tokenize: (request.tokenize ?? []).map((text) => Array.from(model.tokenize(text, true))) };
if (request.windows) {
  const context = await model.createContext({
    contextSize: model.trainContextSize, batchSize: model.trainContextSize, threads,
    experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32",
  });
  const sequence = context.getSequence();
  const rows = [];
  for (const window of request.windows) {
    await sequence.clearHistory();
    const output = await sequence.controlledEvaluate(
      window.map((token, i) => (i < window.length - 1 ? [token, { generateNext: { logits: true } }] : token)));
    for (let i = 0; i < window.length - 1; i++) {
      const row = new Float32Array(model.tokens.vocabularySize ?? output[i].next.logits.size);
      for (const [token, logit] of output[i].next.logits) row[token] = logit;
      rows.push(row);
    }
  }
  const all = new Float32Array(rows.reduce((n, r) => n + r.length, 0));
  rows.reduce((at, r) => (all.set(r, at), at + r.length), 0);
  writeFileSync(request.logits_file, Buffer.from(all.buffer));
  answer.positions = rows.length;
  answer.vocabulary = rows[0].length;
}
if (request.prompt) {
  const context = await model.createContext({
    contextSize: model.trainContextSize, batchSize: request.prompt.length, threads,
    experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32",  // the default f16 moves logits ~1e-2
  });
  let best = { first: Infinity, rest: Infinity };
  for (let r = 0; r < (request.repeats ?? 1); r++) {
    const sequence = context.getSequence();
    const tokens = [];
    const start = performance.now();
    let first = 0;
    const greedy = { temperature: 0, yieldEogToken: !!request.past_eos };
    for await (const token of sequence.evaluate(request.prompt, greedy)) {
      if (tokens.length === 0) first = performance.now();
      tokens.push(token);
      if (tokens.length >= request.new_tokens) break;
    }
    const end = performance.now();
    if (tokens.length === 0) throw new Error("llama.cpp generated no token");
    best = { first: Math.min(best.first, (first - start) / 1000), rest: Math.min(best.rest, (end - first) / 1000) };
    answer.tokens = tokens;
    sequence.dispose();
  }
  answer.first_token_s = best.first;
  answer.rest_s = best.rest;
}
console.log(JSON.stringify(answer));
await model.dispose();
await llama.dispose();
