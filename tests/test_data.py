"""The data path: sources, the embedded corpus, Instruct records, tokenizers, token files."""

import json
import random
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tinylm_hf import UserError
from tinylm_hf.data import embedded, instruct, sources
from tinylm_hf.data.records import read_instruct_documents
from tinylm_hf.data.tokens import TokenWindows, build_token_files, load_tokens, read_meta
from tinylm_hf.tokenizer import (CHAT_TEMPLATE, EOS, bytes_per_token, fingerprint, from_gpt2_files, load_tokenizer,
                                 train_tokenizer)

from .conftest import GPT2_VOCAB, TRAIN_SAMPLE, VALID_SAMPLE, run_script


def raw_stories(path) -> list[str]:
    return [s.strip() for s in path.read_text().split(EOS) if s.strip()]


@pytest.fixture(scope="module")
def sample_corpus():
    return sources.load_corpus(str(TRAIN_SAMPLE), validation_files=str(VALID_SAMPLE))


def test_tinystories_text_file_reads_every_story(sample_corpus):
    train = list(sample_corpus["train"]["text"])
    assert len(train) == 317  # 316 complete stories + the cut-off last one, kept (documented)
    assert train == raw_stories(TRAIN_SAMPLE)
    assert train[-1].endswith("I promise!\"\nTh")  # the cut-off story, as it is in the file
    assert len(sample_corpus["validation"]) == 100


def test_token_files_decode_back_to_the_stories(sample_corpus, tiny_tokenizer, tmp_path):
    meta = build_token_files(sample_corpus, tiny_tokenizer, str(tmp_path), "sample")
    assert meta["dtype"] == "uint16" and meta["splits"]["train"]["documents"] == 317
    for split, path in (("train", TRAIN_SAMPLE), ("validation", VALID_SAMPLE)):
        ids = load_tokens(str(tmp_path), split)
        assert len(ids) == meta["splits"][split]["tokens"]
        text = tiny_tokenizer.decode(np.asarray(ids).tolist())
        assert text.split(EOS)[:-1] == raw_stories(path)


def test_hub_parquet_layout_gives_the_same_token_files(sample_corpus, tiny_tokenizer, tmp_path):
    """A folder laid out like roneneldan/TinyStories (data/*.parquet with a `text` column) reads the same."""
    repo = tmp_path / "TinyStories"
    (repo / "data").mkdir(parents=True)
    for split, name in (("train", "train-00000-of-00001"), ("validation", "validation-00000-of-00001")):
        pq.write_table(pa.table({"text": list(sample_corpus[split]["text"])}), repo / "data" / f"{name}.parquet")
    parquet = sources.load_corpus(str(repo))
    build_token_files(sample_corpus, tiny_tokenizer, str(tmp_path / "a"), "text")
    build_token_files(parquet, tiny_tokenizer, str(tmp_path / "b"), "parquet")
    for split in ("train", "validation"):
        assert (tmp_path / "a" / f"{split}.bin").read_bytes() == (tmp_path / "b" / f"{split}.bin").read_bytes()


def test_json_csv_and_text_column(tmp_path):
    rows = [{"body": f"story number {i}.", "id": i} for i in range(40)]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    corpus = sources.load_corpus(str(tmp_path / "d.jsonl"), text_column="body", validation_split_percentage=10)
    assert len(corpus["train"]) == 36 and len(corpus["validation"]) == 4
    assert sorted(list(corpus["train"]["text"]) + list(corpus["validation"]["text"])) == sorted(r["body"] for r in rows)
    again = sources.load_corpus(str(tmp_path / "d.jsonl"), text_column="body", validation_split_percentage=10)
    assert list(again["validation"]["text"]) == list(corpus["validation"]["text"])  # fixed seed
    with pytest.raises(UserError, match="no column 'text'.*body"):
        sources.load_corpus(str(tmp_path / "d.jsonl"))


def test_streaming_and_sample_limits():
    corpus = sources.load_corpus(str(TRAIN_SAMPLE), streaming=True, max_eval_samples=10, max_train_samples=5)
    assert [r["text"] for r in corpus["validation"]] == raw_stories(TRAIN_SAMPLE)[:10]
    assert [r["text"] for r in corpus["train"]] == raw_stories(TRAIN_SAMPLE)[10:15]


@pytest.mark.parametrize("content,error", [
    (None, "file not found"), ("", "empty"), ("\n<|endoftext|>\n\n", "empty"), (b"\xff\xfe bad \x80", "UTF-8")])
def test_bad_sources_say_what_is_wrong(tmp_path, content, error):
    path = tmp_path / "c.txt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(UserError, match=error):
        sources.load_corpus(str(path))


def test_embedded_corpus_is_deterministic_and_its_metadata_exact():
    a, b = embedded.generate_stories(500, seed=3), embedded.generate_stories(500, seed=3)
    assert [s.story for s in a] == [s.story for s in b]
    assert len({s.story for s in a}) == 500
    assert embedded.generate_story(123, 3).story == a[123].story  # story i does not depend on the others
    assert a[0].story != embedded.generate_stories(1, seed=4)[0].story
    for s in a:
        assert all(w in s.story for w in s.words) and len(s.words) == 3
        assert ("Dialogue" in s.features) == ('"' in s.story)
        assert ("MoralValue" in s.features) == (" learned " in s.story)
        assert s.summary.split()[0] in s.story
    features = {f for s in a for f in s.features}
    assert features == set(embedded.FEATURE_NAMES)
    # the pastime (a verb) and the trait come back in the ending: a word said once is never copied in pretraining
    verbs = {v.split()[0] for v in embedded.VERBS}
    traits = set(embedded.TRAITS) - {feeling for feeling, _ in embedded.FEELINGS}  # happy is both
    for s in a:
        for word in set(s.words) & (verbs | traits):
            assert len(re.findall(rf"\b{word}\b", s.story)) >= 2, (word, s.story)
    assert embedded.VERSION >= 2 and sources.describe("embedded").startswith(f"embedded v{embedded.VERSION} ")


INSTRUCT_TEXT = """Features: Dialogue, BadEnding
Words: quit, oak, gloomy
Summary: Sara and Ben were playing in the park.
Random sentence: The wind was cold.
Story: 

Sara and Ben were playing in the park.

"Let's go," said Sara.
<|endoftext|>
Random sentence: A cat sat.
Words: cat,  mat
Story: A cat sat on a mat.
<|endoftext|>
Summary: A summary only.
Story:
The last record has no end of text line.
"""


def test_instruct_reader_handles_the_awkward_cases(tmp_path):
    path = tmp_path / "TinyStories-Instruct-valid.txt"
    path.write_text(INSTRUCT_TEXT)
    chats = instruct.load_chat(str(path), validation_files=str(path))
    records = read_instruct_documents(sources.documents(INSTRUCT_TEXT.split("\n")))
    assert len(records) == 3 and len(chats["validation"]) == 3
    first, second, third = records
    assert first["features"] == ["Dialogue", "BadEnding"] and first["words"] == ["quit", "oak", "gloomy"]
    assert first["story"] == 'Sara and Ben were playing in the park.\n\n"Let\'s go," said Sara.'  # blank line kept
    assert second == {"features": [], "words": ["cat", "mat"], "summary": "", "random_sentence": "A cat sat.",
                      "story": "A cat sat on a mat."}  # reordered, missing fields
    assert third["summary"] == "A summary only." and third["story"].startswith("The last record")
    assert chats["validation"][1]["messages"][0]["content"] == \
        "Write a story.\nWords: cat, mat\nRandom sentence: A cat sat."
    # what each prompt asks for, beside the chat: held-out scoring reads these, not the prompt's text
    assert chats["validation"]["words"] == [["quit", "oak", "gloomy"], ["cat", "mat"], []]
    assert chats["validation"]["features"] == [["Dialogue", "BadEnding"], [], []]


def test_records_derived_from_plain_stories():
    story = raw_stories(VALID_SAMPLE)[0]
    record = instruct.derive_record(story, random.Random(0))
    assert len(record["words"]) == 3 and all(w in story.lower() for w in record["words"])
    assert record["random_sentence"] in story
    assert ("Dialogue" in record["features"]) == ('"' in story)


def test_bpe_training_special_tokens_and_chat_template(tiny_tokenizer, tmp_path):
    tiny_tokenizer.save_pretrained(tmp_path)
    loaded = load_tokenizer(str(tmp_path))
    assert loaded.eos_token == EOS and loaded.pad_token == "<|pad|>" and loaded.chat_template == CHAT_TEMPLATE
    assert fingerprint(loaded) == fingerprint(tiny_tokenizer)
    text = "Once upon a time, Lily found a ball. “Wow!” she said. 你好"
    assert loaded.decode(loaded(text)["input_ids"]) == text  # byte-level: every string round-trips
    assert bytes_per_token(loaded, [text]) > 1.5


def test_bytes_and_words_tokenizers(tmp_path):
    """--tokenizer_type bytes: one token per UTF-8 byte, lossless; words: lower-cased words (with their apostrophes),
    punctuation and line breaks, the most frequent ones, the others <|unk|>."""
    stories = raw_stories(TRAIN_SAMPLE)[:300]
    text = "Once upon a time, Lily didn't find the cat.\n“Wow!” she said. 你好"
    by_bytes = train_tokenizer(iter(stories), "bytes")
    assert len(by_bytes) == 256 + 5 and len(by_bytes(text)["input_ids"]) == len(text.encode())
    assert by_bytes.decode(by_bytes(text)["input_ids"]) == text
    words = train_tokenizer(iter(stories), "words", vocab_size=500)
    assert len(words) == 500
    words.save_pretrained(tmp_path)
    words = load_tokenizer(str(tmp_path))
    pieces = words.convert_ids_to_tokens(words(text)["input_ids"])
    assert pieces[:9] == ["once", "upon", "a", "time", ",", "lily", "didn't", "find", "the"]
    assert "\n" in pieces and pieces[-2:] == [".", "<|unk|>"]  # 你好: one word, not a frequent one
    assert words.decode(words("The dog ran. It was fun!")["input_ids"]) == "the dog ran. it was fun!"
    with pytest.raises(UserError, match="--tokenizer_type 'chars': use one of bpe, bytes, words"):
        train_tokenizer(iter(stories), "chars")


def test_gpt2_files_give_the_gpt2_tokenizer(gpt2_dir):
    """GPT-2's two files read as transformers' own GPT-2 tokenizer reads them (the oracle), plus our 4 tokens."""
    from transformers import GPT2Tokenizer

    tok = from_gpt2_files(str(gpt2_dir / "vocab.json"), str(gpt2_dir / "merges.txt"))
    stock = GPT2Tokenizer.from_pretrained(str(gpt2_dir))
    for text in ["Hello world", raw_stories(VALID_SAMPLE)[0], "  two spaces,\nnew lines and “quotes” 你好"]:
        ids = tok(text)["input_ids"]
        assert ids == stock(text)["input_ids"] and len(ids) < len(text.encode())  # merges applied
        assert tok.decode(ids) == text
    assert tok.eos_token_id == stock.eos_token_id == GPT2_VOCAB - 1 and len(tok) == GPT2_VOCAB + 4


def test_token_files_are_reused_rebuilt_or_refused(sample_corpus, tiny_tokenizer, gpt2_dir, tmp_path):
    small = type(sample_corpus)({k: v.select(range(50)) for k, v in sample_corpus.items()})
    messages = []
    build_token_files(small, tiny_tokenizer, str(tmp_path), "s", log=messages.append)
    build_token_files(small, tiny_tokenizer, str(tmp_path), "s", log=messages.append)
    assert messages[-1].startswith("reusing")
    other = from_gpt2_files(str(gpt2_dir / "vocab.json"), str(gpt2_dir / "merges.txt"))
    meta = build_token_files(small, other, str(tmp_path), "s", log=messages.append)
    assert "another tokenizer: rebuilding" in messages[-3] and meta["tokenizer"] == fingerprint(other)
    # an interrupted rebuild (train.bin rewritten, meta.json not yet) is noticed and never used
    (tmp_path / "train.bin").write_bytes(b"\0" * 10)
    assert read_meta(str(tmp_path)) is None
    with pytest.raises(UserError, match="no complete token files"):
        TokenWindows(str(tmp_path), "train", 16)


def test_windows_sequential_and_random(sample_corpus, tiny_tokenizer, tmp_path):
    build_token_files(sample_corpus, tiny_tokenizer, str(tmp_path), "s")
    ids = np.asarray(load_tokens(str(tmp_path), "train"))
    seq = TokenWindows(str(tmp_path), "train", 64)
    assert len(seq) == len(ids) // 64
    assert seq[3]["input_ids"].tolist() == ids[192:256].tolist()
    rnd = TokenWindows(str(tmp_path), "train", 64, random=True, seed=1)
    again = TokenWindows(str(tmp_path), "train", 64, random=True, seed=1)  # another worker or rank
    other = TokenWindows(str(tmp_path), "train", 64, random=True, seed=2)
    slices = np.lib.stride_tricks.sliding_window_view(ids, 64)

    def offsets(windows):  # where each of the first 8 windows starts in the file, less its place on the grid
        found = []
        for i in range(8):
            window = windows[i]["input_ids"].numpy()
            assert windows[i]["labels"].tolist() == window.tolist()
            found.append(int(np.flatnonzero((slices == window).all(axis=1))[0]) - 64 * i)  # a real 64-token slice
        return found

    first = offsets(rnd)
    assert len(set(first)) == 1 and 0 < first[0] < 64  # one offset off the grid for the whole pass
    assert offsets(again) == first and offsets(other) != first  # the same windows for a seed everywhere
    last = min(64 * (len(rnd) - 1) + first[0], len(ids) - 64)  # the last window moved back within the file if need be
    assert rnd[len(rnd) - 1]["input_ids"].tolist() == ids[last:last + 64].tolist()
    rnd.set_epoch(1), again.set_epoch(1)  # the next pass over the data: another offset, the same on every rank
    assert offsets(rnd) != first and offsets(rnd) == offsets(again)
    with pytest.raises(UserError, match="block_size"):
        TokenWindows(str(tmp_path), "validation", 10**7)


@pytest.mark.parametrize("loader_sets_it", [True, False])
def test_the_trainer_draws_other_random_windows_at_every_epoch(sample_corpus, tiny_tokenizer, tmp_path, monkeypatch,
                                                               loader_sets_it):
    """Our callback sets the epoch at every pass, also where accelerate's data loader does not pass it on to the
    dataset (under torchrun it sets its sampler's): without it each pass would draw the first one's windows."""
    from accelerate.data_loader import DataLoaderShard
    from transformers import Trainer, TrainingArguments, default_data_collator

    from tinylm_hf import TinyLMConfig, TinyLMForCausalLM
    from tinylm_hf.training.callbacks import DataEpochCallback

    if not loader_sets_it:
        monkeypatch.setattr(DataLoaderShard, "set_epoch", lambda self, epoch: None)

    class Recorded(TokenWindows):
        def __getitem__(self, i):
            drawn.append(super().__getitem__(i))
            return drawn[-1]

    drawn = []
    build_token_files(sample_corpus, tiny_tokenizer, str(tmp_path / "tokens"), "s")
    windows = Recorded(str(tmp_path / "tokens"), "train", 32, random=True)
    windows.n_tokens = 32 * 8 + 1  # 8 windows: an epoch is one step of 8
    model = TinyLMForCausalLM(TinyLMConfig(vocab_size=len(tiny_tokenizer), hidden_size=16, num_hidden_layers=1,
                                           num_attention_heads=2, max_position_embeddings=32))
    args = TrainingArguments(output_dir=str(tmp_path / "out"), max_steps=3, per_device_train_batch_size=8,
                             use_cpu=True, report_to="none", save_strategy="no", disable_tqdm=True)
    Trainer(model=model, args=args, train_dataset=windows, data_collator=default_data_collator,
            callbacks=[DataEpochCallback()]).train()
    assert windows.epoch == 2  # set at each of the 3 epochs
    passes = [sorted(tuple(w["input_ids"].tolist()) for w in drawn[8 * e:8 * e + 8]) for e in range(3)]
    assert passes[0] != passes[1] != passes[2]  # each pass other windows, not the same ones shuffled


BUILD_UNDER_LIMIT = """
import os, resource, sys
from tinylm_hf.data.sources import load_corpus
from tinylm_hf.data.tokens import build_token_files
from tinylm_hf.tokenizer import load_tokenizer
tokenizer = load_tokenizer(sys.argv[2])
corpus = load_corpus(sys.argv[1], streaming=True)
size = int(next(l for l in open("/proc/self/status") if l.startswith("VmSize")).split()[1]) * 1024
allowed = int(sys.argv[4]) * 2**20   # address space allowed on top of what the imports took
resource.setrlimit(resource.RLIMIT_AS, (size + allowed, size + allowed))
meta = build_token_files(corpus, tokenizer, sys.argv[3], "big", log=lambda *a: None)
print(meta["splits"]["train"]["documents"] + meta["splits"]["validation"]["documents"])
"""


@pytest.mark.slow
def test_token_files_from_a_corpus_larger_than_the_memory_allowed(tiny_tokenizer, tmp_path):
    """Streaming tokenization holds constant memory: a corpus larger than the address space the build may add
    (on top of the libraries') still builds. (The fixed part, thread stacks and allocator arenas, is ~200 MB.)"""
    path = tmp_path / "big.txt"
    n_docs, size, allowed_mb = 0, 0, 256
    with open(path, "w") as f:
        while size < 300 * 2**20:
            story = embedded.generate_story(n_docs).story + "\n<|endoftext|>\n"
            f.write(story)
            size += len(story)
            n_docs += 1
    tiny_tokenizer.save_pretrained(tmp_path / "tok")
    proc = run_script("-c", BUILD_UNDER_LIMIT, path, tmp_path / "tok", tmp_path / "tokens", allowed_mb,
                      env={"TOKENIZERS_PARALLELISM": "true"}, check=True)
    assert int(proc.stdout.strip().splitlines()[-1]) == n_docs
    assert size > allowed_mb * 2**20


@pytest.mark.slow
def test_train_tokenizer_script(tmp_path):
    out = tmp_path / "tok"
    proc = run_script("train_tokenizer.py", "--dataset", TRAIN_SAMPLE, "--vocab_size", "600", "--output_dir", out,
                      check=True)
    assert "bytes per token" in proc.stdout
    tok = load_tokenizer(str(out))
    assert len(tok) == 600 and tok.chat_template == CHAT_TEMPLATE
    assert "usage:" in run_script("train_tokenizer.py", "--help", check=True).stdout
    run_script("train_tokenizer.py", "--dataset", TRAIN_SAMPLE, "--tokenizer_type", "bytes", "--output_dir", out,
               check=True)
    assert len(load_tokenizer(str(out))) == 261


@pytest.mark.slow
@pytest.mark.parametrize("args,needle", [
    (["--dataset", "missing.txt"], "file not found: missing.txt"),
    (["--dataset", "EMPTY"], "empty"),
    (["--dataset", "JSONL", "--text_column", "story"], "no column 'story'"),
    (["--dataset", "JSONL", "--tokenizer_type", "chars"], "--tokenizer_type 'chars': use one of bpe, bytes, words"),
])
def test_train_tokenizer_bad_input_is_one_line(tmp_path, args, needle):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "d.jsonl").write_text('{"text": "a b c"}\n{"text": "d e f"}\n')
    args = [a.replace("EMPTY", str(tmp_path / "empty.txt")).replace("JSONL", str(tmp_path / "d.jsonl"))
            for a in args]
    proc = run_script("train_tokenizer.py", *args, "--output_dir", tmp_path / "out")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert needle in lines[-1] and "Traceback" not in proc.stderr


def test_the_tinystories_sample_in_the_package_loads_offline_as_its_notice_says():
    import gzip
    import hashlib

    notice = (sources.SAMPLE_FILES[0].rsplit("/", 1)[0] + "/README.md")
    text = open(notice).read()
    assert "CDLA-Sharing-1.0" in text
    for path in sources.SAMPLE_FILES:  # the very bytes of roneneldan/TinyStories' slices, as the notice says
        with gzip.open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        assert f"{digest}  {path.rsplit('/', 1)[1].removesuffix('.gz')}" in text
    corpus = sources.load_corpus("tinystories-sample")
    assert (len(corpus["train"]), len(corpus["validation"])) == (2317, 1000)  # the last story cut off, and kept
    assert corpus["train"][0]["text"].startswith("One day, a little girl named Lily found a needle in her room.")
    assert sources.hub_id("tinystories-sample") == "roneneldan/TinyStories" and sources.hub_id("embedded") is None
    assert str(sources.SAMPLE_FILES[0]) in sources.describe("tinystories-sample")  # token files know their source
    own = sources.load_corpus("tinystories-sample", validation_files=str(VALID_SAMPLE))  # another validation file
    assert len(own["validation"]) == 100
