"""The Gradio demo: a real server on 127.0.0.1 driven by gradio_client, and a real headless Chromium."""

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from tinylm_hf.demo import Demo, weights_dtype
from tinylm_hf.errors import UserError
from tinylm_hf.hardware import cpu_has_bf16

from .conftest import ROOT, free_port, launch_chromium, needs_chromium, run_script, wait_for_page

GREEDY = dict(temperature=0.0, top_k=40, top_p=0.95, max_new_tokens=40, repetition_penalty=1.0, seed=0)


@pytest.fixture(scope="module")
def chat_model_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model, instruction-tuned a little (so it has a chat template), with snapshots at steps 15 and 30."""
    from tinylm_hf.training.instruct import main

    out = tmp_path_factory.mktemp("chat") / "model"
    main(["--model_name_or_path", str(tiny_model_dir), "--output_dir", str(out), "--max_steps", "30",
          "--eval_steps", "15", "--save_steps", "30", "--embedded_stories", "300", "--eval_prompts", "0",
          "--per_device_train_batch_size", "8", "--learning_rate", "3e-3"])
    return out


@pytest.fixture(scope="module")
def server(chat_model_dir):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "app.py", "--model", str(chat_model_dir)],  # the port as Spaces give it
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
                                 "GRADIO_SERVER_PORT": str(port)})
    url = f"http://127.0.0.1:{port}/"
    wait_for_page(url, proc)
    yield url
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server, verbose=False)


def chat(client, message, **kw):
    """One message in a new session (a new Client: an empty history), so calls are independent."""
    from gradio_client import Client

    s = {**GREEDY, **kw}
    answer, speed = Client(client.src, verbose=False).predict(message, s["temperature"], s["top_k"], s["top_p"], s["max_new_tokens"],
                                   s["repetition_penalty"], s["seed"], api_name="/chat")
    return answer, speed


def test_predict_returns_text_and_its_speed(client):
    answer, speed = chat(client, "Write a story.\nWords: ball, happy, jump")
    assert len(answer.split()) > 5 and "tokens/s" in speed


def test_submit_streams_growing_partial_answers(client):
    job = client.submit("Write a story.\nWords: kite, sad", *GREEDY.values(), api_name="/chat")
    partials = [p[0] for p in job]
    growing = [p for p in partials if p]
    assert len(set(growing)) >= 5  # many distinct partial answers, not one final blob
    assert all(b.startswith(a) for a, b in zip(growing, growing[1:]))


def test_sliders_change_the_output(client):
    prompt = "Write a story.\nWords: dog, run"
    assert chat(client, prompt)[0] == chat(client, prompt)[0]  # temperature 0: deterministic
    top1 = [chat(client, prompt, temperature=1.0, top_k=1, seed=s)[0] for s in (1, 2)]
    assert top1[0] == top1[1] == chat(client, prompt)[0]  # top-k 1 is greedy, whatever the seed
    hot = {chat(client, prompt, temperature=1.5, top_k=0, top_p=1.0, seed=s)[0] for s in (1, 2, 3)}
    assert len(hot) > 1  # different seeds differ at high temperature
    short = chat(client, prompt, max_new_tokens=5)[0]
    assert len(short) < len(chat(client, prompt)[0])


def test_eight_concurrent_clients_each_get_their_own_complete_answer(client):
    prompts = [f"Write a story.\nWords: {w}" for w in ("ball", "cat", "tree", "boat", "cake", "sun", "hat", "fox")]
    expected = [chat(client, p)[0] for p in prompts]  # one at a time

    with ThreadPoolExecutor(8) as pool:  # eight sessions at once
        answers = list(pool.map(lambda prompt: chat(client, prompt)[0], prompts))
    assert answers == expected  # complete, and nobody got somebody else's answer


@pytest.mark.slow
def test_demo_load_benchmark_serves_every_client_its_own_answer(chat_model_dir, tmp_path):
    proc = run_script("benchmarks/demo_load.py", "--model", chat_model_dir, "--clients", "4", "--quick",
                      "--max_new_tokens", "16", "--results_dir", tmp_path, check=True)
    assert "demo load: passed" in proc.stdout
    [row] = json.loads((tmp_path / "demo_load.json").read_text())["rows"]
    assert row["requests"] == row["completed"] == row["own answer"] == 4


@pytest.mark.slow
def test_each_session_keeps_its_own_history(server):
    from gradio_client import Client

    alice, bob = Client(server, verbose=False), Client(server, verbose=False)
    first = alice.predict("Write a story.\nWords: ball", *GREEDY.values(), api_name="/chat")[0]
    bob_alone = chat(alice, "Write a story.\nWords: cat")[0]  # what a new user gets
    assert bob.predict("Write a story.\nWords: cat", *GREEDY.values(), api_name="/chat")[0] == bob_alone
    assert first  # alice's turn did not reach bob's session


def test_bad_input_gets_a_clear_message_and_the_server_keeps_serving(client):
    assert chat(client, "")[0] == "Please type a message."
    assert "please shorten it" in chat(client, "word " * 20_000)[0]  # 100,000 characters
    assert "please shorten it" in chat(client, "word " * 600)[0]  # fits in characters, not in the context
    from gradio_client.exceptions import AppError

    absurd = dict(temperature=-5, top_k=10**9, top_p=7, max_new_tokens=10**9, repetition_penalty=-1)
    for name, value in absurd.items():  # the sliders' bounds: a clear message naming the limit
        with pytest.raises(AppError, match="(less than minimum|greater than maximum) value"):
            chat(client, "Write a story.\nWords: ball", **{name: value})
    clamped, _ = chat(client, "Write a story.\nWords: ball", temperature=0.9, seed=-3)  # unbounded: clamped to 0
    assert clamped == chat(client, "Write a story.\nWords: ball", temperature=0.9, seed=0)[0]
    assert len(clamped.split()) > 5
    assert len(chat(client, "Write a story.\nWords: ball")[0].split()) > 5  # still serving


def test_absurd_settings_are_clamped_for_direct_callers(chat_model_dir):
    demo = Demo(str(chat_model_dir))
    s = demo.settings(temperature=-5, top_k=10**9, top_p=7, max_new_tokens=10**9, repetition_penalty=-1, room=100)
    assert s["do_sample"] is False and s["max_new_tokens"] == 100 and s["repetition_penalty"] == 1.0
    s = demo.settings(temperature=float("nan"), top_k="many", top_p=0, max_new_tokens=0, repetition_penalty=9,
                      room=100)
    assert s["temperature"] == demo.defaults["temperature"] and s["top_k"] == demo.defaults["top_k"]
    assert s["top_p"] == 0.01 and s["max_new_tokens"] == 1 and s["repetition_penalty"] == 3.0


XRAY_TEXT = "Once upon a time, there was a little dog named Max. Max"


def xray(client, text=XRAY_TEXT, step="final", compare="none", temperature=1.0, top_k=0, top_p=1.0, layer=1, head=1,
         member=1):
    """The X-ray tab's views: tokens, surprisal, next-token bars, candidates, attention, logit lens (HTML); an
    ensemble's members view comes back too (empty for one model), taken out here."""
    *views, members, attention, lens = client.predict(text, step, compare, temperature, top_k, top_p, layer, head,
                                                      member, api_name="/xray")
    return (*views, attention, lens) if not members else (*views, members, attention, lens)


def test_xray_tab_shows_the_real_tokens_and_follows_the_sliders_and_snapshots(client, chat_model_dir):
    from tinylm_hf.tokenizer import load_tokenizer

    ids = load_tokenizer(str(chat_model_dir))(XRAY_TEXT, add_special_tokens=False)["input_ids"]
    tokens, surprisal, bars, _, attention, lens = xray(client)
    assert tokens.count("class='xray-token'") == len(ids) and f"<b>{len(ids)} tokens</b>" in tokens
    assert all(f"id {i}" in tokens for i in ids)
    assert surprisal.count("class='xray-surprisal'") == len(ids) and "<b>final</b>" in surprisal
    assert bars.count("class='xray-stage'") == 1  # temperature 1, no top-k, no top-p: the raw distribution only
    cold = xray(client, temperature=0.3)[2]
    assert cold != bars and cold.count("class='xray-stage'") == 2 and "<b>temperature</b>" in cold
    assert "(3 tokens kept)" in xray(client, top_k=3)[2]
    assert attention.count("<tr>") == len(ids) + 2  # the labels' row, then one row per token and the <bos> one
    assert lens.count("<tr>") == 1 + Demo(str(chat_model_dir)).model.config.num_hidden_layers
    early = xray(client, step="step 15", compare="final")[1]
    assert "<b>step 15</b>" in early and "<b>final</b>" in early and early != surprisal
    assert "Type a text" in xray(client, text="  ")[0]


def test_several_models_answer_as_one_and_the_xray_shows_each_member(chat_model_dir, tiny_model_dir, tmp_path):
    from gradio_client import Client

    from tinylm_hf.ensemble import Ensemble

    pair = [str(chat_model_dir), str(tiny_model_dir)]  # the tuned model and its base: one tokenizer
    demo = Demo(pair)
    assert isinstance(demo.model, Ensemble) and demo.can_chat  # member 1's tokenizer has the chat template
    assert "an ensemble of 2 models" in demo.info() and f"member 2: {tiny_model_dir}, weight 0.50" in demo.info()
    ids = demo.chat_ids("Write a story.", [], 40)
    expected = Ensemble.from_pretrained(pair).generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=40,
                                                       do_sample=False, pad_token_id=demo.tokenizer.pad_token_id)
    answer = list(demo.chat("Write a story.", [], **GREEDY))[-1][0]
    assert answer == demo.tokenizer.decode(expected[0, ids.shape[1]:], skip_special_tokens=True)
    first, second = demo.xray(XRAY_TEXT, member=1), demo.xray(XRAY_TEXT, member=2)
    assert first["members"] == second["members"] and first["attention"] != second["attention"]
    for name in ("member 1", "member 2", "ensemble"):
        assert f"<b>{name}</b>" in first["members"]
    assert first["members"].count("class='xray-disagrees'") == 3
    Ensemble.from_pretrained(pair).save_pretrained(str(tmp_path / "pair"))
    assert Demo(str(tmp_path / "pair")).xray(XRAY_TEXT)["members"] == first["members"]  # an ensemble folder
    port = free_port()  # the command line: --model twice, and the members view in the served tab
    proc = subprocess.Popen([sys.executable, "app.py", "--model", pair[0], "--model", pair[1]], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
                                 "GRADIO_SERVER_PORT": str(port)})
    try:
        wait_for_page(f"http://127.0.0.1:{port}/", proc)
        tokens, _, _, _, members, attention, lens = xray(Client(f"http://127.0.0.1:{port}/", verbose=False),
                                                          member=2)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert members == first["members"] and attention == second["attention"] and lens == second["lens"]


def test_step_mode_appends_what_greedy_generation_would(chat_model_dir):
    demo = Demo(str(chat_model_dir))
    text = XRAY_TEXT
    for _ in range(3):  # top-k 1: the one candidate is the greedy token
        [(_, token_id)] = demo.xray(text, top_k=1)["candidates"]
        ids = demo.tokenizer(demo.tokenizer.bos_token + text, add_special_tokens=False, return_tensors="pt")
        greedy = demo.model.generate(**ids, max_new_tokens=1, do_sample=False, pad_token_id=demo.tokenizer.pad_token_id)
        assert token_id == int(greedy[0, -1])
        text = demo.append(text, token_id)
    assert text.startswith(XRAY_TEXT) and len(text) > len(XRAY_TEXT)
    assert demo.snapshot_choices() == ["final", "step 0", "step 15", "step 30"]  # step 0: the base model
    with pytest.raises(UserError, match="no snapshot .step 7. in .*: pick one of final, step 0, step 15, step 30"):
        demo.xray(XRAY_TEXT, step="step 7")


def test_story_tab(client):
    story, speed = client.predict("Once upon a time", "", [], "", *GREEDY.values(), api_name="/story")
    assert story.startswith("Once upon a time") and len(story) > 30 and "tokens/s" in speed
    told, _ = client.predict("", "ball, happy", ["Dialogue"], "", *GREEDY.values(), api_name="/story")
    assert len(told.split()) > 5


def test_history_longer_than_the_context_is_cut_from_the_oldest_turns(chat_model_dir):
    demo = Demo(str(chat_model_dir))
    history = []
    for i in range(30):
        history += [{"role": "user", "content": f"Story {i}."}, {"role": "assistant", "content": "A cat."}]
    ids = demo.chat_ids("Now a dog.", history, 40)
    text = demo.tokenizer.decode(ids[0])
    assert ids.shape[1] <= demo.context - 16
    assert text.startswith("<|user|>\nStory ") and "Story 29." in text and "Story 0." not in text  # whole turns
    assert text.endswith("Now a dog.<|endoftext|><|assistant|>\n")  # the new message is whole


def test_pretrained_only_model_completes_stories_and_explains_the_chat(tiny_model_dir):
    demo = Demo(str(tiny_model_dir))
    assert not demo.can_chat
    answer = list(demo.chat("hello", []))[-1][0]
    assert "pretrained only" in answer and "tinylm instruct" in answer
    story = list(demo.story("Once upon a time", **GREEDY))[-1][0]
    assert story.startswith("Once upon a time") and len(story) > len("Once upon a time")


def test_weights_precision_follows_the_flag_and_both_write_stories(tiny_model_dir):
    for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        demo = Demo(str(tiny_model_dir), precision=precision)
        assert demo.model.dtype == dtype and f"{str(dtype).removeprefix('torch.')} weights" in demo.info()
        story = list(demo.story("Once upon a time", **GREEDY))[-1][0]
        assert story.startswith("Once upon a time") and len(story) > len("Once upon a time")
    assert Demo(str(tiny_model_dir)).model.dtype == torch.float32  # auto: small models are faster in fp32
    assert weights_dtype("auto", 15_000_000) == (torch.bfloat16 if cpu_has_bf16() else torch.float32)
    assert weights_dtype("auto", 3_000_000) == weights_dtype("fp32", 15_000_000) == torch.float32
    with pytest.raises(UserError, match="--precision 'fp8': use auto, bf16 or fp32"):
        Demo(str(tiny_model_dir), precision="fp8")


@pytest.mark.slow
def test_without_a_model_it_says_what_to_run(tmp_path):
    proc = run_script(ROOT / "app.py", cwd=tmp_path)
    assert proc.returncode == 2 and "run `tinylm pretrain`" in proc.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_the_demo_imports_no_trainer_and_no_datasets():
    proc = run_script("-c", "import sys, tinylm_hf.demo, tinylm_hf.ensemble; print(sorted(m for m in sys.modules if m.startswith("
                      "('transformers.trainer', 'datasets'))))", check=True)
    assert proc.stdout.strip() == "[]"


@pytest.mark.slow
@needs_chromium
def test_a_person_chats_in_a_real_browser(server, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page()
        page.goto(server)
        box = page.locator("#chat-input textarea")
        box.fill("Write a story.\nWords: ball, happy")
        box.press("Enter")
        bot = page.locator(".message.bot, [data-testid='bot']").last
        bot.wait_for(timeout=60_000)
        page.wait_for_function(
            "() => { const m = document.querySelectorAll('.message.bot, [data-testid=\"bot\"]');"
            " return m.length && m[m.length - 1].innerText.trim().split(/\\s+/).length > 5; }", timeout=60_000)
        text = bot.inner_text()
        shot = tmp_path / "demo.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert len(text.split()) > 5 and shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")


@pytest.mark.slow
@needs_chromium
def test_a_person_uses_the_xray_tab_in_a_real_browser(server, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(server)
        page.get_by_role("tab", name="X-ray").click()
        box = page.locator("#xray-text textarea")
        box.fill("Once upon a time, there was a cat named Tom. Tom")
        page.get_by_role("button", name="X-ray", exact=True).click()
        page.wait_for_function("() => document.querySelector('#xray-tokens').innerText.includes('Tom')",
                               timeout=60_000)
        stages = page.locator("#xray-next .xray-stage")
        page.wait_for_function("() => document.querySelectorAll('#xray-next .xray-stage').length == 1")
        raw_bars = page.locator("#xray-next").inner_html()
        slider = page.locator("#xray-temperature input[type=number]")
        slider.fill("0.3")
        slider.press("Enter")
        page.wait_for_function("() => document.querySelectorAll('#xray-next .xray-stage').length == 2",
                               timeout=60_000)
        assert stages.count() == 2 and page.locator("#xray-next").inner_html() != raw_bars
        page.locator("#xray-step input").click()
        page.get_by_role("option", name="step 15").click()
        page.wait_for_function("() => document.querySelector('#xray-surprisal').innerText.includes('step 15')",
                               timeout=60_000)
        shot = tmp_path / "xray.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")


def test_a_draft_model_gives_the_same_greedy_story_and_must_share_the_tokenizer(chat_model_dir, tiny_model_dir,
                                                                                 random_model_dirs):
    alone = Demo(str(chat_model_dir))
    drafted = Demo(str(chat_model_dir), draft=str(tiny_model_dir))  # the base model drafts for its tuned self
    assert "drafted by a" in drafted.info()
    drafts = []
    drafted.draft.register_forward_hook(lambda module, args, output: drafts.append(1))
    for opening in ("Once upon a time", "Tom and his dog"):
        assert list(drafted.story(opening, **GREEDY))[-1][0] == list(alone.story(opening, **GREEDY))[-1][0]
    assert len(drafts) > 10  # the draft did the drafting
    with pytest.raises(UserError, match="different tokenizers|vocabulary of"):
        Demo(str(chat_model_dir), draft=str(random_model_dirs["llama"]))
