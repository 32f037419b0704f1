#!/usr/bin/env python
"""Data throughput: MB/s of building token files through our pipeline (a plain-text corpus read by
`datasets`, documents re-assembled, `datasets.map` tokenization, flat uint16 files) against `tokenizers`' own
`encode_batch` on the same text, side by side; in memory (cached Arrow) and streaming.

    python benchmarks/data_throughput.py [--quick] [--megabytes 40]
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import datasets  # noqa: E402

from benchmarks.common import add_results_argument, report  # noqa: E402
from tinylm_hf.data import embedded, sources  # noqa: E402
from tinylm_hf.data.tokens import build_token_files  # noqa: E402
from tinylm_hf.tokenizer import EOS, train_tokenizer  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megabytes", type=float, default=40)
    parser.add_argument("--quick", action="store_true")
    add_results_argument(parser)
    a = parser.parse_args()
    megabytes = 8 if a.quick else a.megabytes
    datasets.disable_caching()  # measure the work, not a cache hit
    work = tempfile.mkdtemp()
    try:
        path = os.path.join(work, "corpus.txt")
        stories, size = [], 0
        while size < megabytes * 2**20:
            story = embedded.generate_story(len(stories)).story
            stories.append(story)
            size += len(story) + len(EOS) + 2
        with open(path, "w") as f:
            f.write("".join(f"{s}\n{EOS}\n" for s in stories))
        tokenizer = train_tokenizer(stories[:2000], vocab_size=4096)
        mb = os.path.getsize(path) / 2**20
        rows = []

        start = time.perf_counter()
        encoded = tokenizer.backend_tokenizer.encode_batch(stories)
        seconds = time.perf_counter() - start
        rows.append({"path": "tokenizers encode_batch (text already in memory)", "MB": round(mb, 1),
                     "seconds": round(seconds, 2), "MB/s": round(mb / seconds, 2)})
        n_tokens = sum(len(e.ids) for e in encoded)
        for streaming in (False, True):
            for workers in ((1, 2) if not streaming else (1,)):
                fresh = os.path.join(work, f"corpus-{streaming}-{workers}.txt")  # a new file: no cache to reuse
                shutil.copyfile(path, fresh)
                start = time.perf_counter()
                corpus = sources.load_corpus(fresh, streaming=streaming, max_eval_samples=100 if streaming else None)
                meta = build_token_files(corpus, tokenizer, os.path.join(work, f"tok-{streaming}-{workers}"),
                                         f"bench-{streaming}-{workers}", num_proc=workers, log=lambda *x: None)
                seconds = time.perf_counter() - start
                rows.append({"path": f"token files, {'streaming' if streaming else 'cached'}, num_proc={workers}",
                             "MB": round(mb, 1), "seconds": round(seconds, 2), "MB/s": round(mb / seconds, 2)})
                tokens = meta["splits"]["train"]["tokens"] + meta["splits"]["validation"]["tokens"]
                assert tokens == n_tokens + len(stories), (tokens, n_tokens)  # the same tokens, plus one EOS each
        report("data_throughput", rows, {"corpus": f"{len(stories):,} embedded stories, {mb:.1f} MB",
                                         "tokens": n_tokens}, a.results_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
