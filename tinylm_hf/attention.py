"""A faster attention for training on CPUs, plugged in through transformers' attention interface.

`modeling_tinylm.py` keeps the plain reference (`eager_attention_forward`). This one gives the same result and skips
the masked future, as flash attention does: the queries are the last T of the S positions, so a block of query rows
looks at no key after its own last row. Each block (at least 64 rows, at most 8 blocks) takes only the keys up to
there, and the masked scores above the diagonal, about half of them in training, are never computed. `baddbmm` adds
the mask inside the q k^T matmul, which saves a pass over the scores. Under torch.compile on a CPU this trains
faster than both the plain version and the SDPA kernel (whose CPU backward is slow): see the README's performance
section and `benchmarks/train_throughput.py`. Without gradients (the Trainer's evaluations, which run the model
uncompiled) it hands over to SDPA, whose fused forward is faster there: 25 batches of 32 x 256 tokens took 10-11 s
instead of 13-14 s (6-layer quickstart shape, 2-core AMX Xeon).

Importing `tinylm_hf` registers it as `attn_implementation="tinylm_causal_blocks"` (with the eager attention's
mask), which `hardware.default_attention` picks for compiled training on a CPU. It returns no attention
weights; asking the model for them switches to the reference. Remote-code users (the model folder without this
package) never see this name: saved configs do not record the attention implementation.
"""

import torch
import torch.nn.functional as F
from transformers import AttentionInterface, AttentionMaskInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import eager_mask

NAME = "tinylm_causal_blocks"


def causal_blocks_attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """query (B, H, T, D), key and value (B, K, S, D), attention_mask (B, 1, T, S) additive, or None for the plain
    causal mask: -> (B, T, H, D), None."""
    if not torch.is_grad_enabled():  # evaluation: SDPA's forward (with the same additive mask) is the faster one
        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout,
                                      **kwargs)
    if module.num_key_value_groups > 1:  # each k/v head serves a group of query heads
        key = key.repeat_interleave(module.num_key_value_groups, dim=1)  # (B, K, S, D) -> (B, H, S, D)
        value = value.repeat_interleave(module.num_key_value_groups, dim=1)
    B, H, T, D = query.shape
    S = key.shape[2]
    if attention_mask is None:  # causal: query row t (position S - T + t) looks at keys 0 .. S - T + t
        attention_mask = torch.full((T, S), torch.finfo(query.dtype).min, dtype=query.dtype,
                                    device=query.device).triu(S - T + 1)
    q, k, v = query.reshape(B * H, T, D), key.reshape(B * H, S, D), value.reshape(B * H, S, D)
    # 0 where a token may look, -inf (or the dtype's minimum) where not (the future, padding)
    mask = attention_mask.to(query.dtype).expand(B, H, T, S).reshape(B * H, T, S)
    rows = max(64, -(-T // 8))  # query rows per block
    blocks = []
    for start in range(0, T, rows):
        end = min(start + rows, T)
        seen = S - T + end  # keys this block may look at: up to its last row's position
        q_block, k_block, v_block = q[:, start:end], k[:, :seen], v[:, :seen]  # (B * H, t, D), (B * H, s, D) x 2
        # mask + q k^T * scale
        scores = torch.baddbmm(mask[:, start:end, :seen], q_block, k_block.transpose(1, 2), alpha=scaling)
        weights = F.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)  # (B * H, t, s)
        weights = F.dropout(weights, p=dropout, training=module.training)
        blocks.append(torch.bmm(weights, v_block))  # (B * H, t, D)
    out = torch.cat(blocks, dim=1) if len(blocks) > 1 else blocks[0]
    return out.view(B, H, T, D).transpose(1, 2).contiguous(), None  # (B, T, H, D)


AttentionInterface.register(NAME, causal_blocks_attention)
AttentionMaskInterface.register(NAME, eager_mask)
