"""Muon for the hidden weight matrices, AdamW for the rest, as one optimizer the Trainer drives (`--optimizer muon`).

Muon (Jordan et al. 2024) keeps a momentum of each matrix's gradient and steps along its orthogonalised form: the
matrix with its singular values pushed towards 1 by five Newton-Schulz iterations, so that every direction the
gradient spans moves, not only the few that dominate it. The update is scaled to the RMS an AdamW step has (Liu et
al. 2025, "Muon is scalable for LLM training"), so one learning rate and one schedule serve both kinds of
parameter. Embeddings, the output head, norms and biases stay with AdamW, as in the published recipes.

The fused projections (q/k/v in one matrix, gate/up in another) are orthogonalised as one matrix each, not per
projection. Measured against per projection in one pair of 10-minute runs on TinyStories' sample (`quickstart-deep`,
2-core AVX512-BF16 EPYC, 2026-12-07): fused 1,229 steps, 1.053 bits per byte; per projection 1,176 steps (smaller,
more iterations: 4% fewer steps), 1.048. A 0.4% difference, inside the ~1.5% from one run to the next: the simpler
fused form stays.

`torch.optim.Muon` does the same but orthogonalises in bf16, which a CPU without bf16 units (AVX2 only) runs
~14x slower than fp32: 475 ms a step for the quickstart model, longer than its forward and backward. Here the
iterations run in the gradient's dtype.
"""

import math

import torch

# the quintic iteration's coefficients (Jordan et al.; the defaults of torch.optim.Muon)
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def orthogonalise(g: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """(m, n) -> (m, n) with about the same singular vectors and singular values near 1."""
    a, b, c = NS_COEFFICIENTS
    x = g.T if g.shape[0] > g.shape[1] else g  # (short, long): the Gram matrix below is the small one
    x = x / (x.norm() + 1e-7)  # spectral norm <= Frobenius norm <= 1
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if g.shape[0] > g.shape[1] else x


class MuonAdamW(torch.optim.Optimizer):
    """One optimizer over all the parameter groups: those whose role is "muon" take a Muon step (momentum, Nesterov,
    orthogonalised, scaled by 0.2 * sqrt(max(rows, cols)) to an AdamW step's RMS, with the same decoupled weight
    decay and the group's learning rate); the others an AdamW step, by a `torch.optim.AdamW` that works on those
    same group dicts and keeps its state in this optimizer's `state`. So the scheduler, the Trainer, hooks and
    `state_dict` see every group, all the time."""

    def __init__(self, params, lr: float, momentum: float = 0.95, **adamw_kwargs):
        super().__init__(params, {"lr": lr, "momentum": momentum, "role": "decay"})
        self.adamw = torch.optim.AdamW([g for g in self.param_groups if g["role"] != "muon"], lr=lr, **adamw_kwargs)
        self.adamw.state = self.state

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)  # new group dicts and a new state: AdamW works on them again
        self.adamw.param_groups = [g for g in self.param_groups if g["role"] != "muon"]
        self.adamw.state = self.state

    @torch.no_grad()
    def step(self, closure=None):
        loss = self.adamw.step(closure)
        for group in (g for g in self.param_groups if g["role"] == "muon"):
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"], state["momentum_buffer"] = torch.tensor(0.0), torch.zeros_like(p)
                state["step"] += 1
                buffer = state["momentum_buffer"]
                buffer.lerp_(p.grad, 1 - group["momentum"])
                update = orthogonalise(p.grad.lerp(buffer, group["momentum"]))
                p.mul_(1 - group["lr"] * group["weight_decay"])
                p.add_(update, alpha=-group["lr"] * 0.2 * max(p.shape) ** 0.5)
        return loss


def muon_groups(model, weight_decay: float) -> list[dict]:
    """The model's trainable parameters in three groups, each with its role: hidden weight matrices ("muon":
    Muon, decayed); the other matrices, i.e. token and position embeddings and the output head ("decay": AdamW,
    decayed); vectors: norms and biases ("no_decay": AdamW, no decay)."""
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    if model.get_output_embeddings() is not None:
        embeddings.add(id(model.get_output_embeddings().weight))
    params = [p for p in model.parameters() if p.requires_grad]
    hidden = [p for p in params if p.ndim == 2 and id(p) not in embeddings]
    tables = [p for p in params if p.ndim == 2 and id(p) in embeddings]
    vectors = [p for p in params if p.ndim != 2]
    return [{"params": hidden, "role": "muon", "weight_decay": weight_decay},
            {"params": tables, "role": "decay", "weight_decay": weight_decay},
            {"params": vectors, "role": "no_decay", "weight_decay": 0.0}]


def describe(args) -> str:
    """The optimizer as the model card names it."""
    name = "Muon (hidden matrices) + AdamW" if args.optimizer == "muon" else args.optim
    return f"{name}, betas ({args.adam_beta1}, {args.adam_beta2})"


def weight_decay_for_passes(passes: float) -> float:
    """The default weight decay of a run that makes `passes` passes over its training data: 0.1 (the published
    recipes' value) up to 4 passes, 1.2 from 8, log-linear between. Measured on TinyStories' 515K-token sample
    (README, "Quality per minute"): seen 9 times in 10 minutes, 1.2 gave 0.936x the stock Llama's bits per byte
    where 0.1 gave 0.98x; seen 3 times in 4 minutes, 0.1 gave 0.869x. On the quickstart's corpus, seen 2-3 times,
    1.2 raised the validation loss from 0.297 to 0.431."""
    share = min(max(math.log(max(passes, 1e-9) / 4) / math.log(2), 0.0), 1.0)
    return round(0.1 * 12 ** share, 3)
