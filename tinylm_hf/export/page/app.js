// The page's one script: loads the model of this folder (or an ensemble's members) with transformers.js and
// streams stories or chat. Written by `python -m tinylm_hf.export web`, which fills in RUNTIME (where transformers.js
// comes from) and PAGE.
import {
  AutoModelForCausalLM, AutoTokenizer, DynamicCache, InterruptableStoppingCriteria, Tensor, TextStreamer, env,
} from "{{RUNTIME}}";

// {bos: BOS token text, wasm: null (the runtime's CDN) or this folder's copies, members: null (one model, in this
// folder) or an ensemble's member folders, weights: their weights}
const PAGE = {{PAGE}};

env.allowLocalModels = true;   // the model files are this page's neighbours ...
env.allowRemoteModels = false; // ... and nothing is fetched from the Hub
if (PAGE.wasm) {
  env.backends.onnx.wasm.wasmPaths = {
    mjs: new URL(PAGE.wasm.mjs, location.href).href, wasm: new URL(PAGE.wasm.wasm, location.href).href,
  };
}

const $ = (id) => document.getElementById(id);
const status = (text) => { $("status").textContent = text; };
const stopper = new InterruptableStoppingCriteria();
let tokenizer, model, loadedWeights, history = [];

for (const id of ["temperature", "top_k", "top_p", "max_new_tokens"]) {  // each slider shows its value
  const show = () => { $(id).nextElementSibling.textContent = $(id).value; };
  $(id).addEventListener("input", show);
  show();
}

// WebGPU where the browser has a GPU adapter, else ONNX Runtime's wasm build (the one the tests run: headless
// Chromium has no adapter); a model WebGPU cannot take is loaded on wasm.
const gpu = "gpu" in navigator ? await navigator.gpu.requestAdapter().catch(() => null) : null;
let device = gpu ? "webgpu" : "wasm";

// "q4", "q8" or "fp32": onnx/model_q4.onnx, onnx/model_quantized.onnx or onnx/model.onnx. transformers.js keeps the
// files in the browser's Cache API: the next visit loads them from there.
async function loadModel(folder, weights) {
  try {
    return await AutoModelForCausalLM.from_pretrained(folder, { dtype: weights, device });
  } catch (error) {
    if (device === "wasm") throw error;
    console.warn(`WebGPU could not load the model (${error}): using wasm`);
    device = "wasm";
    return await AutoModelForCausalLM.from_pretrained(folder, { dtype: weights, device });
  }
}

async function load(weights) {
  if (loadedWeights === weights) return;
  status(`loading the model (${$("weights").selectedOptions[0].textContent} weights, ${device})…`);
  const started = performance.now();
  const folders = PAGE.members ?? ["."];
  tokenizer ??= await AutoTokenizer.from_pretrained(folders[0]);
  const models = [];
  for (const folder of folders) models.push(await loadModel(folder, weights));
  model = PAGE.members ? ensemble(models, PAGE.weights) : models[0];
  loadedWeights = weights;
  if (!tokenizer.chat_template) $("chat-mode").style.display = "none";
  status(`ready (loaded in ${((performance.now() - started) / 1000).toFixed(1)} s, ${device})`);
}

// An ensemble as one model for generate(): its forward runs every member on the same new tokens, each with its own
// cache, and returns the log of their weighted mean next-token probabilities (tinylm_hf/ensemble.py's forward).
// generate() itself (sampling, streaming, stopping) is transformers.js's own, driven through the first member.
function ensemble(models, weights) {
  const [lead, ...others] = models;
  const own = lead.forward.bind(lead);
  let caches = [];
  lead.forward = async (inputs) => {
    const { past_key_values, ...rest } = inputs;
    if (!past_key_values || past_key_values.get_seq_length() === 0) caches = others.map(() => null);  // a new text
    const outputs = [await own(inputs)];
    for (const [i, other] of others.entries()) {
      const out = await other.forward({ ...rest, past_key_values: caches[i] });
      const presents = {};  // this member's cache, as generate() keeps the lead's
      for (const name in out) {
        if (name.startsWith("present")) presents[name.replace("present", "past_key_values")] = out[name];
      }
      caches[i] = caches[i] ? (caches[i].update(presents), caches[i]) : new DynamicCache(presents);
      outputs.push(out);
    }
    return { ...outputs[0], logits: mix(outputs.map((out) => out.logits), weights) };
  };
  return lead;
}

// log sum_k w_k softmax(logits_k) at the last position: (batch, 1, vocabulary), computed in float64.
function mix(logits, weights) {
  const [batch, length, vocabulary] = logits[0].dims;
  const mixed = new Float32Array(batch * vocabulary);
  for (let b = 0; b < batch; b++) {
    const sum = new Float64Array(vocabulary);
    for (const [k, tensor] of logits.entries()) {
      const data = tensor.data, start = (b * length + length - 1) * vocabulary;
      let max = -Infinity, total = 0;
      for (let v = 0; v < vocabulary; v++) max = Math.max(max, data[start + v]);
      for (let v = 0; v < vocabulary; v++) total += Math.exp(data[start + v] - max);
      for (let v = 0; v < vocabulary; v++) sum[v] += weights[k] * Math.exp(data[start + v] - max) / total;
    }
    for (let v = 0; v < vocabulary; v++) mixed[b * vocabulary + v] = Math.log(sum[v]);
  }
  return new Tensor("float32", mixed, [batch, 1, vocabulary]);
}

function span(text, className) {
  const s = document.createElement("span");
  s.className = className;
  s.textContent = text;
  return s;
}

async function generate() {
  const mode = document.querySelector("input[name=mode]:checked").value;
  const text = $("prompt").value;
  await load($("weights").value);
  $("go").disabled = true;
  $("stop").disabled = false;
  const out = $("output");
  let inputs;
  if (mode === "chat") {
    history.push({ role: "user", content: text });
    out.append(span(`\n${text}\n`, "user"));
    inputs = tokenizer.apply_chat_template(history, { add_generation_prompt: true, return_dict: true });
    $("prompt").value = "";
  } else {
    history = [];
    out.replaceChildren(span(text, "prompt"));
    inputs = tokenizer(PAGE.bos + text, { add_special_tokens: false });
  }
  const answer = span("", "answer");
  out.append(answer);
  const streamer = new TextStreamer(tokenizer, {
    skip_prompt: true, skip_special_tokens: true, callback_function: (piece) => { answer.textContent += piece; },
  });
  const sample = $("sample").checked;
  stopper.reset();
  status("generating…");
  const started = performance.now();
  const ids = await model.generate({
    ...inputs, streamer, stopping_criteria: stopper, max_new_tokens: Number($("max_new_tokens").value),
    do_sample: sample, temperature: Number($("temperature").value), top_k: Number($("top_k").value),
    top_p: Number($("top_p").value),
  });
  const seconds = (performance.now() - started) / 1000;
  const fresh = ids.tolist()[0].slice(inputs.input_ids.dims[1]).map(Number);
  out.dataset.ids = JSON.stringify(fresh);  // the new token ids, for whoever checks this page
  if (mode === "chat") history.push({ role: "assistant", content: tokenizer.decode(fresh, { skip_special_tokens: true }) });
  status(`done: ${fresh.length} tokens in ${seconds.toFixed(2)} s (${(fresh.length / seconds).toFixed(0)} tokens/s)`);
  $("go").disabled = false;
  $("stop").disabled = true;
}

$("go").addEventListener("click", () => generate().catch((error) => {
  status(`error: ${error.message ?? error}`);
  $("go").disabled = false;
}));
$("stop").addEventListener("click", () => stopper.interrupt());
$("clear").addEventListener("click", () => { history = []; $("output").replaceChildren(); });
$("weights").addEventListener("change", () => load($("weights").value));

load($("weights").value).then(() => { $("go").disabled = false; })
  .catch((error) => status(`could not load the model: ${error.message ?? error}`));
