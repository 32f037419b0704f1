"""`TinyLMTrainer`: the Trainer, with what our runs add to it, each through one of the Trainer's own methods:

- `create_optimizer`: Muon for the hidden matrices, AdamW for the rest (`--optimizer muon`, `optimizer.py`); every
  parameter group says its role (muon / decay / no_decay), which `PassWeightDecayCallback` reads;
- `_get_train_sampler`: whole batches only, so a compiled model never sees a second batch shape;
- `create_scheduler`: under a time budget, the schedule stretched over the steps the budget plans (`budget.py`);
- `compute_loss`: in training, the loss from the final hidden states without the (B, T, V) logits (`loss.py`);
- `log`: our callbacks' figures (tokens/s, bits per byte, ...) merged into each log entry before it is recorded.
"""

import functools

import torch
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import RandomSampler
from transformers import Trainer

from ..errors import UserError
from .budget import stretch
from .callbacks import LogMetricsCallback
from .loss import fused_causal_lm_loss
from .optimizer import MuonAdamW, muon_groups

SCHEDULE_REFERENCE_STEPS = 1_000_000  # a time budget's schedule is built this long, then stretched over the plan


class TinyLMTrainer(Trainer):
    """`make_trainer` (run.py) sets the callbacks the scripts read back as attributes: `samples`, `nan_guard`,
    `budget` (a `TimeBudgetCallback`, or None without --time_budget)."""

    samples = None
    nan_guard = None
    budget = None

    def create_optimizer(self, model=None):
        if self.optimizer is not None:
            return self.optimizer
        if self.args.optimizer == "muon":
            args = self.args
            self.optimizer = MuonAdamW(muon_groups(model or self.model, args.weight_decay), lr=args.learning_rate,
                                       betas=(args.adam_beta1, args.adam_beta2), eps=args.adam_epsilon, fused=True)
            return self.optimizer
        super().create_optimizer(model)
        for group in self.optimizer.param_groups:  # the Trainer's two groups: decayed, then norms and biases
            group.setdefault("role", "decay" if group["weight_decay"] else "no_decay")
        return self.optimizer

    def _get_train_sampler(self, train_dataset=None):
        """The Trainer's sampler; a random one draws a whole number of batches per pass: the last, partial batch of a
        pass is left out (other windows each pass), as nanoGPT's fixed-size batches never have one. A batch of another
        shape would make a compiled model compile again, for one step: 54 s on a 2-core EPYC at the end of the
        first pass over the TinyStories sample."""
        sampler = super()._get_train_sampler(train_dataset)
        if type(sampler) is not RandomSampler:
            return sampler
        batch = self.args.per_device_train_batch_size * max(1, self.args.world_size)
        whole = len(sampler.data_source) // batch * batch
        if whole in (0, len(sampler.data_source)):
            return sampler
        return RandomSampler(sampler.data_source, num_samples=whole, generator=sampler.generator)

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        """Under a time budget: args.lr_scheduler_type's schedule (warm-up ratio and kwargs as always) built over a
        long reference run by the Trainer itself, then read at step * reference / planned steps, so it ends when the
        budget's plan does, wherever the plan moves."""
        if self.budget is None or self.lr_scheduler is not None:
            return super().create_scheduler(num_training_steps, optimizer)
        scheduler = super().create_scheduler(SCHEDULE_REFERENCE_STEPS, optimizer)
        if not isinstance(scheduler, LambdaLR):
            raise UserError(f"--lr_scheduler_type {self.args.lr_scheduler_type} cannot follow a --time_budget: use "
                            f"cosine, cosine_with_min_lr, linear, constant_with_warmup or wsd")
        scheduler.lr_lambdas = [stretch(shape, SCHEDULE_REFERENCE_STEPS, lambda: self.budget.total_steps)
                                for shape in scheduler.lr_lambdas]
        return scheduler

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """In training, a TinyLM model is asked for its final hidden states (and the last position's logits only),
        and the loss comes from `fused_causal_lm_loss`: the same value and gradients as the model's own loss, without
        building the (B, T, V) logits. Through the model's own forward, so torch.compile and DDP see it as always.
        Evaluation, and any other model, take the Trainer's way."""
        labels = inputs.get("labels")
        if not (model.training and labels is not None and self.model.config.model_type == "tinylm"):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        features = {k: v for k, v in inputs.items() if k != "labels"}
        outputs = model(**features, output_hidden_states=True, logits_to_keep=1)
        loss = self.fused_loss(outputs.hidden_states[-1], self.model.get_output_embeddings().weight, labels,
                               num_items_in_batch=num_items_in_batch, softcap=self.model.config.logit_softcap)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self.accelerator.num_processes  # num_items_in_batch counts every process's tokens
        return (loss, outputs) if return_outputs else loss

    @functools.cached_property
    def fused_loss(self):
        """`fused_causal_lm_loss`, compiled where the model is (its own graph: as fast as inside the model's, 374 ms
        against 397 ms a forward and backward of quickstart-deep on a 2-core EPYC, where run eagerly it costs 441)."""
        return torch.compile(fused_causal_lm_loss) if self.args.torch_compile else fused_causal_lm_loss

    def add_figures(self, logs: dict[str, float]) -> dict[str, float]:
        for callback in self.callback_handler.callbacks:
            if isinstance(callback, LogMetricsCallback):
                callback.update_logs(logs, self.state, self.control)
        return logs

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        super().log(self.add_figures(logs), start_time)

