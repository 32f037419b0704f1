// The page's one script: loads the model of this folder with transformers.js and streams stories or chat.
// Written by `python -m tinylm_hf.export web`, which fills in RUNTIME (where transformers.js comes from) and PAGE.
import {
  AutoModelForCausalLM, AutoTokenizer, InterruptableStoppingCriteria, TextStreamer, env,
} from "{{RUNTIME}}";

const PAGE = {{PAGE}};  // {bos: BOS token text, wasm: null (the runtime's CDN) or this folder's copies}

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
async function load(weights) {
  if (loadedWeights === weights) return;
  status(`loading the model (${$("weights").selectedOptions[0].textContent} weights, ${device})…`);
  const started = performance.now();
  tokenizer ??= await AutoTokenizer.from_pretrained(".");
  try {
    model = await AutoModelForCausalLM.from_pretrained(".", { dtype: weights, device });
  } catch (error) {
    if (device === "wasm") throw error;
    console.warn(`WebGPU could not load the model (${error}): using wasm`);
    device = "wasm";
    model = await AutoModelForCausalLM.from_pretrained(".", { dtype: weights, device });
  }
  loadedWeights = weights;
  if (!tokenizer.chat_template) $("chat-mode").style.display = "none";
  status(`ready (loaded in ${((performance.now() - started) / 1000).toFixed(1)} s, ${device})`);
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
