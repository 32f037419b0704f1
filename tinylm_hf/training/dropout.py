"""A faster dropout for training on CPUs, swapped in for the model's `nn.Dropout` modules by `make_trainer`.

`modeling_tinylm.py` keeps the plain `nn.Dropout` (the reference, and what stock GPT-2 does). Its masks come from one
random float per element (`bernoulli_`), which costs more than the rest of the step's elementwise work on a small
model: 13 masks of 16 x 256 x 128 took 90-130 ms of a 330 ms training step on a 2-core AMX Xeon, eager or compiled
(torch.compile draws each number with Philox in its generated loop). `ByteDropout` draws 64 random bits at a time
(`random_()` on int64, about a tenth of the time of `torch.rand` for the same mask) and reads each element's byte: the
element is kept when its byte is at least round(p * 256), so p is rounded to a multiple of 1/256 (0.1 -> 26/256 =
0.1016), and the kept elements are scaled by 256 / (256 - round(p * 256)). The bytes come from a custom op, which
torch.compile calls as it is and whose compare-and-scale it fuses into the kernels around it. In 10-minute runs of
the 6-layer shape (README, "Quality per minute"), dropout 0.1 cost a quarter of the steps with nn.Dropout (1,255
against 1,690) and 7% with this one (1,573).
"""

import torch
from torch import nn


@torch.library.custom_op("tinylm::random_bytes", mutates_args=(), tags=torch.Tag.nondeterministic_seeded)
def random_bytes(like: torch.Tensor) -> torch.Tensor:
    """Uniform random uint8 values shaped like `like`, from 64-bit draws of the default generator. It takes the
    tensor rather than its shape so that torch.compile cannot merge two draws for tensors of one shape into one."""
    n = like.numel()
    bits = torch.empty((n + 7) // 8, dtype=torch.int64, device=like.device).random_(-2 ** 63, None)  # all 64 bits
    return bits.view(torch.uint8)[:n].view(like.shape)


@random_bytes.register_fake
def _(like):
    return torch.empty(like.shape, dtype=torch.uint8, device=like.device)


class ByteDropout(nn.Dropout):
    """nn.Dropout with masks from random bytes: p in steps of 1/256, the same in eval mode (the identity)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        threshold = round(self.p * 256)
        keep = random_bytes(x.detach()) >= threshold  # (same shape as x), P(keep) = 1 - threshold/256
        return torch.where(keep, x * (256 / (256 - threshold)), 0.0)


def use_byte_dropout(model: nn.Module) -> None:
    """Swap every plain nn.Dropout with p > 0 in `model` for a ByteDropout of the same p, in place."""
    for module in list(model.modules()):
        for name, child in module.named_children():
            if type(child) is nn.Dropout and 0.0 < child.p < 1.0:
                setattr(module, name, ByteDropout(child.p))
