"""The Gradio demo: a streaming chat with the model, a story tab, and an X-ray tab that shows what the model does
with a text (tokens, surprisal, the next-token distribution under the sampling settings, attention, the logit lens),
at any snapshot of its training run.

    tinylm demo                          # the quickstart's model (outputs/quickstart-instruct or outputs/quickstart)
    tinylm demo --model DIR_OR_HUB_ID    # any tinylm model folder or Hub id (--revision to pin one)
    tinylm demo --share                  # a public gradio.live link (default: only this machine, 127.0.0.1)
    tinylm demo --model BIG --draft SMALL  # assisted decoding: SMALL drafts tokens, BIG checks them (same tokens)
    tinylm demo --model A --model B      # several models over one tokenizer answer as one (an ensemble), or
    tinylm demo --model ENSEMBLE_DIR     # an ensemble folder: the X-ray shows each member and where they disagree

Generation runs in a thread with a `TextIteratorStreamer`; one lock serialises the model (the queue takes many
users at once; each request streams in turn, with its own history, which the browser session holds). Every
input is checked or clamped: empty or over-long messages get a clear answer, absurd slider values are clamped.
"""

import argparse
import math
import os
import threading
import time

import torch
from transformers import TextIteratorStreamer

from . import xray, xray_html
from .configuration_megabyte import MegabyteConfig
from .data.embedded import FEATURE_NAMES
from .data.records import prompt_text
from .ensemble import Ensemble, is_ensemble, same_tokenizer
from .errors import UserError, run_cli
from .hardware import PRECISIONS, check_precision, cpu_has_bf16
from .loading import load_model
from .presets import format_count
from .tokenizer import load_tokenizer

DEFAULT_MODELS = ("outputs/quickstart-instruct", "outputs/quickstart")
MAX_MESSAGE_CHARS = 20_000
XRAY_TEXT = "Once upon a time, there was a little dog named Max. Max liked to play with his red ball. One day, Max"
KEPT_SNAPSHOTS = 4  # snapshot models kept loaded for the X-ray tab
COURSE = {  # each X-ray view: the course chapters (course/, in the repository) that explain it
    "tokens": ["01_text_to_numbers"],
    "surprisal": ["03_watch_it_learn", "05_data_beats_size"],
    "next": ["04_next_token_and_sampling"],
    "attention": ["02_the_model_by_hand", "03_watch_it_learn"],
    "lens": ["02_the_model_by_hand"],
}


def find_model(model: str | list[str] | None) -> str | list[str]:
    if model:
        return model[0] if isinstance(model, list) and len(model) == 1 else model
    for candidate in DEFAULT_MODELS:
        if os.path.exists(os.path.join(candidate, "config.json")):
            return candidate
    raise UserError("no model found in outputs/quickstart-instruct or outputs/quickstart: run "
                    "`tinylm pretrain` (then `tinylm instruct` for chat) first, or pass --model "
                    "DIR_OR_HUB_ID")


AUTO_BF16_MIN_PARAMETERS = 5_000_000


def weights_dtype(precision: str, parameters: int) -> torch.dtype:
    """The dtype of the demo's weights. It generates on the CPU, where each new token streams every weight through
    the cores: bf16 weights (half the bytes) pay once they outgrow the caches, on CPUs with bf16 units (AMX,
    AVX512-BF16). Smaller models are faster in fp32, bf16 kernels costing more per small matrix (measured by
    benchmarks/inference_precision.py: 0.76-0.85x at 1.3M parameters, 1.05-1.26x at 7.5M, 1.35-1.8x at
    15-32M). precision: one of PRECISIONS, checked by the caller."""
    if precision == "auto":
        return torch.bfloat16 if cpu_has_bf16() and parameters >= AUTO_BF16_MIN_PARAMETERS else torch.float32
    return torch.bfloat16 if precision == "bf16" else torch.float32


def clamp(value, low, high, default):
    try:
        value = float(value)
    except (TypeError, ValueError):
        return default
    return default if math.isnan(value) else min(max(value, low), high)


def shape(config) -> str:
    """One model's shape in a few words, e.g. "8 layers x 128 wide"."""
    if isinstance(config, MegabyteConfig):
        g, l = config.global_config, config.local_config
        return (f"patches of {config.patch_size} bytes, a global model of {g.num_hidden_layers} layers x "
                f"{g.hidden_size} wide and a local one of {l.num_hidden_layers} x {l.hidden_size}")
    return f"{config.num_hidden_layers} layers x {config.hidden_size} wide"


class Demo:
    """The model (or an ensemble of several), its tokenizer and the generation logic behind the UI (usable without
    Gradio). `name_or_path`: a model folder or Hub id, an ensemble folder, or a list of models to ensemble."""

    def __init__(self, name_or_path: str | list[str], revision: str | None = None, precision: str = "auto",
                 draft: str | None = None):
        names = [name_or_path] if isinstance(name_or_path, str) else list(name_or_path)
        self.name = " + ".join(names)
        check_precision(precision)  # before the load, which takes a while
        if len(names) > 1 or is_ensemble(names[0]):
            model = Ensemble.from_pretrained(names if len(names) > 1 else names[0], revision=revision).eval()
            self.members = list(model.members)  # the X-ray shows each, and their attention and logit lens
            first = model.config.members[0]
            self.tokenizer = load_tokenizer(first["path"], first.get("revision"), add_chat_template=False)
        else:
            model = load_model(names[0], revision).eval()
            self.members = []
            self.tokenizer = load_tokenizer(names[0], revision, add_chat_template=False)
        dtype = weights_dtype(precision, max(m.num_parameters() for m in self.members or [model]))
        for m in self.members or [model]:  # (an ensemble's mixing weights stay fp32)
            m.to(dtype)
        self.model = model
        self.draft = None  # a smaller model over the same tokenizer: transformers' assisted decoding
        if draft:
            same_tokenizer(self.tokenizer, load_tokenizer(draft, add_chat_template=False), self.name, draft)
            self.draft = load_model(draft).eval().to(self.model.dtype)
        self.can_chat = bool(self.tokenizer.chat_template)
        self.context = self.model.config.max_position_embeddings
        defaults = self.model.generation_config
        self.defaults = {"temperature": defaults.temperature or 0.8, "top_k": defaults.top_k or 40,
                         "top_p": defaults.top_p or 0.95, "max_new_tokens": min(defaults.max_new_tokens or 200,
                                                                                self.context - 1),
                         "repetition_penalty": defaults.repetition_penalty or 1.0}
        self.lock = threading.Lock()
        self.loaded_snapshots: dict[int, torch.nn.Module] = {}

    def info(self) -> str:
        c = self.model.config
        if self.members:
            what = f"an ensemble of {len(self.members)} models averaged in probability (" + "; ".join(
                f"member {i}: {m['path']}, weight {w:.2f}, {member.config.family} family, "
                f"{format_count(member.num_parameters())} parameters, {shape(member.config)}"
                for i, (m, w, member) in enumerate(zip(c.members, c.weights, self.members), 1)) + ")"
        else:
            what = f"{c.family} family, {format_count(self.model.num_parameters())} parameters, {shape(c)}"
        return (f"**{self.name}**: {what}, context {c.max_position_embeddings} tokens, "
                f"vocabulary {c.vocab_size}, {str(self.model.dtype).removeprefix('torch.')} weights; "
                f"{'instruction-tuned (chat enabled)' if self.can_chat else 'pretrained only'}"
                + (f"; drafted by a {format_count(self.draft.num_parameters())}-parameter model (assisted decoding)"
                   if self.draft is not None else ""))

    def settings(self, temperature, top_k, top_p, max_new_tokens, repetition_penalty, room: int) -> dict:
        """Generation arguments from the sliders, clamped to what makes sense (temperature 0: greedy)."""
        d = self.defaults
        temperature = clamp(temperature, 0.0, 5.0, d["temperature"])
        out = {"max_new_tokens": int(clamp(max_new_tokens, 1, max(1, room), min(d["max_new_tokens"], room))),
               "repetition_penalty": clamp(repetition_penalty, 1.0, 3.0, d["repetition_penalty"]),
               "pad_token_id": self.tokenizer.pad_token_id, "eos_token_id": self.tokenizer.eos_token_id}
        if temperature < 1e-3:
            return {**out, "do_sample": False, "temperature": None, "top_k": None, "top_p": None}
        return {**out, "do_sample": True, "temperature": temperature,
                "top_k": int(clamp(top_k, 0, self.model.config.vocab_size, d["top_k"])),
                "top_p": clamp(top_p, 0.01, 1.0, d["top_p"])}

    def chat_ids(self, message: str, history: list[dict], max_new_tokens) -> torch.Tensor | str:
        """The prompt through the chat template, cutting the oldest whole turns until it fits the context with
        room to answer; a message that cannot fit on its own gets an explanation (a str) instead."""
        turns = [{"role": m["role"], "content": m["content"]} for m in history or []
                 if isinstance(m, dict) and m.get("role") in ("user", "assistant") and isinstance(m.get("content"), str)]
        want = int(clamp(max_new_tokens, 1, self.context - 1, self.defaults["max_new_tokens"]))
        while True:
            ids = self.tokenizer.apply_chat_template(turns + [{"role": "user", "content": message}],
                                                     add_generation_prompt=True, return_tensors="pt",
                                                     return_dict=True)["input_ids"]
            if ids.shape[1] + min(want, 16) <= self.context or not turns:
                break
            turns = turns[2:] if len(turns) > 1 else []  # drop the oldest exchange
        if ids.shape[1] + 1 >= self.context:
            return (f"Your message is {ids.shape[1]} tokens long, but this model reads only {self.context} tokens "
                    f"at a time: please shorten it.")
        return ids

    def stream(self, ids: torch.Tensor, settings: dict, seed):
        """Yield (the growing answer, "") as tokens arrive, then (the answer, its speed)."""
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=120)
        settings = {**settings, "max_new_tokens": min(settings["max_new_tokens"], self.context - ids.shape[1])}

        def work():
            try:
                with torch.no_grad():
                    self.model.generate(ids, attention_mask=torch.ones_like(ids), streamer=streamer,
                                        assistant_model=self.draft, **settings)
            except Exception:  # the streamer must end even if generation fails
                streamer.end()
                raise

        with self.lock:
            torch.manual_seed(int(clamp(seed, 0, 2**31 - 1, 0)))
            start = time.perf_counter()
            thread = threading.Thread(target=work, daemon=True)
            thread.start()
            text = ""
            for piece in streamer:
                text += piece
                yield text, ""
            thread.join()
            seconds = time.perf_counter() - start
        n = len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        yield text or "(the model ended its answer at once: try a higher temperature or another seed)", \
            f"{n} tokens in {seconds:.2f} s ({n / max(seconds, 1e-6):.0f} tokens/s)"

    def chat(self, message, history, temperature=None, top_k=None, top_p=None, max_new_tokens=None,
             repetition_penalty=None, seed=0):
        """The chat handler: a generator of (partial answer, speed) pairs."""
        if not self.can_chat:
            yield ("This model is pretrained only (its tokenizer has no chat template), so it cannot follow a chat: "
                   "use the Story tab, or instruction-tune it with `tinylm instruct`."), ""
            return
        message = message if isinstance(message, str) else ""
        if not message.strip():
            yield "Please type a message.", ""
            return
        if len(message) > MAX_MESSAGE_CHARS:
            yield (f"Your message has {len(message):,} characters; this model reads a few hundred words at most: "
                   f"please shorten it."), ""
            return
        ids = self.chat_ids(message, history, max_new_tokens)
        if isinstance(ids, str):
            yield ids, ""
            return
        yield from self.stream(ids, self.settings(temperature, top_k, top_p, max_new_tokens, repetition_penalty,
                                                  self.context - ids.shape[1]), seed)

    def story(self, opening="", words="", features=None, summary="", temperature=None, top_k=None, top_p=None,
              max_new_tokens=None, repetition_penalty=None, seed=0):
        """The story tab: free completion of an opening line, or (instruction-tuned models) a story from
        TinyStories-Instruct fields."""
        opening = (opening if isinstance(opening, str) else "")[:MAX_MESSAGE_CHARS]
        words = [w.strip() for w in (words or "").split(",") if w.strip()]
        features = [f for f in (features or []) if f in FEATURE_NAMES]
        if self.can_chat and (words or features or (summary or "").strip()):
            record = {"words": words, "features": features, "summary": (summary or "").strip()}
            ids = self.chat_ids(prompt_text(record), [], max_new_tokens)
            prefix = ""
        else:
            ids = self.tokenizer(self.tokenizer.bos_token + opening, return_tensors="pt",
                                 add_special_tokens=False)["input_ids"][:, -(self.context - 16):]
            prefix = opening
        if isinstance(ids, str):
            yield ids, ""
            return
        settings = self.settings(temperature, top_k, top_p, max_new_tokens, repetition_penalty,
                                 self.context - ids.shape[1])
        for text, speed in self.stream(ids, settings, seed):
            yield prefix + text, speed


    # ---- X-ray ----------------------------------------------------------------------------------------------

    def snapshot_choices(self) -> list[str]:
        """"final", then "step N" for each snapshot the training run kept (model folders only: never on the Hub)."""
        steps = xray.snapshots(self.name) if os.path.isdir(self.name) else []
        return ["final"] + [f"step {step}" for step in steps]

    def model_at(self, choice: str):
        """The model as it is ("final"), or as it was at a snapshot ("step N"), loaded once."""
        if choice in (None, "", "final"):
            return self.model
        if choice not in self.snapshot_choices():
            raise UserError(f"no snapshot {choice!r} in {self.name}: pick one of {', '.join(self.snapshot_choices())}")
        step = int(choice.removeprefix("step "))
        if step not in self.loaded_snapshots:
            if len(self.loaded_snapshots) >= KEPT_SNAPSHOTS:
                self.loaded_snapshots.pop(next(iter(self.loaded_snapshots)))
            self.loaded_snapshots[step] = xray.load_snapshot(self.name, step).to(self.model.dtype)
        return self.loaded_snapshots[step]

    def attention_shape(self) -> tuple[int, int]:
        """The most (layers, heads) of the model's, or of any member's: the X-ray's sliders."""
        shapes = [xray.attention_shape(m.config) for m in self.members or [self.model]]
        return max(layers for layers, _ in shapes), max(heads for _, heads in shapes)

    def xray(self, text, step="final", compare="none", temperature=1.0, top_k=0, top_p=1.0, layer=1, head=1,
             member=1) -> dict:
        """The X-ray tab: HTML views of what the model (at `step`) does with `text`; surprisal compared with the
        model at `compare` unless "none"; the next-token stages under these sampling settings; one attention head
        (layer and head count from 1). Also `candidates`: (label, token id) of what sampling would draw from. An
        ensemble: `members`, each member's surprisal beside the ensemble's and where they disagree; the attention
        and logit lens are those of member `member` (from 1: the ensemble has none of its own)."""
        text = (text if isinstance(text, str) else "")[:MAX_MESSAGE_CHARS]
        if not text.strip():
            return {"error": "Type a text to see what the model does with it."}
        c = self.model.config
        temperature, top_p = clamp(temperature, 0.05, 5.0, 1.0), clamp(top_p, 0.01, 1.0, 1.0)
        top_k = int(clamp(top_k, 0, c.vocab_size, 0))
        with self.lock:
            model = self.model_at(step)
            inside = self.members[int(clamp(member, 1, len(self.members), 1)) - 1] if self.members else model
            layers, heads = xray.attention_shape(inside.config)
            layer, head = int(clamp(layer, 1, layers, 1)) - 1, int(clamp(head, 1, heads, 1)) - 1
            before = None if compare in (None, "", "none") else xray.surprisal(self.model_at(compare), self.tokenizer, text)
            members = xray.members(model, self.tokenizer, text) if self.members else None
            now = members["ensemble"] if members else xray.surprisal(model, self.tokenizer, text)  # (run once)
            following = xray.next_token(model, self.tokenizer, text, temperature, top_k, top_p)
            weights = xray.attention(inside, self.tokenizer, text)
            lens = xray.logit_lens(inside, self.tokenizer, text)
        drawn = following["stages"][-1]["top"]
        patch_size = c.patch_size if isinstance(c, MegabyteConfig) else None
        cut = xray.tokens(self.tokenizer, text, self.context - 1, patch_size)
        return {"tokens": xray_html.tokens_html(cut, text),
                "surprisal": xray_html.surprisal_html(now, before, step or "final", compare),
                "next": xray_html.next_token_html(following),
                "candidates": [(f"{t['text']!r} {t['p']:.0%}", t["id"]) for t in drawn],
                "attention": xray_html.attention_html(weights, layer, head), "lens": xray_html.logit_lens_html(lens),
                "members": xray_html.members_html(members, [f"member {i}" for i in range(1, len(self.members) + 1)])
                if members else ""}

    def append(self, text: str, token_id) -> str:
        """The text with one more token (step mode): through the token ids, so byte pieces join up."""
        ids = self.tokenizer(text or "", add_special_tokens=False)["input_ids"]
        return self.tokenizer.decode(ids + [int(token_id)], clean_up_tokenization_spaces=False)


def build_ui(demo: Demo):
    import gradio as gr

    d = demo.defaults
    limit = demo.context - 1

    def sliders():
        return [gr.Slider(0.0, 2.0, value=d["temperature"], step=0.05, label="temperature (0: greedy)"),
                gr.Slider(0, 200, value=d["top_k"], step=1, label="top-k (0: off)"),
                gr.Slider(0.05, 1.0, value=d["top_p"], step=0.05, label="top-p"),
                gr.Slider(1, limit, value=d["max_new_tokens"], step=1, label="max new tokens"),
                gr.Slider(1.0, 2.0, value=d["repetition_penalty"], step=0.05, label="repetition penalty"),
                gr.Number(value=0, precision=0, label="seed")]

    with gr.Blocks(title=f"tinylm-hf: {demo.name}") as ui:
        gr.Markdown(f"# tinylm-hf demo\n{demo.info()}")
        speed = gr.Markdown("", elem_id="speed")
        with gr.Tab("Chat"):
            if not demo.can_chat:
                gr.Markdown("**Chat is disabled**: this model is pretrained only (its tokenizer has no chat "
                            "template). Use the Story tab, or instruction-tune it with `tinylm instruct`.")

            with gr.Accordion("Generation settings", open=False):
                chat_controls = sliders()
            gr.ChatInterface(demo.chat, additional_inputs=chat_controls, additional_outputs=[speed],
                             concurrency_limit=16, api_name="chat",
                             textbox=gr.Textbox(placeholder="Ask for a story: Words: ball, happy, jump",
                                                interactive=demo.can_chat, elem_id="chat-input"))
        with gr.Tab("Story"):
            opening = gr.Textbox(label="Opening line", value="Once upon a time")
            with gr.Row(visible=demo.can_chat):
                words = gr.Textbox(label="Words (comma-separated)")
                features = gr.CheckboxGroup(list(FEATURE_NAMES), label="Features")
                summary = gr.Textbox(label="Summary")
            with gr.Accordion("Generation settings", open=False):
                controls = sliders()
            output = gr.Textbox(label="Story", lines=12)
            go = gr.Button("Write")

            go.click(demo.story, [opening, words, features, summary, *controls], [output, speed], api_name="story",
                     concurrency_limit=16)
        with gr.Tab("X-ray"):
            xray_tab(gr, ui, demo)
    return ui.queue(default_concurrency_limit=16, max_size=256)


def course_line(view: str) -> str:
    """Where the course explains an X-ray view, e.g. "The course: chapter 1, *Text to numbers*
    (`course/01_text_to_numbers.py`)"."""
    chapters = [f"chapter {int(c[:2])}, *{c[3:].replace('_', ' ').capitalize()}* (`course/{c}.py`)"
                for c in COURSE[view]]
    return "The course: " + "; ".join(chapters) + "."


def xray_tab(gr, ui, demo: Demo) -> None:
    """See inside: a text in, its tokens, surprisal, next-token bars, attention and logit lens out; the
    sampling sliders reshape the bars; a candidate picked is appended (step mode); with snapshots, any step of
    the training run, alone or compared with another; an ensemble's members side by side."""
    gr.Markdown("What the model does with a text. Hover over anything for its figures.")
    text = gr.Textbox(label="Text", value=XRAY_TEXT, lines=3, elem_id="xray-text")
    steps = demo.snapshot_choices()
    with gr.Row(visible=len(steps) > 1):
        step = gr.Dropdown(steps, value="final", label="the model at (snapshots of its training run)",
                           elem_id="xray-step")
        compare = gr.Dropdown(["none", *steps], value="none", label="compare the surprisal with",
                              elem_id="xray-compare")
    go = gr.Button("X-ray", variant="primary")
    gr.Markdown(f"### Tokens\nHow the text is cut (colours only tell tokens apart). {course_line('tokens')}")
    tokens = gr.HTML(elem_id="xray-tokens")
    gr.Markdown(f"### Surprisal\nHow unexpected each token was to the model, in bits. {course_line('surprisal')}")
    surprisal = gr.HTML(elem_id="xray-surprisal")
    gr.Markdown("### The next token\nThe model only predicts the next token: its distribution, then what "
                f"temperature, top-k and top-p make of it. {course_line('next')}")
    with gr.Row():
        temperature = gr.Slider(0.05, 2.0, value=1.0, step=0.05, label="temperature", elem_id="xray-temperature")
        top_k = gr.Slider(0, 100, value=0, step=1, label="top-k (0: off)", elem_id="xray-top-k")
        top_p = gr.Slider(0.05, 1.0, value=1.0, step=0.05, label="top-p", elem_id="xray-top-p")
    following = gr.HTML(elem_id="xray-next")
    pick = gr.Radio([], label="step mode: pick a candidate to append it", elem_id="xray-pick")
    with gr.Column(visible=bool(demo.members)):
        gr.Markdown("### The members\nEach member's surprisal beside the ensemble's, and where the members disagree "
                    "most about the next token.")
        members = gr.HTML(elem_id="xray-members")
    gr.Markdown(f"### Attention\n{course_line('attention')}")
    with gr.Row():
        layers, heads = demo.attention_shape()
        member = gr.Dropdown([(f"member {i}", i) for i in range(1, len(demo.members) + 1)] or [("the model", 1)],
                             value=1, label="attention and logit lens of", visible=bool(demo.members),
                             elem_id="xray-member")
        layer = gr.Slider(1, layers, value=1, step=1, label="layer", elem_id="xray-layer")
        head = gr.Slider(1, heads, value=1, step=1, label="head", elem_id="xray-head")
    attention = gr.HTML(elem_id="xray-attention")
    gr.Markdown(f"### Logit lens\n{course_line('lens')}")
    lens = gr.HTML(elem_id="xray-lens")

    def show(*values):
        try:
            v = demo.xray(*values)
        except UserError as e:
            v = {"error": str(e)}
        if "error" in v:
            return v["error"], "", "", gr.update(choices=[], value=None), "", "", ""
        return (v["tokens"], v["surprisal"], v["next"], gr.update(choices=v["candidates"], value=None),
                v["members"], v["attention"], v["lens"])

    inputs = [text, step, compare, temperature, top_k, top_p, layer, head, member]
    outputs = [tokens, surprisal, following, pick, members, attention, lens]
    go.click(show, inputs, outputs, api_name="xray")
    for trigger in (text.submit, step.change, compare.change, temperature.change, top_k.change, top_p.change,
                    layer.change, head.change, member.change):
        trigger(show, inputs, outputs, api_name=False, trigger_mode="always_last")
    pick.input(demo.append, [text, pick], text, api_name=False).then(show, inputs, outputs, api_name=False)
    ui.load(show, inputs, outputs, api_name=False)  # the tab opens with its views drawn


def launch(model: str | list[str] | None, revision: str | None = None, server_name: str = "127.0.0.1", port: int = 7860,
           share: bool = False, precision: str = "auto", draft: str | None = None) -> None:
    demo = Demo(find_model(model), revision, precision, draft)
    print(demo.info())
    build_ui(demo).launch(server_name=server_name, server_port=port, share=share)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="tinylm demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append",
                        help="model folder or Hub id (default: the quickstart's output); an ensemble folder; given "
                             "more than once, the models answer as one ensemble (they must share one tokenizer)")
    parser.add_argument("--revision", help="Hub revision to pin")
    parser.add_argument("--server_name", "--server-name", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                        help="address to bind (0.0.0.0: every interface; default: $GRADIO_SERVER_NAME or 127.0.0.1)")
    parser.add_argument("--server_port", "--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)),
                        help="port (default: $GRADIO_SERVER_PORT or 7860)")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="weights in memory (auto: bf16 for models of 5M+ parameters on CPUs with bf16 "
                             "units, AMX or AVX512-BF16, where it generates faster; else fp32)")
    parser.add_argument("--draft", help="a smaller model over the same tokenizer that drafts tokens for the model to "
                                        "check (transformers' assisted decoding): the same tokens, sooner")
    args = parser.parse_args(argv)
    launch(args.model, args.revision, server_name=args.server_name, port=args.server_port, share=args.share,
           precision=args.precision, draft=args.draft)


if __name__ == "__main__":
    run_cli(main)
