"""The training loss without the (N, V) logits: cross-entropy of the output head applied to the final hidden
states, a chunk of rows at a time, with its gradients in the same pass. `TinyLMTrainer.compute_loss` uses it in
training; the model's own `forward` stays the reference (logits, then transformers' `loss_function`), and this
gives the same loss and gradients (tests/test_modeling.py) with less memory traffic.
"""

import torch
import torch.nn.functional as F

CHUNK_LOGITS = 2**20  # logits per chunk: 4 MB in fp32, which stays in cache


class ChunkedLinearCrossEntropy(torch.autograd.Function):
    """The training loss, cross_entropy(hidden @ weight^T, targets), a chunk of rows at a time, with its gradients
    computed in the same pass (as Liger-Kernel's fused linear cross-entropy does on GPUs).

    The plain way writes all the (N, V) logits, upcasts them to fp32 and reads them back several times: 64 MB at
    V = 4096 and N = 4096 tokens, far more than the caches hold. Here each chunk's logits stay in cache, and the
    backward pass is a multiply. The reduction is the same as transformers' `ForCausalLMLoss`: the sum over
    targets that are not -100, divided by `divisor` (`num_items_in_batch`, else the number of such targets).
    With `cap` > 0 the logits are soft-capped first (c * tanh(logits / c), as the model does), and their gradient
    takes tanh's derivative.
    """

    @staticmethod
    def forward(ctx, hidden, weight, targets, divisor, rows_per_chunk: int, cap: float = 0.0):
        # hidden (N, C), weight (V, C), targets (N,); matmuls run in the autocast dtype where autocast is on
        grad_hidden = torch.empty_like(hidden)
        grad_weight = torch.zeros_like(weight, dtype=torch.float32)
        loss = torch.zeros((), dtype=torch.float32, device=hidden.device)
        keep = (targets != -100).unsqueeze(1)  # (N, 1)
        targets = targets.clamp(min=0).unsqueeze(1)  # (N, 1), ignored rows point at class 0, masked below
        for start in range(0, hidden.shape[0], rows_per_chunk):
            rows = slice(start, start + rows_per_chunk)
            raw = hidden[rows] @ weight.t()  # (n, V)
            logits = raw.float()
            if cap:
                logits = cap * torch.tanh(logits / cap)
            lse = logits.logsumexp(dim=-1, keepdim=True)  # (n, 1)
            loss += ((lse - logits.gather(1, targets[rows])) * keep[rows]).sum()
            grad = (logits - lse).exp_().scatter_add_(1, targets[rows], torch.full_like(lse, -1.0))  # softmax - 1hot
            if cap:  # through the cap: d(c * tanh(x / c)) / dx = 1 - tanh(x / c)^2 = 1 - (capped / c)^2
                grad = grad * (1 - (logits / cap).square())
            grad = (grad * keep[rows]).to(raw.dtype)  # d(sum of losses) / d(logits): (n, V)
            grad_hidden[rows] = grad @ weight
            grad_weight += grad.t() @ hidden[rows]
        ctx.save_for_backward(grad_hidden, grad_weight, divisor)
        ctx.weight_dtype = weight.dtype
        return loss / divisor

    @staticmethod
    def backward(ctx, grad_loss):
        grad_hidden, grad_weight, divisor = ctx.saved_tensors
        scale = grad_loss / divisor
        return ((grad_hidden * scale).to(grad_hidden.dtype), (grad_weight * scale).to(ctx.weight_dtype),
                None, None, None, None)


def fused_causal_lm_loss(hidden: torch.Tensor, head_weight: torch.Tensor, labels: torch.Tensor,
                         num_items_in_batch=None, shift_labels: torch.Tensor | None = None, softcap: float = 0.0,
                         chunk_logits: int = CHUNK_LOGITS) -> torch.Tensor:
    """The loss of transformers' `ForCausalLMLoss` (labels shifted inside: token t predicts token t + 1; -100 is
    ignored; the sum divided by num_items_in_batch, else by the number of targets) for logits = hidden @ head^T,
    soft-capped when `softcap` > 0, computed through `ChunkedLinearCrossEntropy`.

    hidden (B, T, C): the final hidden states (after the final norm); head_weight (V, C); labels (B, T)."""
    if shift_labels is None:
        shift_labels = F.pad(labels, (0, 1), value=-100)[:, 1:]
    targets = shift_labels.reshape(-1)  # (B * T,)
    if num_items_in_batch is None:
        num_items_in_batch = (targets != -100).sum()
    divisor = torch.as_tensor(num_items_in_batch, dtype=torch.float32, device=hidden.device)
    rows_per_chunk = max(1, chunk_logits // head_weight.shape[0])
    return ChunkedLinearCrossEntropy.apply(hidden.reshape(-1, hidden.shape[-1]), head_weight, targets, divisor,
                                           rows_per_chunk, float(softcap or 0.0))
