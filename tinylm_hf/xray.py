"""X-ray: what a model does with a text, as plain data (lists, floats, small tensors) for notebooks, scripts and the
demo. Any model this project trains or loads, at any snapshot of its training run (`snapshots`, `load_snapshot`).

    tokens(tokenizer, text)                      how the text is cut: ids, pieces, byte spans, the context limit
    surprisal(model, tokenizer, text)            -log2 p of each token, its rank, the model's alternatives there
    next_token(model, tokenizer, prompt, ...)    the next-token distribution, then after temperature, top-k, top-p
    attention(model, tokenizer, text)            the attention weights, (layers, heads, T, T)
    logit_lens(model, tokenizer, text)           the prediction read out after every layer (through the final norm)
    members(ensemble, tokenizer, text)           an ensemble's members side by side: surprisal, where they disagree

From a terminal: `tinylm xray MODEL "some text"` (tokens and surprisal in colour, the next-token
top-k; `--step N` for a snapshot). Imports no Trainer. The model runs in eval mode without gradients; every figure comes from the model's standard
outputs (`output_attentions`, `output_hidden_states`) and from the logits processors `generate()` uses.
"""

import argparse
import math
import os
import sys

import torch
from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from .configuration_megabyte import MegabyteConfig

SHOWN = {" ": "·", "\n": "↵", "\t": "⇥"}  # whitespace made visible
SNAPSHOTS = "snapshots"  # OUTPUT_DIR/snapshots/step-N: the weights at each evaluation of a training run


def visible(piece: str) -> str:
    return "".join(SHOWN.get(c, c) for c in piece)


def _piece(tokenizer, token_id: int) -> str:
    return tokenizer.decode([token_id], clean_up_tokenization_spaces=False)


def tokens(tokenizer, text: str, context: int | None = None, patch_size: int | None = None) -> dict:
    """How `text` is cut into tokens: for each, its id, its piece of text (and `shown`, with whitespace visible),
    its UTF-8 byte span, `partial` when it stands for part of a character (a byte-level piece of one UTF-8
    character; the pieces of one character share a `group`), and `in_context`: False past the model's `context`.
    With a MEGABYTE model's `patch_size`: `patch`, the patch each byte falls in (after the beginning-of-text token,
    which opens the first patch)."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    starts = [0]
    for c in text:  # byte offset of every character
        starts.append(starts[-1] + len(c.encode()))
    out, group, previous = [], -1, None
    for i, (token_id, span) in enumerate(zip(enc["input_ids"], enc["offset_mapping"])):
        piece = _piece(tokenizer, token_id)
        partial = "\ufffd" in piece and "\ufffd" not in text[span[0]:span[1]]
        if not (partial and previous == tuple(span)):
            group += 1
        previous = tuple(span) if partial else None
        out.append({"index": i, "id": token_id, "text": piece, "shown": visible(piece),
                    "bytes": (starts[span[0]], starts[span[1]]), "group": group, "partial": partial,
                    "in_context": context is None or i < context,
                    **({"patch": (i + 1) // patch_size} if patch_size else {})})
    n = len(out)
    return {"tokens": out, "count": n, "bytes": len(text.encode()), "bytes_per_token": len(text.encode()) / max(n, 1),
            "context": context, "beyond_context": sum(not t["in_context"] for t in out)}


def _ids(model, tokenizer, text: str) -> torch.Tensor:
    """The model's input for a text: the beginning-of-text token, then the text, cut to the context."""
    ids = tokenizer(tokenizer.bos_token + text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    return ids[:, :model.config.max_position_embeddings]


def _top(tokenizer, probs: torch.Tensor, k: int) -> list[dict]:
    p, ids = probs.topk(min(k, probs.shape[-1]))
    return [{"id": int(i), "text": _piece(tokenizer, int(i)), "p": float(q)} for q, i in zip(p, ids) if q > 0]


@torch.no_grad()
def surprisal(model, tokenizer, text: str, top_k: int = 5) -> dict:
    """For each token of the text (after the beginning-of-text token): its surprisal -log2 p in bits, its rank
    among the vocabulary (1: the model's first choice), and the model's top-k there. `loss` (the mean surprisal
    in nats) equals the model's own loss on the text."""
    model.eval()
    ids = _ids(model, tokenizer, text)
    logprobs = model(ids).logits[0, :-1].float().log_softmax(-1)  # (T - 1, V): the prediction of token t + 1
    return _surprisal(tokenizer, logprobs, ids[0, 1:], top_k)


def _surprisal(tokenizer, logprobs: torch.Tensor, targets: torch.Tensor, top_k: int) -> dict:
    """`surprisal`'s figures from the log-probabilities (T - 1, V) of the text's tokens after the first."""
    chosen = logprobs.gather(1, targets[:, None])[:, 0]
    ranks = (logprobs > chosen[:, None]).sum(-1) + 1
    rows = [{"id": int(t), "text": _piece(tokenizer, int(t)), "bits": float(-lp / math.log(2)), "rank": int(r),
             "top": _top(tokenizer, logprobs[i].exp(), top_k)}
            for i, (t, lp, r) in enumerate(zip(targets, chosen, ranks))]
    loss = float(-chosen.mean())
    return {"tokens": rows, "loss": loss, "mean_bits": loss / math.log(2)}


@torch.no_grad()
def next_token(model, tokenizer, prompt: str, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
               n: int = 10) -> dict:
    """The distribution of the token after `prompt`, stage by stage as sampling reshapes it, with the logits
    processors `generate()` applies, in its order: `raw`, then `temperature`, `top-k`, `top-p` (the stages that
    change something). Each stage: its top-n tokens with probabilities, how many tokens it keeps, the most likely
    ones it cut. The last stage is what `generate(do_sample=True, ...)` draws from."""
    model.eval()
    ids = _ids(model, tokenizer, prompt)
    scores = model(ids).logits[:, -1].float()  # (1, V)
    steps = [("raw", None)]
    if temperature != 1.0:
        steps.append(("temperature", TemperatureLogitsWarper(temperature)))
    if top_k:
        steps.append(("top-k", TopKLogitsWarper(top_k)))
    if top_p < 1.0:
        steps.append(("top-p", TopPLogitsWarper(top_p)))
    stages = []
    for name, warper in steps:
        before = scores
        if warper is not None:
            scores = warper(ids, scores)
        probs = scores.softmax(-1)[0]
        cut = torch.isinf(scores[0]) & ~torch.isinf(before[0])
        cut_probs = before.softmax(-1)[0].masked_fill(~cut, 0)
        stages.append({"name": name, "top": _top(tokenizer, probs, n), "kept": int((probs > 0).sum()),
                       "cut": int(cut.sum()), "cut_top": _top(tokenizer, cut_probs, n), "probs": probs})
    return {"prompt_tokens": ids.shape[1], "stages": stages}


@torch.no_grad()
def members(ensemble, tokenizer, text: str, top_k: int = 5, most: int = 3) -> dict:
    """An ensemble (`tinylm_hf.ensemble.Ensemble`) on a text, member by member: each member's `surprisal` and the
    ensemble's, and before each token how much the members disagree about it: the weighted Jensen-Shannon divergence
    of their next-token distributions, sum_k w_k KL(p_k || p), in bits (p = sum_k w_k p_k, the ensemble's; 0 where
    they agree, at most log2 K). `most`: the positions where they disagree most (by more than 1e-4 bits), largest
    first."""
    ensemble.eval()
    ids = _ids(ensemble, tokenizer, text)
    targets = ids[0, 1:]
    logprobs = torch.stack([m(ids).logits[0, :-1].float().log_softmax(-1) for m in ensemble.members])  # (K, T-1, V)
    mixed = ensemble.mix(logprobs)  # (T - 1, V)
    weights = ensemble.log_weights.exp()

    def entropy(lp):  # in nats, over the last dimension (0 log 0 = 0)
        return -(lp.exp() * lp).nan_to_num(nan=0.0).sum(-1)

    divergence = (entropy(mixed) - (weights[:, None] * entropy(logprobs)).sum(0)).clamp(min=0) / math.log(2)
    order = divergence.argsort(descending=True)[:most]
    return {"members": [_surprisal(tokenizer, lp, targets, top_k) for lp in logprobs],
            "ensemble": _surprisal(tokenizer, mixed, targets, top_k), "weights": weights.tolist(),
            "divergence": divergence.tolist(), "most": [int(i) for i in order if divergence[i] > 1e-4]}


def attention_shape(config) -> tuple[int, int]:
    """(layers, heads) that `attention` returns: a MEGABYTE model's global layers, then its local ones."""
    if isinstance(config, MegabyteConfig):
        g, l = config.global_config, config.local_config
        return g.num_hidden_layers + l.num_hidden_layers, max(g.num_attention_heads, l.num_attention_heads)
    return config.num_hidden_layers, config.num_attention_heads


@torch.no_grad()
def attention(model, tokenizer, text: str) -> dict:
    """The attention weights for the text: a (layers, heads, T, T) tensor (row t: how token t spreads its
    attention over tokens 0..t; every row sums to 1), and the T token pieces.

    A MEGABYTE model: its global layers' attention over patches (heads, N, N; `layer_tokens`: each patch's bytes),
    then its local layers' inside each patch, drawn over the bytes (heads, T, T: a block per patch, zero between
    patches); `layer_names` says which is which."""
    model.eval()
    ids = _ids(model, tokenizer, text)
    pieces = [_piece(tokenizer, int(t)) for t in ids[0]]
    out = model(ids, output_attentions=True)
    if not isinstance(model.config, MegabyteConfig):
        weights = torch.stack(out.attentions)[:, 0]  # (L, H, T, T)
        return {"weights": weights.float(), "tokens": pieces}
    P, T = model.config.patch_size, ids.shape[1]
    N = T // P + 1
    patches = ["[start]"] + ["".join(pieces[k * P:(k + 1) * P]) for k in range(N - 1)]  # patch k reads patch k - 1
    weights, labels, names = [], [], []
    for i, layer in enumerate(out.global_attentions, 1):  # (1, H, N, N)
        weights.append(layer[0].float())
        labels.append(patches)
        names.append(f"global {i} (over patches)")
    for i, layer in enumerate(out.local_attentions, 1):  # (N, H, P, P): place p of patch k predicts byte kP + p
        full = torch.zeros(layer.shape[1], N * P, N * P)  # over the positions of the padded patches
        for k in range(N):
            full[:, k * P:(k + 1) * P, k * P:(k + 1) * P] = layer[k].float()
        weights.append(full[:, 1:T + 1, 1:T + 1])  # as the logits: position t (byte t read) predicts byte t + 1
        labels.append(pieces)
        names.append(f"local {i} (inside each patch)")
    return {"weights": weights, "tokens": pieces, "layer_tokens": labels, "layer_names": names}


@torch.no_grad()
def logit_lens(model, tokenizer, text: str, top: int = 3) -> dict:
    """The prediction read out after every layer: each layer's hidden state through the final norm and the head
    (the last layer's output is the model's own: its readout equals the logits). For each layer and position: the
    top tokens, and the probability given to the model's final choice there. (None for MEGABYTE: `note` says
    why.)"""
    model.eval()
    ids = _ids(model, tokenizer, text)
    if isinstance(model.config, MegabyteConfig):
        return {"tokens": [], "final": [], "layers": [], "note": "no logit lens for MEGABYTE: its layers are in two "
                "transformers, and only the local one's last layer reads out bytes"}
    out = model(ids, output_hidden_states=True)
    final = out.logits[0].float().argmax(-1)  # (T,): the model's final choice at each position
    norm, head = model.model.norm, model.get_output_embeddings()
    layers = []
    for layer, hidden in enumerate(out.hidden_states[1:], start=1):  # [0] is the embeddings
        normed = hidden if layer == len(out.hidden_states) - 1 else norm(hidden)  # the last is normed already
        probs = head(normed)[0].float().softmax(-1)  # (T, V)
        layers.append([{"top": _top(tokenizer, probs[t], top), "p_final": float(probs[t, final[t]])}
                       for t in range(probs.shape[0])])
    return {"tokens": [_piece(tokenizer, int(t)) for t in ids[0]], "final": [_piece(tokenizer, int(t)) for t in final],
            "layers": layers}


def snapshots(run_dir: str) -> list[int]:
    """The steps at which a training run kept a snapshot of its weights (OUTPUT_DIR/snapshots/step-N)."""
    folder = os.path.join(run_dir, SNAPSHOTS)
    if not os.path.isdir(folder):
        return []
    return sorted(int(name.split("-")[1]) for name in os.listdir(folder)
                  if name.startswith("step-") and name.split("-")[1].isdigit()
                  and os.path.exists(os.path.join(folder, name, "model.safetensors")))


def load_snapshot(run_dir: str, step: int):
    """The model of a training run as it was at `step` (one of `snapshots(run_dir)`)."""
    from .loading import load_model

    return load_model(os.path.join(run_dir, SNAPSHOTS, f"step-{step}")).eval()


# ---- the terminal view ----------------------------------------------------------------------------------------

TOKEN_COLOURS = (153, 222, 157, 218, 183, 216)  # ANSI 256-colour backgrounds, in turn
HEAT = (231, 224, 217, 210, 203, 196)  # white to red: 0-1, 1-2, 2-4, 4-6, 6-8, 8+ bits


def _paint(text: str, background: int | None) -> str:
    return text if background is None else f"\033[48;5;{background}m\033[38;5;16m{text}\033[0m"


def terminal_view(model, tokenizer, text: str, top: int = 10, colour: bool = True) -> str:
    """The tokens of the text (colours tell them apart), each token shaded by its surprisal, and the next-token
    top-k: what `tinylm xray` prints. Without colour, tokens go in brackets with their bits."""
    cut = tokens(tokenizer, text, model.config.max_position_embeddings - 1)
    seen = surprisal(model, tokenizer, text)
    following = next_token(model, tokenizer, text, n=top)["stages"][0]["top"]
    lines = [f"{cut['count']} tokens, {cut['bytes_per_token']:.2f} bytes per token"
             + (f", {cut['beyond_context']} beyond the context" if cut["beyond_context"] else "") + ":"]
    lines.append("".join(_paint(t["shown"], TOKEN_COLOURS[t["group"] % len(TOKEN_COLOURS)]) if colour
                         else f"[{t['shown']}]" for t in cut["tokens"]))
    lines.append(f"\nsurprisal, mean {seen['mean_bits']:.2f} bits per token"
                 + (" (white: expected ... red: 8+ bits):" if colour else ":"))
    steps = (1, 2, 4, 6, 8)
    lines.append("".join(_paint(t["text"], HEAT[sum(t["bits"] >= s for s in steps)]) if colour
                         else f"[{t['text']} {t['bits']:.1f}]" for t in seen["tokens"]))
    lines.append("\nthe next token:")
    lines += [f"  {t['text']!r:>16} {t['p']:6.1%} {'#' * round(t['p'] * 40)}" for t in following]
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="tinylm xray", description=(
        "See inside a model: how a text is cut into tokens, how surprising each token is to the model, and its "
        "next-token distribution. The demo's X-ray tab (tinylm demo) shows more: attention, the logit lens, "
        "sampling settings, snapshots compared."))
    parser.add_argument("model", help="model folder or Hub id")
    parser.add_argument("text", help="the text to look at")
    parser.add_argument("--revision", help="Hub revision (branch, tag or commit) of a Hub id to pin")
    parser.add_argument("--step", type=int, help="the model at this snapshot of its training run (listed if absent)")
    parser.add_argument("--top", type=int, default=10, help="next-token candidates to show (default 10)")
    parser.add_argument("--colour", "--color", choices=("auto", "always", "never"), default="auto",
                        help="ANSI colours (auto: when printing to a terminal)")
    args = parser.parse_args(argv)
    from .errors import UserError
    from .loading import load_model
    from .tokenizer import load_tokenizer

    if args.step is None:
        model = load_model(args.model, args.revision).eval()
    elif args.step in snapshots(args.model):
        model = load_snapshot(args.model, args.step)
    else:
        kept = ", ".join(map(str, snapshots(args.model))) or "none"
        raise UserError(f"--step {args.step}: {args.model} has no snapshot at that step (snapshots: {kept})")
    colour = args.colour == "always" or (args.colour == "auto" and sys.stdout.isatty())
    tokenizer = load_tokenizer(args.model, args.revision, add_chat_template=False)
    print(terminal_view(model, tokenizer, args.text, args.top, colour))


if __name__ == "__main__":
    from .errors import run_cli

    run_cli(main)
