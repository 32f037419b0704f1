"""The arguments of `run_pretrain.py` and `run_instruct.py`: ModelArguments, DataArguments and TrainingArguments
with defaults that suit small models, parsed by `HfArgumentParser` from the command line and/or a YAML or JSON
config file (`python run_pretrain.py configs/stories15m.yaml --max_steps 100`: the command line wins)."""

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import yaml
from huggingface_hub import get_token
from transformers import HfArgumentParser, TrainingArguments

from ..errors import UserError
from ..hardware import bf16_is_fast, check_precision
from ..presets import is_megabyte
from ..tokenizer import describe_kind
from . import policy


RUN_STARTED = "TINYLM_RUN_STARTED"  # set by `--ensemble` for its members: when the whole run began
TOKENIZER_TYPE_HELP = ("the tokenizer to train: bpe (byte-level BPE) | bytes (256 byte tokens, no merges) | words "
                       "(lower-cased words and punctuation; lossy): tinylm_hf.tokenizer.train_tokenizer")


@dataclass
class ModelArguments:
    preset: str | None = field(default=None, metadata={
        "help": "model shape: see `tinylm presets`. Default: quickstart, or quickstart-deep (6 layers) "
                "for a --time_budget of 10+ minutes"})
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "continue from this model folder or Hub id instead of a fresh preset"})
    revision: str | None = field(default=None, metadata={"help": "Hub revision (branch, tag or commit) to pin"})
    config_overrides: str | None = field(
        default=None, metadata={"help": "config fields over the preset, e.g. 'hidden_size=192,num_hidden_layers=6'"})
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "an existing tokenizer (folder, Hub id, or folder with GPT-2's vocab.json + "
                                        "merges.txt); default: train a byte-level BPE on the corpus"})
    vocab_size: int = field(default=4096, metadata={"help": "vocabulary size when training a tokenizer"})
    tokenizer_type: str | None = field(default=None, metadata={
        "help": TOKENIZER_TYPE_HELP + ". Default: bpe; bytes for the megabyte-* presets (byte models)"})
    attn_implementation: str = field(default="auto", metadata={
        "help": "auto (tinylm_causal_blocks on a CPU under torch.compile, where it is fastest; else sdpa) | sdpa | "
                "eager | flash_attention_2 ..."})
    allow_pickle_weights: bool = field(default=False, metadata={
        "help": "allow loading .bin (pickle) weights for --model_name_or_path; pickles can run code: only for "
                "files you trust"})

    def __post_init__(self):
        if self.tokenizer_type is None:
            self.tokenizer_type = "bytes" if is_megabyte(self.preset) else "bpe"
        elif is_megabyte(self.preset) and self.tokenizer_type != "bytes":
            raise UserError(f"--preset {self.preset} is a byte model: it reads raw bytes (--tokenizer_type bytes is "
                            f"implied); drop --tokenizer_type {self.tokenizer_type}")
        describe_kind(self.tokenizer_type, self.vocab_size)  # an unknown kind fails here, before any data is read


@dataclass
class DataArguments:
    dataset: str = field(default="embedded", metadata={
        "help": "embedded (the offline story generator), tinystories-sample (real TinyStories stories shipped in the "
                "package), a Hub dataset id, a local folder laid out like one, or a local .txt / .json / .jsonl / "
                ".parquet / .csv file"})
    dataset_revision: str | None = field(default=None, metadata={
        "help": "Hub revision (branch, tag or commit) of --dataset to pin"})
    data_files: str | None = field(default=None, metadata={"help": "training files inside the dataset (comma-separated)"})
    validation_files: str | None = field(default=None, metadata={"help": "validation files (comma-separated)"})
    text_column: str = field(default="text", metadata={"help": "the column holding the text"})
    streaming: bool = field(default=False, metadata={"help": "stream the source instead of caching it (huge corpora)"})
    max_train_samples: int | None = field(default=None, metadata={"help": "use only the first N training documents"})
    max_eval_samples: int | None = field(default=None, metadata={"help": "use only the first N validation documents"})
    validation_split_percentage: float = field(
        default=5.0, metadata={"help": "share of train held out when the source has no validation split"})
    embedded_stories: int = field(default=20_000, metadata={"help": "stories to generate for --dataset embedded"})
    block_size: int | None = field(default=None, metadata={"help": "tokens per training window (default: context)"})
    token_dir: str | None = field(default=None, metadata={
        "help": "token files folder (default: OUTPUT_DIR/tokens, rebuilt when the tokenizer changes; a folder named "
                "here is never overwritten with another tokenizer's files unless --rebuild_tokens)"})
    rebuild_tokens: bool = field(default=False, metadata={"help": "rebuild the token files even if they match"})
    random_windows: bool = field(default=True, metadata={
        "help": "other windows at every pass over the data: the grid of windows moves by an offset drawn anew at each "
                "pass; --random_windows false: the same windows every pass"})
    eval_windows: int = field(default=256, metadata={
        "help": "validation windows scored at each evaluation during training, spread evenly over the validation split "
                "(0: all of them); the model the run ends with is scored on all of them (eval_results.json, the card)"})
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "processes for tokenizing"})

    def corpus_kwargs(self, seed: int) -> dict:
        """The keyword arguments of `sources.load_corpus` (and `sources.describe`) for --dataset."""
        return dict(data_files=self.data_files, validation_files=self.validation_files, text_column=self.text_column,
                    streaming=self.streaming, revision=self.dataset_revision, max_train_samples=self.max_train_samples,
                    max_eval_samples=self.max_eval_samples, seed=seed, embedded_stories=self.embedded_stories,
                    validation_split_percentage=self.validation_split_percentage)


@dataclass
class TokenizerArguments:
    output_dir: str = field(default="outputs/tokenizer", metadata={"help": "folder to save the tokenizer in"})
    vocab_size: int = field(default=4096, metadata={"help": "vocabulary size of the tokenizer to train"})
    tokenizer_type: str = field(default="bpe", metadata={"help": TOKENIZER_TYPE_HELP})
    min_frequency: int = field(default=2, metadata={"help": "a merge must occur at least this often"})
    tokenizer_name: str | None = field(default=None, metadata={
        "help": "use this existing tokenizer instead of training one: a folder, a Hub id, or a folder with GPT-2's "
                "vocab.json + merges.txt (our special tokens and chat template are added)"})

    def __post_init__(self):
        describe_kind(self.tokenizer_type, self.vocab_size)


@dataclass
class TinyLMTrainingArguments(TrainingArguments):
    """TrainingArguments with defaults for small models: Muon for the hidden matrices and AdamW (0.9, 0.95) for the
    rest at 6e-3, weight decay by the passes over the data (0.1 to 1.2), warmup then cosine decay to 10% of the peak,
    clipping at 1.0, evaluation and checkpoints every fifth of the run, best model kept; with no --max_steps, a
    time budget of `default_time_budget` minutes sets the number of steps."""

    default_time_budget: ClassVar[float] = 7.0

    output_dir: str = field(default="outputs/quickstart", metadata={"help": "the model folder to write"})
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "allow writing into an output folder that holds something else"})
    precision: str = field(default="auto", metadata={
        "help": "auto (bf16 autocast where the CPU has AMX/AVX512-BF16 or the GPU has bf16, else fp32) | bf16 | fp32"})
    compile: str = field(default="auto", metadata={
        "help": "torch.compile the model: auto (on for runs of 500+ steps or time budgets of 3+ minutes, where its "
                "10-60 s pay back; needs a C compiler on CPUs) | on | off"})
    time_budget: float | None = field(default=None, metadata={
        "help": "minutes for the whole run (data, tokenizer, compiling, training, evaluation, saving): the number of "
                "steps is set from the measured step time so that warm-up and decay end with the budget; "
                "--max_steps caps it. Default: 7 minutes when --max_steps is not given"})
    project: str = field(default="tinylm", metadata={
        "help": "the project trackio groups runs in (--report_to trackio: a local dashboard, nothing uploaded; "
                "`trackio show --project tinylm` compares the runs; --run_name names one)"})
    ensemble: int = field(default=1, metadata={
        "help": "train K members side by side (K processes, the CPU threads split between them) in the same time "
                "budget: OUTPUT_DIR/member-1..K, each a model folder, and OUTPUT_DIR the ensemble that averages their "
                "probabilities (tinylm_hf/ensemble.py)"})
    member: int = field(default=0, metadata={
        "help": "the member of an ensemble this run is (set by --ensemble): its weights and data order come from "
                "seed --seed + member - 1, the corpus from --seed"})
    save_on_interrupt: bool = field(default=False, metadata={"help": "on Ctrl-C, save a checkpoint before exiting"})
    snapshots: bool = field(default=True, metadata={
        "help": "keep the weights of each evaluation in OUTPUT_DIR/snapshots/step-N (a few MB each, never pushed), "
                "to see the model learn: tinylm_hf.xray"})
    optimizer: str = field(default="muon", metadata={
        "help": "muon (default: Muon for the hidden weight matrices, AdamW for embeddings, norms and biases, one "
                "learning rate for both; tinylm_hf/training/optimizer.py) | adamw (AdamW for all, the one --optim "
                "names; 1e-3 is its learning rate for these models)"})
    learning_rate: float = 6e-3
    adam_beta2: float = 0.95
    weight_decay: float | None = field(default=None, metadata={
        "help": "decoupled weight decay. Default: from the passes the run makes over its training data, as the "
                "time budget or --max_steps sets them: 0.1 up to 4 passes, 1.2 from 8 (a small corpus seen many "
                "times overfits), between on a log scale (README, \"Quality per minute\")"})
    max_grad_norm: float = 1.0
    warmup_steps: float = 0.05
    lr_scheduler_type: str = "cosine_with_min_lr"
    lr_scheduler_kwargs: dict | str | None = field(default_factory=lambda: {"min_lr_rate": 0.1})
    optim: str = "adamw_torch_fused"
    per_device_train_batch_size: int = 16
    per_device_eval_batch_size: int = 32
    max_steps: int = field(default=-1, metadata={
        "help": "training steps (default: as many as the --time_budget allows)"})
    eval_strategy: str = "steps"
    eval_steps: float = field(default=0.2, metadata={
        "help": "evaluate every N steps, or every share of the run if < 1"})
    save_steps: float = field(default=0.2, metadata={"help": "save a checkpoint every N steps, or every share if < 1"})
    save_total_limit: int | None = 2
    logging_steps: float = 25
    load_best_model_at_end: bool = True
    metric_for_best_model: str | None = "eval_loss"
    report_to: None | str | list[str] = "none"
    logging_nan_inf_filter: bool = False
    dataloader_num_workers: int = 0
    save_only_model: bool = False

    @property
    def member_seed(self) -> int:
        """The seed of this run's weights and data order: --seed, or --seed + member - 1 for an ensemble's member
        (the corpus keeps --seed)."""
        return self.seed + max(self.member - 1, 0)

    def __post_init__(self):
        # --push_to_hub: we push the final folder ourselves (tinylm_hf.hub: the documented file list), after
        # training; the Trainer's own push would upload each checkpoint as it comes, optimizer states included.
        self.push_final_folder = self.push_to_hub
        self.push_to_hub = False
        if self.hub_token:
            raise UserError("--hub_token is not accepted (it would be saved with the checkpoints): set HF_TOKEN or "
                            "run `hf auth login`")
        if self.push_final_folder and not self.hub_model_id:
            raise UserError("--push_to_hub needs --hub_model_id USER/NAME")
        if self.push_final_folder and not get_token():
            raise UserError("--push_to_hub: no Hugging Face token: run `hf auth login` or set HF_TOKEN")
        check_precision(self.precision)
        if not torch.cuda.is_available() and not torch.backends.mps.is_available():
            # the Trainer's word for a CPU run: without it, bf16 autocast is refused and torchrun's processes never
            # join one process group (each trains alone: seen on CPUs without bf16 units, where it was not set)
            self.use_cpu = True
            self.dataloader_pin_memory = False  # nothing to pin for: the batches stay in CPU memory
        if self.optimizer not in ("adamw", "muon"):
            raise UserError(f"--optimizer {self.optimizer!r}: use adamw or muon")
        if self.compile not in ("auto", "on", "off"):
            raise UserError(f"--compile {self.compile!r}: use auto, on or off")
        if self.ensemble < 1:
            raise UserError(f"--ensemble {self.ensemble}: give the number of members, 1 or more")
        if self.time_budget is not None and not self.time_budget > 0:
            raise UserError(f"--time_budget {self.time_budget}: give a number of minutes above 0")
        # the time budget's clock; an ensemble's member keeps the whole run's (tinylm_hf/training/ensemble.py)
        self.started = float(os.environ.get(RUN_STARTED, time.time())) if self.member else time.time()
        # what was not said: the steps, compilation, precision, shape and weight decay (training/policy.py)
        self.choices = policy.choose(
            time_budget=self.time_budget, max_steps=self.max_steps, compile=self.compile, precision=self.precision,
            weight_decay=self.weight_decay, default_budget=self.default_time_budget, fp16=self.fp16,
            can_compile=torch.cuda.is_available() or shutil.which(os.environ.get("CXX", "g++")) is not None,
            bf16_is_fast=bf16_is_fast())
        self.time_budget, self.max_steps, self.step_cap = (self.choices.time_budget, self.choices.max_steps,
                                                           self.choices.step_cap)
        self.torch_compile = self.torch_compile or self.choices.compile
        if self.precision != "auto" or self.choices.bf16:  # (auto, no bf16 units: --bf16 true still asks for it)
            self.bf16 = self.choices.bf16
        self.weight_decay, self.auto_weight_decay = self.choices.weight_decay, self.choices.weight_decay_by_passes
        super().__post_init__()


def _config_file_args(path: str) -> list[str]:
    """A YAML or JSON file of `name: value` pairs as command-line arguments."""
    if not os.path.isfile(path):
        raise UserError(f"config file not found: {path}")
    with open(path) as f:
        try:
            values = json.load(f) if path.endswith(".json") else yaml.safe_load(f)
        except (ValueError, yaml.YAMLError) as err:
            raise UserError(f"cannot parse {path}: {' '.join(str(err).split())[:200]}") from err
    if not isinstance(values, dict):
        raise UserError(f"{path} must hold `name: value` pairs")
    args = []
    for key, value in values.items():
        if isinstance(value, dict):
            value = json.dumps(value)
        args.append(f"--{key}")
        args.extend(str(v) for v in value) if isinstance(value, list) else args.append(str(value))
    return args


def parse_args(classes: tuple, argv: list[str]) -> tuple:
    """Parse argv (optionally starting with a .yaml/.yml/.json config file) into the dataclasses."""
    parser = HfArgumentParser(classes)
    if argv and argv[0].endswith((".yaml", ".yml", ".json")):
        argv = _config_file_args(argv[0]) + argv[1:]
    try:
        return parser.parse_args_into_dataclasses(args=argv)
    except ValueError as err:  # a field's own check, e.g. an impossible TrainingArguments combination
        raise UserError(" ".join(str(err).split())) from err
