"""The exported web page, served on 127.0.0.1 and used in headless Chromium: transformers.js (copied in with
--offline) continues a story and answers a chat turn greedily exactly as PyTorch's generate() does, and no request
leaves 127.0.0.1."""

import functools
import http.server
import json
import threading

import pytest
import torch

from tinylm_hf.export.web import CDN, TRANSFORMERS_JS, web_folder
from tinylm_hf.modeling_tinylm import TinyLMForCausalLM
from tinylm_hf.tokenizer import load_tokenizer

from .conftest import JS, launch_chromium, needs_chromium, needs_js

NEW_TOKENS = 20


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def served(request, random_model_dirs, tmp_path):
    """(model folder, URL of its offline page)."""
    source = random_model_dirs[request.param]
    web_folder(str(source), str(tmp_path / "web"), offline=True, npm_dir=str(JS))
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(tmp_path / "web")))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield source, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def pytorch_greedy(source, ids: list[int]) -> list[int]:
    model = TinyLMForCausalLM.from_pretrained(source).eval()
    out = model.generate(torch.tensor([ids]), max_new_tokens=NEW_TOKENS, do_sample=False,
                         pad_token_id=model.config.pad_token_id)
    return out[0, len(ids):].tolist()


def run_page(page, mode: str, text: str, weights: str = "fp32") -> list[int]:
    """Pick the mode and weights, type the text, generate greedily; the new token ids the page reports."""
    page.check(f"input[name=mode][value={mode}]")
    page.select_option("#weights", weights)
    page.uncheck("#sample")
    page.fill("#max_new_tokens", str(NEW_TOKENS))
    page.fill("#prompt", text)
    page.wait_for_function("() => !document.getElementById('go').disabled", timeout=120_000)
    page.click("#go")
    page.wait_for_function("() => /^(done|error)/.test(document.getElementById('status').textContent)",
                           timeout=120_000)
    assert page.inner_text("#status").startswith("done"), page.inner_text("#status")
    return json.loads(page.get_attribute("#output", "data-ids"))


@pytest.mark.slow
@needs_chromium
@needs_js
@pytest.mark.parametrize("served", ["llama", "gpt", "qwen3"], indirect=True)
def test_the_offline_page_continues_and_chats_as_pytorch_does(served, tmp_path):
    from playwright.sync_api import sync_playwright

    source, url = served
    tokenizer = load_tokenizer(str(source))
    story = pytorch_greedy(source, tokenizer(tokenizer.bos_token + "Once upon a time",
                                             add_special_tokens=False)["input_ids"])
    turn = tokenizer.apply_chat_template([{"role": "user", "content": "Write a story."}], add_generation_prompt=True,
                                         return_dict=True)
    chat = pytorch_greedy(source, turn["input_ids"])
    requests = []
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page()
        page.on("request", lambda r: requests.append(r.url))
        page.goto(url)
        got_story = run_page(page, "story", "Once upon a time")
        shown = page.inner_text("#output")
        got_chat = run_page(page, "chat", "Write a story.")
        eight_bit = run_page(page, "story", "Once upon a time", weights="q8")
        four_bit = run_page(page, "story", "Once upon a time", weights="q4")
        choices = page.inner_text("#weights")
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        page.reload()  # a second visit: the 4-bit weights come from the browser's cache
        again = run_page(page, "story", "Once upon a time", weights="q4")
        browser.close()
    assert got_story == story and len(set(story)) > 3
    assert shown == "Once upon a time" + tokenizer.decode(story, skip_special_tokens=True)
    assert got_chat == chat
    for quantized in (eight_bit, four_bit):  # the 8-bit and 4-bit graphs run too
        assert len(quantized) == NEW_TOKENS or quantized[-1] == tokenizer.eos_token_id
    assert again == four_bit and sum(u.endswith("/onnx/model_q4.onnx") for u in requests) == 1
    assert [line.split(",")[0] for line in choices.splitlines()] == ["4-bit", "8-bit", "fp32"] and " MB" in choices
    outside = [u for u in requests if not u.startswith(url) and not u.startswith("blob:" + url.rstrip("/"))]
    assert requests and not outside, outside
    assert (tmp_path / "page.png").stat().st_size > 10_000


@pytest.mark.slow
@needs_chromium
@needs_js
def test_an_ensembles_page_averages_its_members_as_pytorchs_ensemble_does(random_model_dirs, tmp_path):
    from playwright.sync_api import sync_playwright

    from tinylm_hf.ensemble import Ensemble

    members = [str(random_model_dirs["llama"]), str(random_model_dirs["gpt"])]
    ensemble = Ensemble.from_pretrained(members, weights=[0.3, 0.7])
    ensemble.save_pretrained(str(tmp_path / "pair"))
    report = web_folder(str(tmp_path / "pair"), str(tmp_path / "web"), offline=True, npm_dir=str(JS))
    assert [sorted(r["files"]) for r in report["members"]] == [["model.onnx", "model_q4.onnx",
                                                                "model_quantized.onnx"]] * 2
    tokenizer = ensemble.tokenizer
    prompts = {"story": tokenizer(tokenizer.bos_token + "Once upon a time", add_special_tokens=False)["input_ids"],
               "chat": tokenizer.apply_chat_template([{"role": "user", "content": "Write a story."}],
                                                     add_generation_prompt=True, return_dict=True)["input_ids"]}
    expected = {mode: ensemble.generate(torch.tensor([ids]), max_new_tokens=NEW_TOKENS, do_sample=False,
                                        pad_token_id=tokenizer.pad_token_id)[0, len(ids):].tolist()
                for mode, ids in prompts.items()}
    alone = [pytorch_greedy(m, prompts["story"]) for m in members]
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(tmp_path / "web")))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as p:
            browser = launch_chromium(p)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/")
            story = run_page(page, "story", "Once upon a time")
            chat = run_page(page, "chat", "Write a story.")
            four_bit = run_page(page, "story", "Once upon a time", weights="q4")
            note = page.inner_text(".note")
            browser.close()
    finally:
        server.shutdown()
    assert story == expected["story"] and chat == expected["chat"] and len(set(story)) > 3
    assert all(story != a for a in alone)  # the average: neither member's own continuation
    assert len(four_bit) == NEW_TOKENS or four_bit[-1] == tokenizer.eos_token_id
    assert "an ensemble of 2 models" in note


def test_the_default_page_loads_the_pinned_transformers_js_from_its_cdn(random_model_dirs, tmp_path):
    web_folder(str(random_model_dirs["gpt"]), str(tmp_path / "web"))
    app = (tmp_path / "web" / "app.js").read_text()
    assert f'from "{CDN}"' in app and "{{" not in app and not (tmp_path / "web" / "runtime").exists()
    assert f"@{TRANSFORMERS_JS}/" in CDN
    assert json.loads((JS / "package.json").read_text())["dependencies"]["@huggingface/transformers"] == TRANSFORMERS_JS
    index = (tmp_path / "web" / "index.html").read_text()
    assert "{{" not in index and '<script type="module" src="app.js">' in index
    assert (tmp_path / "web" / "onnx" / "model_quantized.onnx").exists() and (tmp_path / "web" / "onnx" /
                                                                             "model_q4.onnx").exists()
    assert '<option value="q8" selected>8-bit, ' in index
