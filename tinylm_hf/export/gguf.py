"""GGUF: one file llama.cpp (llama-cli, llama-server, and the apps built on it) loads, written with the `gguf` package.

    tinylm export gguf MODEL_DIR OUT.gguf [--type f32|f16|q8_0|q4_0]

The llama family is written in llama.cpp's `llama` layout (`qwen3` with QK-norm), the gpt family as `gpt2` (each
through the exact conversion to the stock model, whose tensor names the `gguf` package maps). Facts about llama.cpp
the file has to match:
- llama.cpp's llama rotates pairs of neighbouring dimensions where transformers' Llama rotates the two halves of
  each head, so the rows of the q and k projections are reordered within each head (the file loads either way;
  unpermuted, it writes garbage). Its qwen3 rotates the halves (NEOX rope), as transformers does: no reordering,
  and the q/k norms act over each head's dimensions, which the reordering would have scrambled.
- Tied embeddings: a llama or qwen3 file has no `output.weight` and llama.cpp uses the embedding; a gpt2 file
  carries the head as `output.weight`, as llama.cpp's own converter writes GPT-2.
- The tokenizer is a byte-level BPE: model `gpt2`, pre-tokenizer `gpt-2` (the GPT-2 split; `default` splits
  otherwise), every token in its byte-level spelling with its merges, special tokens as control tokens, and the chat
  template. llama.cpp adds the BOS token (`<|endoftext|>`) before a prompt, as the stories began in training.
- Types: f32; f16, q8_0 or q4_0 for the matrices (norms and biases stay f32). q8_0 and q4_0 store rows in blocks of
  32 values (8 or 4 bits each, one f16 scale a block): a matrix whose rows are not a multiple of 32 long is written
  f16 instead, and the command says which. llama.cpp's K-quants (q4_k_m ...) are not written here (the `gguf`
  package cannot make them): `llama-quantize OUT-f16.gguf OUT-q4_k_m.gguf Q4_K_M` makes one from the f16 file.
- llama.cpp's gpt2 path computes GELU with the tanh approximation (about 3e-3 off the exact GELU in the logits), and
  its default f16 KV cache moves logits by about 1e-2: greedy continuations still agree.
"""

import json
import os

import numpy as np

from ..convert import stock_model
from ..errors import UserError
from ..files import written_whole
from ..tokenizer import load_tokenizer

TYPES = ("f32", "f16", "q8_0", "q4_0")


def llama_rows(weight: np.ndarray, heads: int) -> np.ndarray:
    """q or k projection rows (or bias) reordered within each head: transformers' rotate-half order -> llama.cpp's
    interleaved pairs (row i of the first half goes to 2i, row i of the second half to 2i + 1)."""
    halves = weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:])  # head, half, row, ...
    return halves.swapaxes(1, 2).reshape(weight.shape)


def tensors(model) -> list[tuple[str, np.ndarray]]:
    """(GGUF name, fp32 array in llama.cpp's orientation) for every tensor of a stock Llama / Qwen3 / GPT-2 model
    (transformers' model type is llama.cpp's architecture name for each)."""
    import gguf

    c = model.config
    arch = {name: arch for arch, name in gguf.MODEL_ARCH_NAMES.items()}[c.model_type]
    names = gguf.get_tensor_name_map(arch, c.num_hidden_layers)
    gpt2, permuted = c.model_type == "gpt2", c.model_type == "llama"
    out = []
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight" and not gpt2 and c.tie_word_embeddings:
            continue  # llama.cpp reads the embedding as the head
        if name.endswith((".attn.bias", ".attn.masked_bias")):
            continue  # GPT-2's causal-mask buffers of older checkpoints
        array = tensor.detach().float().numpy()
        if permuted and ".self_attn.q_proj." in name:
            array = llama_rows(array, c.num_attention_heads)
        elif permuted and ".self_attn.k_proj." in name:
            array = llama_rows(array, c.num_key_value_heads)
        elif gpt2 and name.endswith((".c_attn.weight", ".c_proj.weight", ".c_fc.weight")):
            array = array.T  # GPT-2's Conv1D stores (in, out)
        out.append((names.get_name(name, try_suffixes=(".weight", ".bias")), np.ascontiguousarray(array)))
    return out


def vocabulary(tokenizer, size: int) -> tuple[list[str], list[int], list[str]]:
    """Tokens by id (byte-level spelling), their types, and the merges; ids the tokenizer does not use (a model
    vocabulary rounded up) are filled with unused placeholders."""
    import gguf

    by_id = {i: token for token, i in tokenizer.get_vocab().items()}
    if max(by_id) >= size:  # (ids are distinct: more tokens than the vocabulary would also reach past it)
        raise UserError(f"the tokenizer has ids up to {max(by_id)}, beyond the model's {size}-token vocabulary")
    special = set(tokenizer.all_special_ids) | {i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
    tokens, types = [], []
    for i in range(size):
        tokens.append(by_id.get(i, f"[PAD{i}]"))
        types.append(gguf.TokenType.UNUSED if i not in by_id else
                     gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL)
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    if spec["model"]["type"] != "BPE" or spec.get("pre_tokenizer", {}).get("type") not in ("ByteLevel", "Sequence"):
        raise UserError("GGUF export takes byte-level BPE tokenizers (tinylm tokenizer's bpe and bytes types, "
                        "GPT-2's): a words tokenizer has no GGUF form")
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    return tokens, types, merges


def write_gguf(model_dir: str, path: str, kind: str = "f16", log=print) -> dict:
    """`model_dir` as one GGUF file at `path` (see the module's docstring); returns its size and tensor types."""
    import gguf

    if kind not in TYPES:
        raise UserError(f"--type {kind!r}: choose one of {', '.join(TYPES)}")
    model = stock_model(model_dir)
    tokenizer = load_tokenizer(model_dir, add_chat_template=False)
    c = model.config
    arch = c.model_type  # llama, qwen3 or gpt2
    quantized = {"f16": gguf.GGMLQuantizationType.F16, "q8_0": gguf.GGMLQuantizationType.Q8_0,
                 "q4_0": gguf.GGMLQuantizationType.Q4_0}.get(kind)
    with written_whole(path) as tmp:
        writer = gguf.GGUFWriter(tmp, arch)
        writer.add_name(os.path.basename(os.path.abspath(model_dir)))
        writer.add_file_type({"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                              "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0, "q4_0": gguf.LlamaFileType.MOSTLY_Q4_0}[kind])
        writer.add_context_length(c.max_position_embeddings)
        writer.add_embedding_length(c.hidden_size)
        writer.add_block_count(c.num_hidden_layers)
        writer.add_head_count(c.num_attention_heads)
        if arch != "gpt2":
            writer.add_feed_forward_length(c.intermediate_size)
            writer.add_head_count_kv(c.num_key_value_heads)
            writer.add_key_length(c.head_dim)
            writer.add_value_length(c.head_dim)
            writer.add_rope_dimension_count(c.head_dim)
            writer.add_rope_freq_base(c.rope_parameters["rope_theta"])
            writer.add_layer_norm_rms_eps(c.rms_norm_eps)
        else:
            writer.add_feed_forward_length(c.n_inner or 4 * c.hidden_size)
            writer.add_layer_norm_eps(c.layer_norm_epsilon)
        writer.add_vocab_size(c.vocab_size)
        tokens, types, merges = vocabulary(tokenizer, c.vocab_size)
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre("gpt-2")
        writer.add_token_list(tokens)
        writer.add_token_types(types)
        writer.add_token_merges(merges)
        for key, add in (("bos_token_id", writer.add_bos_token_id), ("eos_token_id", writer.add_eos_token_id),
                         ("pad_token_id", writer.add_pad_token_id)):
            if getattr(tokenizer, key) is not None:
                add(getattr(tokenizer, key))
        writer.add_add_bos_token(tokenizer.bos_token_id is not None)
        writer.add_add_eos_token(False)
        if tokenizer.chat_template:
            writer.add_chat_template(tokenizer.chat_template)
        fell_back, counts = [], {}
        for name, array in tensors(model):
            qtype = quantized if array.ndim == 2 else None  # norms and biases stay f32
            if kind in ("q8_0", "q4_0") and array.shape[-1] % 32:
                qtype = gguf.GGMLQuantizationType.F16
                fell_back.append(name)
            if qtype is None:
                writer.add_tensor(name, array)
            else:
                writer.add_tensor(name, gguf.quants.quantize(array, qtype), raw_dtype=qtype)
            label = qtype.name if qtype is not None else "F32"
            counts[label] = counts.get(label, 0) + 1
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    report = {"bytes": os.path.getsize(path), "tensor_types": counts}
    note = (f"; {len(fell_back)} matrices with rows not a multiple of 32 long were written f16: "
            f"{', '.join(fell_back[:4])}{', ...' if len(fell_back) > 4 else ''}") if fell_back else ""
    report["f16_instead"] = fell_back
    log(f"wrote {path} ({arch}, {report['bytes'] / 1e6:.1f} MB, tensors {counts}){note}")
    log(f"run it: llama-cli -m {path} -p \"Once upon a time\" -n 200   (or: llama-server -m {path})")
    return report
