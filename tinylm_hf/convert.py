"""Convert TinyLM folders to and from the stock architectures, so any Llama / Qwen3 / GPT-2 runtime can load them.

    tinylm convert --to llama SRC DST     llama family -> LlamaForCausalLM
    tinylm convert --to qwen3 SRC DST     llama family with qk_norm -> Qwen3ForCausalLM
    tinylm convert --to gpt2 SRC DST      gpt family   -> GPT2LMHeadModel
    tinylm convert --from SRC DST         any of those -> TinyLMForCausalLM

The conversion is exact (same logits), which makes the stock models our correctness oracle.
Tokenizer and generation config files are carried over when SRC has them.
"""

import argparse
import sys

import torch
from transformers import (AutoConfig, AutoTokenizer, GenerationConfig, GPT2Config, GPT2LMHeadModel, LlamaConfig,
                          LlamaForCausalLM, PreTrainedModel, Qwen3Config, Qwen3ForCausalLM)

from .configuration_megabyte import MegabyteConfig
from .configuration_tinylm import TinyLMConfig
from .errors import UserError, run_cli
from .modeling_tinylm import TinyLMForCausalLM

NO_EXTRAS = {"qk_norm": False, "logit_softcap": 0.0}  # options neither stock Llama nor GPT-2 has
NEEDS = {  # the config fields each stock architecture fixes
    "llama": {"position_embedding": "rope", "norm": "rmsnorm", "mlp": "swiglu", **NO_EXTRAS},
    "qwen3": {"position_embedding": "rope", "norm": "rmsnorm", "mlp": "swiglu", **NO_EXTRAS, "qk_norm": True,
              "bias": False},  # Qwen3 is Llama with q_norm / k_norm; its MLP has no biases
    "gpt2": {"position_embedding": "learned", "norm": "layernorm", "mlp": "gelu", "bias": True, **NO_EXTRAS},
}
SPECIAL_IDS = ("bos_token_id", "eos_token_id", "pad_token_id")


def stock_target(config: TinyLMConfig) -> str:
    """The stock architecture a TinyLM config converts to (and exports through): the gpt family's GPT-2, the llama
    family's Llama, or Qwen3 where it has QK-norm."""
    if config.family != "llama":
        return "gpt2"
    return "qwen3" if config.qk_norm else "llama"


def cannot_convert(config: TinyLMConfig, target: str) -> list[str]:
    """What keeps `config` from becoming the stock `target` exactly (empty: nothing)."""
    wrong = [f"{k}={getattr(config, k)!r} (needs {v!r})" for k, v in NEEDS[target].items() if getattr(config, k) != v]
    if target == "gpt2" and config.num_key_value_heads != config.num_attention_heads:
        wrong.append("num_key_value_heads != num_attention_heads (GPT-2 has no grouped-query attention)")
    if target == "gpt2" and not config.tie_word_embeddings:
        wrong.append("tie_word_embeddings=False (GPT2LMHeadModel always ties)")
    return wrong


def _require(config: TinyLMConfig, target: str) -> None:
    if wrong := cannot_convert(config, target):
        own = stock_target(config)
        hint = f" (--to {own} takes it)" if own != target and not cannot_convert(config, own) else ""
        raise UserError(f"this model cannot become {target}: {'; '.join(wrong)}{hint}")


def _ids(config, vocab_size: int | None = None) -> dict:
    """The special token ids of `config`. Importing (vocab_size given), an id outside the vocabulary is dropped with
    a warning: `GPT2Config(vocab_size=...)` keeps GPT-2's 50256, which transformers loads and TinyLM refuses."""
    ids = {k: getattr(config, k, None) for k in SPECIAL_IDS}
    for key, value in ids.items():
        if vocab_size is not None and value is not None and not 0 <= value < vocab_size:
            print(f"warning: {key}={value} is outside the vocabulary ({vocab_size} tokens): dropped", file=sys.stderr)
            ids[key] = None
    return ids


# ---- llama family <-> LlamaForCausalLM, Qwen3ForCausalLM (the same with q_norm / k_norm) -----------------------

def to_llama(model: TinyLMForCausalLM) -> LlamaForCausalLM:
    return _to_llama_like(model, "llama")


def to_qwen3(model: TinyLMForCausalLM) -> Qwen3ForCausalLM:
    return _to_llama_like(model, "qwen3")


def _to_llama_like(model: TinyLMForCausalLM, target: str) -> LlamaForCausalLM | Qwen3ForCausalLM:
    c = model.config
    _require(c, target)
    shape = dict(
        vocab_size=c.vocab_size, hidden_size=c.hidden_size, intermediate_size=c.intermediate_size,
        num_hidden_layers=c.num_hidden_layers, num_attention_heads=c.num_attention_heads,
        num_key_value_heads=c.num_key_value_heads, head_dim=c.head_dim, max_position_embeddings=c.max_position_embeddings,
        rms_norm_eps=c.norm_eps, tie_word_embeddings=c.tie_word_embeddings, attention_dropout=c.attention_dropout,
        hidden_act="silu", rope_parameters={"rope_type": "default", "rope_theta": c.rope_theta}, **_ids(c),
    )
    if target == "llama":
        cls, config = LlamaForCausalLM, LlamaConfig(**shape, attention_bias=bool(c.bias), mlp_bias=bool(c.bias))
    else:  # every layer full attention (Qwen3's sliding window is off by default)
        cls, config = Qwen3ForCausalLM, Qwen3Config(**shape, attention_bias=False, use_sliding_window=False)
    ours = model.state_dict()
    q_k_v = [c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim, c.num_key_value_heads * c.head_dim]
    theirs = {"model.embed_tokens.weight": ours["model.embed_tokens.weight"],
              "model.norm.weight": ours["model.norm.weight"]}
    if not c.tie_word_embeddings:
        theirs["lm_head.weight"] = ours["lm_head.weight"]
    for i in range(c.num_hidden_layers):
        a, b = f"model.layers.{i}.", f"model.layers.{i}."
        theirs[b + "input_layernorm.weight"] = ours[a + "attn_norm.weight"]
        theirs[b + "post_attention_layernorm.weight"] = ours[a + "mlp_norm.weight"]
        for kind in ("weight", "bias") if c.bias else ("weight",):
            q, k, v = ours[a + f"attn.qkv_proj.{kind}"].split(q_k_v, dim=0)
            theirs.update({b + f"self_attn.q_proj.{kind}": q, b + f"self_attn.k_proj.{kind}": k,
                           b + f"self_attn.v_proj.{kind}": v})
            gate, up = ours[a + f"mlp.up_proj.{kind}"].chunk(2, dim=0)
            theirs.update({b + f"mlp.gate_proj.{kind}": gate, b + f"mlp.up_proj.{kind}": up})
            theirs[b + f"self_attn.o_proj.{kind}"] = ours[a + f"attn.o_proj.{kind}"]
            theirs[b + f"mlp.down_proj.{kind}"] = ours[a + f"mlp.down_proj.{kind}"]
        if c.qk_norm:
            theirs[b + "self_attn.q_norm.weight"] = ours[a + "attn.q_norm.weight"]
            theirs[b + "self_attn.k_norm.weight"] = ours[a + "attn.k_norm.weight"]
    return _build(cls, config, theirs)


def from_llama(model: LlamaForCausalLM | Qwen3ForCausalLM) -> TinyLMForCausalLM:
    c = model.config
    qwen3 = c.model_type == "qwen3"
    theta = (c.rope_parameters or {}).get("rope_theta", 10000.0)
    if (c.rope_parameters or {}).get("rope_type", "default") != "default" or c.hidden_act != "silu":
        raise UserError(f"only {c.model_type} models with default RoPE and SiLU can be imported")
    if c.head_dim != c.hidden_size // c.num_attention_heads:
        raise UserError(f"head_dim={c.head_dim} is not hidden_size / num_attention_heads: TinyLM derives it")
    if qwen3 and (c.attention_bias or "sliding_attention" in c.layer_types):
        raise UserError("only Qwen3 models without attention biases and without sliding windows can be imported")
    if not qwen3 and c.attention_bias != c.mlp_bias:
        raise UserError("attention_bias and mlp_bias differ: TinyLM has one `bias` switch for both")
    config = TinyLMConfig(
        family="llama", vocab_size=c.vocab_size, hidden_size=c.hidden_size, intermediate_size=c.intermediate_size,
        num_hidden_layers=c.num_hidden_layers, num_attention_heads=c.num_attention_heads,
        num_key_value_heads=c.num_key_value_heads, max_position_embeddings=c.max_position_embeddings,
        norm_eps=c.rms_norm_eps, tie_word_embeddings=c.tie_word_embeddings, bias=c.attention_bias,
        rope_theta=theta, attention_dropout=float(c.attention_dropout), qk_norm=qwen3, **_ids(c, c.vocab_size),
    )
    theirs = model.state_dict()
    ours = {"model.embed_tokens.weight": theirs["model.embed_tokens.weight"],
            "model.norm.weight": theirs["model.norm.weight"]}
    if not c.tie_word_embeddings:
        ours["lm_head.weight"] = theirs["lm_head.weight"]
    for i in range(c.num_hidden_layers):
        a = b = f"model.layers.{i}."
        ours[a + "attn_norm.weight"] = theirs[b + "input_layernorm.weight"]
        ours[a + "mlp_norm.weight"] = theirs[b + "post_attention_layernorm.weight"]
        for kind in ("weight", "bias") if c.attention_bias else ("weight",):
            ours[a + f"attn.qkv_proj.{kind}"] = torch.cat([theirs[b + f"self_attn.{p}_proj.{kind}"] for p in "qkv"])
            ours[a + f"mlp.up_proj.{kind}"] = torch.cat([theirs[b + f"mlp.{p}_proj.{kind}"] for p in ("gate", "up")])
            ours[a + f"attn.o_proj.{kind}"] = theirs[b + f"self_attn.o_proj.{kind}"]
            ours[a + f"mlp.down_proj.{kind}"] = theirs[b + f"mlp.down_proj.{kind}"]
        if qwen3:
            ours[a + "attn.q_norm.weight"] = theirs[b + "self_attn.q_norm.weight"]
            ours[a + "attn.k_norm.weight"] = theirs[b + "self_attn.k_norm.weight"]
    return _build(TinyLMForCausalLM, config, ours)


# ---- gpt family <-> GPT2LMHeadModel (GPT-2 stores its linear weights transposed: Conv1D is (in, out)) ------------

def to_gpt2(model: TinyLMForCausalLM) -> GPT2LMHeadModel:
    c = model.config
    _require(c, "gpt2")
    config = GPT2Config(
        vocab_size=c.vocab_size, n_positions=c.max_position_embeddings, n_embd=c.hidden_size,
        n_layer=c.num_hidden_layers, n_head=c.num_attention_heads, n_inner=c.intermediate_size,
        activation_function="gelu", layer_norm_epsilon=c.norm_eps, resid_pdrop=c.dropout, embd_pdrop=c.dropout,
        attn_pdrop=c.attention_dropout, tie_word_embeddings=True, **_ids(c),
    )
    return _build(GPT2LMHeadModel, config, _rename(model.state_dict(), _gpt2_names(c.num_hidden_layers), True))


GPT2_LAYER_NAMES = [("attn_norm", "ln_1"), ("attn.qkv_proj", "attn.c_attn"), ("attn.o_proj", "attn.c_proj"),
                    ("mlp_norm", "ln_2"), ("mlp.up_proj", "mlp.c_fc"), ("mlp.down_proj", "mlp.c_proj")]


def _gpt2_names(n_layers: int) -> list[tuple[str, str, bool]]:
    """(our name, GPT-2's name, transposed) for every tensor: GPT-2's Conv1D stores linear weights as (in, out)."""
    names = [("model.embed_tokens.weight", "transformer.wte.weight", False),
             ("model.embed_positions.weight", "transformer.wpe.weight", False),
             ("model.norm.weight", "transformer.ln_f.weight", False), ("model.norm.bias", "transformer.ln_f.bias", False)]
    for i in range(n_layers):
        for ours, theirs in GPT2_LAYER_NAMES:
            names.append((f"model.layers.{i}.{ours}.weight", f"transformer.h.{i}.{theirs}.weight", "norm" not in ours))
            names.append((f"model.layers.{i}.{ours}.bias", f"transformer.h.{i}.{theirs}.bias", False))
    return names


def _rename(state: dict, names: list[tuple[str, str, bool]], to_theirs: bool) -> dict:
    out = {}
    for ours, theirs, transposed in names:
        source, target = (ours, theirs) if to_theirs else (theirs, ours)
        out[target] = state[source].t().contiguous() if transposed else state[source]
    return out


def from_gpt2(model: GPT2LMHeadModel) -> TinyLMForCausalLM:
    c = model.config
    if c.activation_function not in ("gelu", "gelu_new", "gelu_pytorch_tanh"):
        raise UserError(f"activation_function={c.activation_function!r}: only GELU GPT-2 models can be imported")
    if c.activation_function != "gelu":
        print(f"warning: {c.activation_function} (tanh GELU) becomes exact GELU: logits differ slightly",
              file=sys.stderr)
    config = TinyLMConfig(
        family="gpt", vocab_size=c.vocab_size, hidden_size=c.n_embd, num_hidden_layers=c.n_layer,
        num_attention_heads=c.n_head, intermediate_size=c.n_inner or 4 * c.n_embd,
        max_position_embeddings=c.n_positions, norm_eps=c.layer_norm_epsilon, dropout=c.resid_pdrop,
        attention_dropout=c.attn_pdrop, **_ids(c, c.vocab_size),
    )
    return _build(TinyLMForCausalLM, config, _rename(model.state_dict(), _gpt2_names(c.n_layer), False))


def _build(cls: type[PreTrainedModel], config, state_dict: dict) -> PreTrainedModel:
    model = cls(config)
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    tied = set(model.all_tied_weights_keys) if config.tie_word_embeddings else set()
    missing = [k for k in missing if k not in tied]
    if missing or unexpected:
        raise RuntimeError(f"conversion bug: missing {missing}, unexpected {unexpected}")
    return model.eval()


CONVERTERS = {"llama": to_llama, "qwen3": to_qwen3, "gpt2": to_gpt2}
IMPORTERS = {"llama": (LlamaForCausalLM, from_llama), "qwen3": (Qwen3ForCausalLM, from_llama),
             "gpt2": (GPT2LMHeadModel, from_gpt2)}


def no_stock_architecture(model_dir: str, model_type: str) -> None:
    """MEGABYTE (two transformers, one over patches and one inside them) is no architecture of transformers' own,
    ONNX Runtime's exporters, llama.cpp or ExecuTorch's recipes: one line says so."""
    if model_type == MegabyteConfig.model_type:
        raise UserError(f"{model_dir} is a MEGABYTE model, which has no stock architecture: it cannot be converted or "
                        f"exported (ONNX, web page, GGUF, ExecuTorch); run it with transformers "
                        f"(AutoModelForCausalLM.from_pretrained(..., trust_remote_code=True)) or the demo")


def stock_model(model_dir: str) -> PreTrainedModel:
    """The model of `model_dir` as the stock architecture other runtimes know: a TinyLM model through the exact
    conversion (`stock_target`: LlamaForCausalLM, Qwen3ForCausalLM or GPT2LMHeadModel); a stock one as it is."""
    model_type = AutoConfig.from_pretrained(model_dir).model_type
    no_stock_architecture(model_dir, model_type)
    if model_type == "tinylm":
        model = TinyLMForCausalLM.from_pretrained(model_dir)
        return CONVERTERS[stock_target(model.config)](model)
    if model_type not in IMPORTERS:
        raise UserError(f"{model_dir} holds a {model_type!r} model: only tinylm, {', '.join(IMPORTERS)} models can be "
                        "exported")
    return IMPORTERS[model_type][0].from_pretrained(model_dir).eval()


def convert_folder(src: str, dst: str, to: str | None = None) -> str:
    """Convert the model folder `src` into `dst`: to a stock architecture (`to`), or back to TinyLM (to=None)."""
    config = AutoConfig.from_pretrained(src)
    no_stock_architecture(src, config.model_type)
    if to is not None:
        if config.model_type != "tinylm":
            raise UserError(f"{src} holds a {config.model_type!r} model, not tinylm: use --from to import it")
        converted = CONVERTERS[to](TinyLMForCausalLM.from_pretrained(src))
    else:
        if config.model_type not in IMPORTERS:
            raise UserError(f"{src} holds a {config.model_type!r} model: only {', '.join(IMPORTERS)} can be imported")
        cls, importer = IMPORTERS[config.model_type]
        converted = importer(cls.from_pretrained(src))
    converted.save_pretrained(dst)
    try:
        generation = GenerationConfig.from_pretrained(src)
    except OSError:
        generation = None  # no generation_config.json in src
    if generation is not None:
        for key in SPECIAL_IDS:  # as in the model's config: ids outside the vocabulary were dropped
            if getattr(generation, key, None) is not None and getattr(converted.config, key, None) is None:
                setattr(generation, key, None)
        generation.save_pretrained(dst)
    try:
        AutoTokenizer.from_pretrained(src).save_pretrained(dst)
    except (OSError, ValueError):
        print(f"note: no tokenizer in {src}; {dst} holds the model only", file=sys.stderr)
    return dst


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="tinylm convert", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    way = parser.add_mutually_exclusive_group(required=True)
    way.add_argument("--to", choices=sorted(CONVERTERS), help="convert a TinyLM folder to this stock architecture")
    way.add_argument("--from", dest="import_", action="store_true",
                     help="import a Llama, Qwen3 or GPT-2 folder into TinyLM")
    parser.add_argument("src", help="model folder or Hub id to read")
    parser.add_argument("dst", help="folder to write")
    parser.add_argument("--revision", help="Hub revision (branch, tag or commit) of a Hub id to pin")
    args = parser.parse_args(argv)
    from .hub import local_folder

    print(f"wrote {convert_folder(local_folder(args.src, args.revision), args.dst, args.to)}")


if __name__ == "__main__":
    run_cli(main)
