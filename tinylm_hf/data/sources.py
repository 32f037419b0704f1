"""One place that turns `--dataset` into a `datasets.DatasetDict` with `train` and `validation` splits.

Everything goes through `datasets.load_dataset`, so the code that reads the Hub is the code the tests run:

    embedded                          the procedural story corpus shipped in the package (no download)
    tinystories-sample                real TinyStories stories shipped in the package (2 MiB + 1,000 for validation)
    roneneldan/TinyStories            a Hub dataset id (parquet, `text` column), or a local folder laid out like it
    roneneldan/TinyStories + --data_files TinyStoriesV2-GPT4-train.txt
                                      plain-text files of a Hub repository
    stories.txt                       a local text file: stories separated by `<|endoftext|>` lines
    data.jsonl / .json / .parquet / .csv
                                      local files with a `--text_column`

Plain-text sources are read by the `text` builder one row per line; the rows are re-assembled into documents
up to each `<|endoftext|>` line. A trailing document with no `<|endoftext|>` after it is kept (the reader cannot
tell a cut-off story from a complete one; the end of a file ends a document).
"""

import os
from collections.abc import Iterable, Iterator

import datasets
from datasets import Dataset, DatasetDict, IterableDataset, IterableDatasetDict

from ..errors import UserError, hub_hint
from ..tokenizer import EOS
from . import embedded

BUILDERS = {".txt": "text", ".text": "text", ".json": "json", ".jsonl": "json", ".parquet": "parquet",
            ".csv": "csv", ".gz": None}
VALIDATION_NAMES = ("validation", "valid", "val", "dev", "test")
SAMPLE = "tinystories-sample"  # roneneldan/TinyStories' first stories, in the package (tinystories/README.md)
SAMPLE_FILES = tuple(os.path.join(os.path.dirname(__file__), "tinystories", f"TinyStories-{split}-sample.txt.gz")
                     for split in ("train", "valid"))
AnyDict = DatasetDict | IterableDatasetDict


def documents(lines: Iterable[str]) -> Iterator[str]:
    """Join consecutive lines into documents, one per `<|endoftext|>` line; blank lines inside are kept."""
    buffer: list[str] = []
    for line in lines:
        if line.strip() == EOS:
            text = "\n".join(buffer).strip()
            if text:
                yield text
            buffer = []
        else:
            buffer.append(line)
    text = "\n".join(buffer).strip()
    if text:
        yield text


def texts(ds: Dataset | IterableDataset, batch_size: int = 1000) -> Iterator[str]:
    """The `text` column of a split, streamed in batches (never the whole corpus in memory)."""
    for batch in ds.iter(batch_size=batch_size):
        yield from batch["text"]


def _document_rows(rows):
    """Generator for `from_generator`: the documents of a line-per-row dataset, as {"text": ...} rows."""
    for text in documents(texts(rows, batch_size=10_000)):
        yield {"text": text}


def regroup_lines(ds: Dataset | IterableDataset) -> Dataset | IterableDataset:
    features = datasets.Features({"text": datasets.Value("string")})
    if isinstance(ds, IterableDataset):
        return IterableDataset.from_generator(_document_rows, gen_kwargs={"rows": ds}, features=features)
    if len(ds) == 0 or not any(line.strip() not in ("", EOS) for line in _first_lines(ds)):
        return Dataset.from_dict({"text": []}, features=features)
    return Dataset.from_generator(_document_rows, gen_kwargs={"rows": ds}, features=features)


def _first_lines(ds: Dataset, n: int = 100_000):
    """Enough lines to tell an empty corpus (only separators and blank lines) from a real one."""
    return ds.select(range(min(n, len(ds))))["text"]


def _is_local(path: str) -> bool:
    return os.path.exists(path) or path.startswith((".", "/", "~")) or os.path.splitext(path)[1] in BUILDERS


def _builder_for(path: str) -> str:
    stem, ext = os.path.splitext(path)
    if ext == ".gz":
        ext = os.path.splitext(stem)[1]
    builder = BUILDERS.get(ext)
    if builder is None:
        raise UserError(f"cannot tell the format of {path}: use .txt, .json, .jsonl, .parquet or .csv")
    return builder


def _as_list(files: str | list[str] | None) -> list[str]:
    if files is None:
        return []
    return [f for f in (files.split(",") if isinstance(files, str) else files) if f]


def load_raw(dataset: str, *, data_files=None, validation_files=None, streaming: bool = False,
             revision: str | None = None) -> AnyDict:
    """The splits of a source as `datasets` reads them (plain text still one row per line)."""
    train_files, val_files = _as_list(data_files), _as_list(validation_files)
    local_file = os.path.isfile(os.path.expanduser(dataset))
    if _is_local(dataset) and not os.path.exists(os.path.expanduser(dataset)):
        raise UserError(f"file not found: {dataset}")
    for path in ([dataset] if local_file else []) + (val_files if local_file or not train_files else []):
        if not os.path.exists(os.path.expanduser(path)):
            raise UserError(f"file not found: {path}")
        if os.path.getsize(os.path.expanduser(path)) == 0:
            raise UserError(f"the corpus {path} is empty: the file has no bytes")
    if local_file:
        files = {"train": [os.path.expanduser(dataset)] + train_files}
        if val_files:
            files["validation"] = val_files
        builder, files_arg = _builder_for(dataset), files
    else:
        builder = dataset
        files_arg = None
        if train_files:
            files_arg = {"train": train_files, **({"validation": val_files} if val_files else {})}
    try:
        loaded = datasets.load_dataset(builder, data_files=files_arg, streaming=streaming, revision=revision)
    except UnicodeDecodeError as err:
        raise UserError(f"{dataset} is not UTF-8 text ({err.reason} at byte {err.start}): convert it to UTF-8") from err
    except datasets.exceptions.DatasetGenerationError as err:
        cause = err.__cause__ or err.__context__
        if isinstance(cause, UnicodeDecodeError):
            raise UserError(f"{dataset} is not UTF-8 text ({cause.reason}): convert it to UTF-8") from err
        raise UserError(f"cannot read {dataset}: {' '.join(str(cause or err).split())[:300]}") from err
    except (FileNotFoundError, ConnectionError, OSError, ValueError) as err:
        if local_file or os.path.isdir(dataset):
            raise UserError(f"cannot read {dataset}: {' '.join(str(err).split())[:300]}") from err
        raise UserError(f"cannot load dataset {dataset!r}: {hub_hint(err)}") from err
    if not isinstance(loaded, (DatasetDict, IterableDatasetDict)):
        loaded = (IterableDatasetDict if streaming else DatasetDict)({"train": loaded})
    if not local_file and val_files and not train_files:
        raise UserError("--validation_files needs --data_files (or a local file as --dataset)")
    return loaded


def is_line_rows(ds) -> bool:
    return getattr(ds.info, "builder_name", None) == "text"


def as_documents(splits: AnyDict) -> AnyDict:
    """Every split read by the plain-text builder (one row per line) re-assembled into documents."""
    return type(splits)({name: regroup_lines(ds) if is_line_rows(ds) else ds for name, ds in splits.items()})


def limit_splits(splits: AnyDict, max_train: int | None, max_eval: int | None) -> AnyDict:
    return type(splits)({"train": limit(splits["train"], max_train),
                         "validation": limit(splits["validation"], max_eval)})


def limit(ds, n: int | None):
    if n is None:
        return ds
    return ds.take(n) if isinstance(ds, IterableDataset) else ds.select(range(min(n, len(ds))))


def load_corpus(dataset: str = "embedded", *, data_files=None, validation_files=None, text_column: str = "text",
                streaming: bool = False, revision: str | None = None, max_train_samples: int | None = None,
                max_eval_samples: int | None = None, validation_split_percentage: float = 5.0, seed: int = 42,
                embedded_stories: int = 20_000) -> AnyDict:
    """`train` and `validation` splits of documents, in a `text` column (other columns kept)."""
    if dataset == "embedded":
        splits = embedded_dataset(embedded_stories, seed)
    else:
        dataset, validation_files = files_of(dataset, validation_files)
        splits = load_raw(dataset, data_files=data_files, validation_files=validation_files, streaming=streaming,
                          revision=revision)
        splits = check_not_empty(with_text_column(as_documents(splits), text_column, dataset), dataset)
        splits = with_validation(splits, validation_split_percentage, seed, max_eval_samples)
    return check_not_empty(limit_splits(splits, max_train_samples, max_eval_samples), dataset)


def files_of(dataset: str, validation_files=None) -> tuple[str, str | list[str] | None]:
    """A named dataset shipped in the package as the files `load_raw` reads (its own validation file unless others
    are given); any other source as it is."""
    if dataset == SAMPLE:
        return SAMPLE_FILES[0], validation_files or SAMPLE_FILES[1]
    return dataset, validation_files


def hub_id(dataset: str) -> str | None:
    """The Hub data set a source is or comes from, for a model card's metadata: None for the embedded corpus and
    local files."""
    if dataset == SAMPLE:
        return "roneneldan/TinyStories"
    return None if dataset == "embedded" or os.path.exists(dataset) else dataset


def check_not_empty(splits: AnyDict, dataset: str) -> AnyDict:
    """A corpus with no training documents is a clear error (a streamed one cannot be counted here)."""
    if isinstance(splits["train"], Dataset) and len(splits["train"]) == 0:
        raise UserError(f"the corpus {dataset} is empty: no documents to train on")
    return splits


def with_text_column(splits: AnyDict, text_column: str, dataset: str) -> AnyDict:
    columns = splits["train"].column_names
    if columns is not None and text_column not in columns:
        raise UserError(f"{dataset} has no column {text_column!r} (columns: {', '.join(columns)}): "
                        f"pass --text_column with one of them")
    if text_column != "text":
        splits = type(splits)({k: ds.select_columns([text_column]).rename_column(text_column, "text")
                               for k, ds in splits.items()})
    return splits


def with_validation(splits: AnyDict, percentage: float, seed: int, max_eval_samples: int | None) -> AnyDict:
    """The source's own validation split when it has one, else a slice of train carved off with a fixed seed."""
    for name in VALIDATION_NAMES:
        if name in splits:
            return type(splits)({"train": splits["train"], "validation": splits[name]})
    train = splits["train"]
    if isinstance(train, IterableDataset):  # streaming: the first documents are held out
        n = max_eval_samples or 1000
        return IterableDatasetDict({"train": train.skip(n), "validation": train.take(n)})
    if len(train) < 2:
        raise UserError(f"the corpus has {len(train)} document(s): too few to carve off a validation split")
    n_val = max(1, int(len(train) * percentage / 100))
    parts = train.train_test_split(test_size=n_val, seed=seed)
    return DatasetDict({"train": parts["train"], "validation": parts["test"]})


def embedded_dataset(n_train: int, seed: int = 42, n_validation: int | None = None) -> DatasetDict:
    """The embedded corpus: stories with their Instruct metadata as columns (`text` is the story)."""
    n_validation = n_validation or max(50, n_train // 50)

    def as_dataset(stories):
        return Dataset.from_dict({
            "text": [s.story for s in stories], "words": [s.words for s in stories],
            "features": [s.features for s in stories], "summary": [s.summary for s in stories],
            "random_sentence": [s.random_sentence for s in stories]})

    # validation stories come from the same stream, past the training ones: never the same index
    return DatasetDict({"train": as_dataset(embedded.generate_stories(n_train, seed)),
                        "validation": as_dataset(embedded.generate_stories(n_validation, seed, start=n_train))})


def describe(dataset: str, *, data_files=None, validation_files=None, text_column: str = "text",
             revision: str | None = None, streaming: bool = False, seed: int = 42, **limits) -> str:
    """A stable description of a source, stored with token files (and the trained tokenizer) so that files built
    from another source are never reused. It names everything that decides the documents: the files (with their
    sizes and times), the embedded generator's version, the column, the revision, streaming, the seed (the embedded
    corpus and a carved-off validation split depend on it) and the limits."""
    parts = [dataset if dataset != "embedded" else f"embedded v{embedded.VERSION}"]
    dataset, validation_files = files_of(dataset, validation_files)
    if os.path.isfile(dataset):
        stat = os.stat(dataset)
        parts.append(f"{os.path.abspath(dataset)}:{stat.st_size}:{int(stat.st_mtime)}")
    parts += [f"files={_as_list(data_files)}", f"validation={_as_list(validation_files)}", f"column={text_column}",
              f"revision={revision}", f"streaming={streaming}", f"seed={seed}"]
    parts += [f"{k}={v}" for k, v in sorted(limits.items())]
    for path in _as_list(data_files) + _as_list(validation_files):
        if os.path.isfile(path):
            stat = os.stat(path)
            parts.append(f"{os.path.abspath(path)}:{stat.st_size}:{int(stat.st_mtime)}")
    return " ".join(parts)
