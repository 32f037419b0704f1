# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     name: python3
# ---

# %% [markdown]
# # 5. Data beats size
#
# Two ways to spend the same minutes of training: on a bigger model, or on better data. This chapter trains four
# models for the same time budget each and scores them on the same clean validation stories, in **bits per
# byte** (the cost of the text itself, whatever the tokenizer: lower is better):
#
# | run | model | training stories |
# |---|---|---|
# | `clean` | the quickstart shape (4 layers of 128) | TinyStories' sample, as written |
# | `shuffled` | the same | the same stories, but in half of them the words of each sentence are shuffled |
# | `smaller` | 2 layers of 64 | clean |
# | `bigger` | 6 layers of 256 | clean |
#
# The shuffled half is what a careless crawl gives you: the right words in the wrong order. Every run uses the same
# tokenizer (trained on the clean stories), so only the data and the model change.
#
# Needs nothing but time: four runs of `TINYLM_COURSE_MINUTES` minutes each (1 by default, about 4 minutes in all;
# from 3 minutes on a run compiles its model first, as `tinylm pretrain` does).

# %%
import glob
import json
import os
import random

import matplotlib

if not os.environ.get("JPY_PARENT_PID"):  # run as a script: write the figures instead of showing them
    matplotlib.use("Agg")
import matplotlib.pyplot as plt

from tinylm_hf.data import sources
from tinylm_hf.configuration_tinylm import TinyLMConfig
from tinylm_hf.presets import count_parameters, format_count
from tinylm_hf.training import pretrain

MINUTES = float(os.environ.get("TINYLM_COURSE_MINUTES", "1"))
OUT = os.environ.get("TINYLM_COURSE_OUT", "outputs/course")
RUNS = os.path.join(OUT, "05_runs")
os.makedirs(RUNS, exist_ok=True)
stories = sources.load_corpus(sources.SAMPLE)["train"]["text"]
print(f"{len(stories):,} training stories, {sum(len(s.encode()) for s in stories) / 1e6:.1f} MB")

# %% [markdown]
# ## Spoiling half the stories
#
# The words stay, their order goes: each sentence of every second story is shuffled. The validation stories (the
# ones every model is scored on) are untouched.

# %%
def shuffle_sentences(story: str, rng: random.Random) -> str:
    sentences = story.replace("!", ".").replace("?", ".").split(".")
    out = []
    for sentence in sentences:
        words = sentence.split()
        rng.shuffle(words)
        out.append(" ".join(words))
    return ". ".join(s for s in out if s) + "."


rng = random.Random(0)
spoiled = [shuffle_sentences(s, rng) if i % 2 else s for i, s in enumerate(stories)]
print(spoiled[1][:300])
shuffled_file = os.path.join(RUNS, "shuffled-stories.txt")
with open(shuffled_file, "w") as f:
    f.write("".join(f"{story}\n<|endoftext|>\n" for story in spoiled))

# %% [markdown]
# ## Four runs, one budget
#
# Each run is `tinylm pretrain` called from Python with the same arguments you would type, `--time_budget` minutes
# each. The `clean` run trains the tokenizer; the others reuse it (`--tokenizer_name`), and the clean runs share
# their token files (`--token_dir`).

# %%
CLEAN = ["--dataset", sources.SAMPLE]
RUN_SPECS = {  # name: (the training data, how its shape differs from the quickstart preset's)
    "clean": (CLEAN, None),
    "shuffled": (["--dataset", shuffled_file, "--validation_files", sources.SAMPLE_FILES[1]], None),
    "smaller": (CLEAN, "hidden_size=64,num_hidden_layers=2"),
    "bigger": (CLEAN, "hidden_size=256,num_hidden_layers=6"),
}
results = {}
for name, (data, shape) in RUN_SPECS.items():
    folder = os.path.join(RUNS, name)
    argv = ["--output_dir", folder, "--time_budget", str(MINUTES), "--preset", "quickstart", "--overwrite_output_dir",
            "--max_eval_samples", "200", "--eval_windows", "0", "--report_to", "none", *data]
    if shape:
        argv += ["--config_overrides", shape]
    if name != "clean":
        argv += ["--tokenizer_name", os.path.join(RUNS, "clean")]
    if data is CLEAN and name != "clean":
        argv += ["--token_dir", os.path.join(RUNS, "clean", "tokens")]
    print(f"\n=== {name}: tinylm pretrain {' '.join(argv)}")
    metrics = pretrain.main(argv)
    last_checkpoint = max(glob.glob(os.path.join(folder, "checkpoint-*")), key=lambda p: int(p.rsplit("-", 1)[1]))
    state = json.load(open(os.path.join(last_checkpoint, "trainer_state.json")))
    results[name] = {"bpb": metrics["eval_bpb"], "steps": state["global_step"],
                     "parameters": count_parameters(TinyLMConfig.from_pretrained(folder)),
                     "curve": [(h["step"], h["eval_bpb"]) for h in state["log_history"] if "eval_bpb" in h]}

for name, r in results.items():
    print(f"{name:>9}: {format_count(r['parameters']):>6} parameters, {r['steps']:5,} steps, "
          f"{r['bpb']:.3f} bits per byte")

# %% [markdown]
# ## The lesson in one plot
#
# Left: where each run ended. Right: how it got there, the validation bits per byte at each evaluation against the
# share of the budget spent (a bigger model takes fewer steps in the same minutes).

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
names = list(results)
colors = {"clean": "tab:green", "shuffled": "tab:red", "smaller": "tab:blue", "bigger": "tab:purple"}
bars = axes[0].bar(names, [results[n]["bpb"] for n in names], color=[colors[n] for n in names])
axes[0].bar_label(bars, fmt="%.3f")
axes[0].set_ylim(min(r["bpb"] for r in results.values()) * 0.9, max(r["bpb"] for r in results.values()) * 1.05)
axes[0].set_ylabel("validation bits per byte (lower is better)")
axes[0].set_title(f"{MINUTES:g} minute{'s' if MINUTES != 1 else ''} each, the same clean validation stories")
for name in names:
    steps, bpb = zip(*results[name]["curve"])
    axes[1].plot([s / results[name]["steps"] for s in steps], bpb, "o-", color=colors[name],
                 label=f"{name} ({format_count(results[name]['parameters'])}, {results[name]['steps']:,} steps)")
axes[1].set_xlabel("share of the budget (steps / final step)")
axes[1].set_ylabel("validation bits per byte")
axes[1].legend()
fig.tight_layout()
fig.savefig(os.path.join(OUT, "05_data_beats_size.png"))
with open(os.path.join(OUT, "05_results.json"), "w") as f:
    json.dump({"minutes": MINUTES, **{n: {k: v for k, v in r.items() if k != "curve"} for n, r in results.items()}},
              f, indent=1)

cost = results["shuffled"]["bpb"] - results["clean"]["bpb"]
gain = results["clean"]["bpb"] - results["bigger"]["bpb"]
print(f"spoiling half the stories costs {cost:+.3f} bits per byte; the bigger model "
      f"{'gains' if gain > 0 else 'loses'} {abs(gain):.3f} in the same minutes")
if MINUTES >= 1:
    assert cost > 0, "the shuffled stories did not cost anything: is the validation set the clean one?"

# %% [markdown]
# What to notice: the shuffled half hurts although that run saw the same words for the same minutes: half of its
# training teaches a word order that no validation story has. Size cuts both ways in a fixed budget: the bigger model
# (over four times the quickstart's parameters) learns more per step but takes far fewer steps, the smaller one the
# most steps with the least room; in one minute the smaller one is ahead, and which shape wins depends on the
# minutes you give (the step counts are in the legend). Spoiled data costs at every budget.
#
# **Try**: set `TINYLM_COURSE_MINUTES=3` (or 10) and run it again. Which gap closes with more time, the one from the
# spoiled data or the one from the model's size? Then spoil every story instead of every second one.
