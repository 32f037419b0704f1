"""A web page that runs the model in the browser: the ONNX folder plus `index.html` and `app.js` on transformers.js.

    tinylm export web MODEL_DIR OUT_DIR [--offline [--npm DIR]]
    tinylm export web ENSEMBLE_DIR OUT_DIR     # an ensemble: each member's ONNX folder (member-1/, ...) and a page
                                               # that averages their probabilities, as tinylm_hf.ensemble does

Serve OUT_DIR from any static host (`python -m http.server -d OUT_DIR`, GitHub Pages, a Hugging Face static Space)
and open it: stories and chat stream with temperature / top-k / top-p, 4-bit, 8-bit or fp32 weights (each with
its download size), on WebGPU where the browser has it, else wasm, all client-side.
The page loads transformers.js (pinned: TRANSFORMERS_JS) from its usual public CDN, and transformers.js fetches
ONNX Runtime Web's wasm from there too. `--offline` copies both into OUT_DIR/runtime/ instead, so the page fetches
nothing from elsewhere; they come from an npm install of @huggingface/transformers: `--npm DIR` (a folder holding
node_modules/) or one this command runs into ~/.cache/tinylm-hf (npm from Node.js; `--ignore-scripts`, since
onnxruntime-node's install script downloads from outside the registry).
"""

import json
import os
import shutil
import subprocess

from transformers import GenerationConfig

from ..ensemble import is_ensemble, read_config, resolve_members
from ..errors import UserError
from ..files import shipped, written_whole
from ..presets import format_count
from .onnx import onnx_folder

TRANSFORMERS_JS = "4.3.1"  # js/package.json pins the same version for the tests
CDN = f"https://cdn.jsdelivr.net/npm/@huggingface/transformers@{TRANSFORMERS_JS}/dist/transformers.min.js"
WASM = {"mjs": "ort-wasm-simd-threaded.asyncify.mjs", "wasm": "ort-wasm-simd-threaded.asyncify.wasm"}  # its default
PAGE = os.path.join(os.path.dirname(__file__), "page")


def npm_install() -> str:
    """A folder with node_modules/@huggingface/transformers@TRANSFORMERS_JS, installed once into the user's cache."""
    folder = os.path.join(os.path.expanduser("~"), ".cache", "tinylm-hf", f"transformers.js-{TRANSFORMERS_JS}")
    if not os.path.exists(os.path.join(folder, "node_modules", "@huggingface", "transformers", "package.json")):
        if shutil.which("npm") is None:
            raise UserError("--offline copies transformers.js from an npm install: install Node.js (npm), or pass "
                            "--npm DIR with node_modules/@huggingface/transformers in it")
        os.makedirs(folder, exist_ok=True)
        print(f"installing transformers.js {TRANSFORMERS_JS} with npm into {folder}")
        subprocess.run(["npm", "install", "--prefix", folder, "--ignore-scripts", "--omit=optional", "--no-audit",
                        "--no-fund", f"@huggingface/transformers@{TRANSFORMERS_JS}"], check=True)
    return folder


def runtime_files(npm_dir: str) -> dict[str, str]:
    """{name in runtime/: file} of transformers.js's self-contained bundle and the ONNX Runtime Web wasm it uses."""
    package = os.path.join(npm_dir, "node_modules", "@huggingface", "transformers")
    if not os.path.exists(os.path.join(package, "package.json")):
        raise UserError(f"--npm {npm_dir}: no node_modules/@huggingface/transformers there "
                        f"(npm install --ignore-scripts @huggingface/transformers@{TRANSFORMERS_JS})")
    with open(os.path.join(package, "package.json")) as f:
        wanted = json.load(f)["dependencies"]["onnxruntime-web"]
    for ort in (os.path.join(package, "node_modules", "onnxruntime-web"),
                os.path.join(npm_dir, "node_modules", "onnxruntime-web")):
        if os.path.exists(os.path.join(ort, "package.json")):
            with open(os.path.join(ort, "package.json")) as f:
                if json.load(f)["version"] == wanted:
                    break
    else:
        raise UserError(f"--npm {npm_dir}: onnxruntime-web {wanted} (transformers.js's) is not installed there")
    return {"transformers.min.js": os.path.join(package, "dist", "transformers.min.js"),
            **{name: os.path.join(ort, "dist", name) for name in WASM.values()}}


def weight_options(onnx_dirs: list[str]) -> str:
    """The page's weights choices, smallest download first, each with its size (all the models' together); 8-bit
    selected."""
    options = []
    for dtype, file, label in (("q4", "model_q4.onnx", "4-bit"), ("q8", "model_quantized.onnx", "8-bit"),
                               ("fp32", "model.onnx", "fp32")):
        if all(os.path.exists(os.path.join(onnx_dir, file)) for onnx_dir in onnx_dirs):
            size = sum(os.path.getsize(os.path.join(onnx_dir, file)) for onnx_dir in onnx_dirs) / 1e6
            selected = " selected" if dtype == "q8" else ""
            options.append(f'<option value="{dtype}"{selected}>{label}, {size:.1f} MB</option>')
    return "".join(options)


def write_page(folder: str, models: list, name: str, runtime: dict[str, str] | None,
               members: list[str] | None = None, weights: list[float] | None = None) -> None:
    """index.html and app.js into the ONNX folder `folder` of a model (`models`: it); with `runtime`, the runtime's
    files copied into folder/runtime/ and used from there. An ensemble: `models` its members, whose ONNX folders are
    `members` inside `folder`, averaged with `weights`."""
    source = os.path.join(folder, members[0]) if members else folder  # the tokenizer and generation defaults
    with open(os.path.join(source, "tokenizer_config.json")) as f:
        bos = json.load(f).get("bos_token") or ""
    has_defaults = os.path.exists(os.path.join(source, "generation_config.json"))  # carried over from the model
    generation = GenerationConfig.from_pretrained(source) if has_defaults else GenerationConfig()
    context = min(model.config.max_position_embeddings for model in models)
    what = f"{format_count(sum(model.num_parameters() for model in models))} parameters"
    if members:
        what = f"an ensemble of {len(members)} models averaged in probability, {what} in all"
    if runtime:
        os.makedirs(os.path.join(folder, "runtime"))
        for file, source in runtime.items():
            shutil.copyfile(source, os.path.join(folder, "runtime", file))
    fill = {"{{NAME}}": name, "{{MODEL}}": what, "{{CONTEXT}}": str(context),
            "{{TEMPERATURE}}": str(generation.temperature or 0.8), "{{TOP_K}}": str(generation.top_k or 40),
            "{{TOP_P}}": str(generation.top_p or 0.95),
            "{{MAX_NEW_TOKENS}}": str(min(generation.max_new_tokens or 200, context - 1)),
            "{{WEIGHTS}}": weight_options([os.path.join(folder, m, "onnx") for m in members or ["."]]),
            "{{RUNTIME}}": "./runtime/transformers.min.js" if runtime else CDN,
            "{{PAGE}}": json.dumps({"bos": bos, "wasm": {k: f"./runtime/{v}" for k, v in WASM.items()} if runtime
                                    else None, "members": [f"./{m}" for m in members] if members else None,
                                    "weights": weights})}
    for file in ("index.html", "app.js"):
        with open(os.path.join(PAGE, file)) as f:
            text = f.read()
        for key, value in fill.items():
            text = text.replace(key, value)
        with open(os.path.join(folder, file), "w") as f:
            f.write(text)


def web_folder(model_dir: str, out_dir: str, offline: bool = False, npm_dir: str | None = None, log=print) -> dict:
    """The ONNX folder of `model_dir` (fp32, 8-bit and 4-bit) with the page, at `out_dir`; returns the ONNX
    check's figures. An ensemble folder: each member's ONNX folder in `out_dir`/member-K and one page over them
    (the figures: {"members": each member's, with "model", the member's own folder})."""
    for file in ("index.html", "app.js"):  # before the export's minutes, not after
        shipped(os.path.join(PAGE, file))
    runtime = runtime_files(npm_dir or npm_install()) if offline else None
    name = os.path.basename(os.path.abspath(model_dir))
    if is_ensemble(model_dir):
        config = read_config(model_dir)
        with written_whole(out_dir, folder=True) as tmp:
            models, names, reports = [], [], []
            for i, (path, _) in enumerate(resolve_members(config["members"], model_dir), 1):
                names.append(f"member-{i}")
                reports.append({"model": path, **onnx_folder(path, os.path.join(tmp, names[-1]), quantize=["q4", "q8"],
                                                             log=log, also=lambda folder, model: models.append(model))})
            write_page(tmp, models, name, runtime, names, config["weights"])
        report = {"members": reports}
    else:
        report = onnx_folder(model_dir, out_dir, quantize=["q4", "q8"], log=log,
                             also=lambda folder, model: write_page(folder, [model], name, runtime))
    log(f"serve it: python -m http.server -d {out_dir} 8000   then open http://127.0.0.1:8000/")
    return report
