"""ExecuTorch: the model as one .pte file for PyTorch's on-device runtime (Android, iOS; its Python runtime here).

    tinylm export executorch MODEL_DIR OUT_DIR [--quantize 8da4w]

OUT_DIR holds `model.pte`, the tokenizer (`tokenizer.json`, `tokenizer_config.json`) and a README saying how an
app loads them. The model goes through the exact conversion to its stock architecture, then transformers' own
ExecuTorch recipe (`TorchExportableModuleWithStaticCache`: a static KV cache as long as the model's context and the
signature of ExecuTorch's LLM runner, `forward(input_ids, cache_position) -> logits`, a prompt of any length up to
the context), `torch.export` (strict: ExecuTorch's lowering fails on this wrapper's non-strict trace with torch
2.13) and the XNNPACK backend, with the metadata methods ExecuTorch's LLM runner reads (context length, vocabulary,
BOS / EOS ids, KV cache). `--quantize 8da4w` is ExecuTorch's LLM recipe: 8-bit dynamic activations and 4-bit
weights in groups of 32 for every linear layer, the head included (torchao); the embedding stays fp32.
After writing, a prompt runs through ExecuTorch's Python runtime and the largest difference from PyTorch's logits
is reported.
"""

import os
import time

import numpy as np
import torch

from ..convert import stock_model
from ..errors import UserError
from ..files import written_whole
from ..tokenizer import load_tokenizer

QUANTIZE = ("8da4w",)
GROUP = 32  # 4-bit weights in groups of 32 values, one scale each (as ONNX's q4 and llama.cpp's q4_0 blocks)

README = """# {name}

`model.pte`: a small language model trained with tinylm-hf, for [ExecuTorch](https://pytorch.org/executorch/)
(XNNPACK backend, {weights}, a KV cache of {context} tokens), with its tokenizer (`tokenizer.json`).

- Android / iOS: ExecuTorch's LLM runner and its demo apps load `model.pte` with `tokenizer.json` (a Hugging Face
  tokenizer); the file carries the metadata they read (`get_max_seq_len` {context}, `get_vocab_size`
  {vocab}, `get_bos_id` {bos}, `get_eos_ids` {eos}, `use_kv_cache`, `enable_dynamic_shape`).
- Python: `from executorch.runtime import Runtime; method = Runtime.get().load_program("model.pte")
  .load_method("forward")`, then `method.execute([input_ids, cache_position])` returns the logits: the prompt's
  ids with positions 0..n-1 first, then one new id at a time with its position.
"""


def quantize_8da4w(model) -> None:
    from torchao.quantization import Int8DynamicActivationIntxWeightConfig, quantize_
    from torchao.quantization.granularity import PerGroup

    quantize_(model, Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int4, weight_granularity=PerGroup(GROUP)))


def to_pte(model, context: int, metadata: dict) -> bytes:
    """The stock causal LM `model` as an ExecuTorch program (see the module's docstring)."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower
    from transformers.integrations.executorch import TorchExportableModuleWithStaticCache

    model.generation_config.cache_implementation = "static"
    model.generation_config.use_cache = model.config.use_cache = True
    wrapper = TorchExportableModuleWithStaticCache(model, batch_size=1, max_cache_len=context)
    ids, positions = torch.zeros(1, 3, dtype=torch.long), torch.arange(3)  # example sizes: not 0 or 1
    length = torch.export.Dim("sequence_length", min=1, max=context)
    with torch.no_grad():
        program = torch.export.export(wrapper, args=(), kwargs={"input_ids": ids, "cache_position": positions},
                                      dynamic_shapes={"input_ids": {1: length}, "cache_position": {0: length}},
                                      strict=True)
    lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()], constant_methods=metadata)
    return lowered.to_executorch().buffer


def load_method(path: str):
    """The `forward` method of a .pte file, from ExecuTorch's Python runtime."""
    from executorch.runtime import Runtime

    return Runtime.get().load_program(path).load_method("forward")


def run_pte(method, ids: list[int], start: int) -> np.ndarray:
    """Logits (len(ids), vocabulary) for `ids` at positions start.. (the cache holds what came before)."""
    out = method.execute([torch.tensor([ids]), torch.arange(start, start + len(ids))])[0]
    return out[0].float().numpy()


def pte_log_probs(method, window: list[int]) -> np.ndarray:
    """(len - 1, vocabulary) log-probabilities of each next token of `window`, from an empty cache, in float64."""
    return torch.log_softmax(torch.from_numpy(run_pte(method, window, 0)[:-1]).double(), -1).numpy()


def pte_greedy(method, prompt: list[int], new_tokens: int) -> tuple[list[int], float, float]:
    """(tokens, seconds to the first, seconds for the rest) of greedy generation through the .pte's cache."""
    start = time.perf_counter()
    tokens = [int(run_pte(method, prompt, 0)[-1].argmax())]
    first = time.perf_counter() - start
    for _ in range(new_tokens - 1):
        tokens.append(int(run_pte(method, tokens[-1:], len(prompt) + len(tokens) - 1)[-1].argmax()))
    return tokens, first, time.perf_counter() - start - first


def executorch_folder(model_dir: str, out_dir: str, quantize: str | None = None, log=print) -> dict:
    """The ExecuTorch folder of `model_dir` at `out_dir` (see the module's docstring); returns its size and the
    largest difference from PyTorch's logits on a prompt."""
    if quantize not in (None, *QUANTIZE):
        raise UserError(f"--quantize {quantize!r}: the one ExecuTorch quantization offered is 8da4w")
    model = stock_model(model_dir).eval().requires_grad_(False)
    tokenizer = load_tokenizer(model_dir, add_chat_template=False)
    text = "Once upon a time, there was a little dog named Max. Max liked to play."
    ids = tokenizer(tokenizer.bos_token + text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():  # before quantizing: the export is checked against the model as trained
        expected = model(torch.tensor([ids])).logits[0].numpy()
    parameters = model.num_parameters()
    context = model.config.max_position_embeddings
    eos_ids = model.generation_config.eos_token_id
    eos = sorted({tokenizer.eos_token_id, *(eos_ids if isinstance(eos_ids, list) else [eos_ids])} - {None})
    metadata = {"get_max_seq_len": context, "get_max_context_len": context, "get_vocab_size": model.config.vocab_size,
                "get_n_layers": model.config.num_hidden_layers, "get_bos_id": tokenizer.bos_token_id,
                "get_eos_ids": eos, "use_kv_cache": True, "use_sdpa_with_kv_cache": False,
                "enable_dynamic_shape": True}
    if quantize:
        quantize_8da4w(model)
    log(f"exporting {model.config.model_type} ({parameters:,} parameters) to ExecuTorch"
        f"{' with 8-bit activations and 4-bit weights' if quantize else ''} (XNNPACK; this takes a minute)")
    buffer = to_pte(model, context, metadata)
    with written_whole(out_dir, folder=True) as tmp:
        with open(os.path.join(tmp, "model.pte"), "wb") as f:
            f.write(buffer)
        tokenizer.save_pretrained(tmp)
        with open(os.path.join(tmp, "README.md"), "w") as f:
            f.write(README.format(name=os.path.basename(os.path.abspath(out_dir)), context=context,
                                  vocab=model.config.vocab_size, bos=tokenizer.bos_token_id, eos=eos,
                                  weights="8-bit dynamic activations, 4-bit weights" if quantize else "fp32"))
    got = run_pte(load_method(os.path.join(out_dir, "model.pte")), ids, 0)
    report = {"bytes": len(buffer), "max_abs_diff": float(np.abs(got - expected).max())}
    log(f"wrote {out_dir} (model.pte {report['bytes'] / 1e6:.1f} MB); ExecuTorch vs PyTorch: largest logit "
        f"difference {report['max_abs_diff']:.1e}")
    return report
