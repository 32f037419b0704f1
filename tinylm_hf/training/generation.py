"""Completions of a list of prompts, batched with left padding (one at a time for a model that cannot take it): the
samples shown at each evaluation (`SamplesCallback`: greedy) and the held-out answers `tinylm instruct` scores
(sampled, fixed seed)."""

import torch

from ..errors import UserError


def complete(model, tokenizer, prompts: list, *, chat: bool, max_new_tokens: int, sample: bool = False,
             temperature: float = 0.7, batch_size: int = 16, seed: int = 0) -> list[str]:
    """prompts: with `chat`, user messages (str) or whole chats (lists of {role, content}) through the chat
    template; else story openings after the BOS token. Greedy, or sampled (the model's generation defaults at
    `temperature`, seeded). The model is back in its own mode afterwards."""
    was_training, side = model.training, tokenizer.padding_side
    model.eval()
    tokenizer.padding_side = "left"
    torch.manual_seed(seed)
    if not getattr(model, "supports_left_padding", True):  # MEGABYTE: padding would shift its patches
        batch_size = 1
    out = []
    try:
        for i in range(0, len(prompts), batch_size):
            part = prompts[i:i + batch_size]
            if chat:
                chats = [[{"role": "user", "content": p}] if isinstance(p, str) else p for p in part]
                batch = tokenizer.apply_chat_template(chats, add_generation_prompt=True, padding=True,
                                                      return_tensors="pt", return_dict=True)
            else:
                batch = tokenizer([tokenizer.bos_token + p for p in part], padding=True, return_tensors="pt",
                                  add_special_tokens=False)
            length = batch["input_ids"].shape[1]
            room = model.config.max_position_embeddings - length  # never past the context
            if room < 1:
                raise UserError(f"a prompt is {length} tokens long, as long as the model's context: shorten it (for "
                                f"the held-out prompts of tinylm instruct: pass --eval_prompts 0 to skip them)")
            settings = {"temperature": temperature} if sample else {"do_sample": False}
            with torch.no_grad():
                generated = model.generate(**batch.to(model.device), max_new_tokens=min(max_new_tokens, room),
                                           pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                                           **settings)
            out += tokenizer.batch_decode(generated[:, length:], skip_special_tokens=True)
    finally:
        model.train(was_training)
        tokenizer.padding_side = side
    return out
