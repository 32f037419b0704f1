"""The course's chapters (course/*.py, Jupytext percent notebooks) are valid notebooks and run as scripts on real
models: chapters 1, 2, 4 and 7 here on tiny ones; .ci/run runs them all on the quickstart models it trains (chapter
3 needs a run's snapshots, chapter 5 trains four models for a minute each, chapter 6 needs a pretrained and a tuned
model)."""

import os
import subprocess
import sys

import pytest

from .conftest import ROOT

CHAPTERS = sorted((ROOT / "course").glob("[0-9][0-9]_*.py"))


def test_every_chapter_is_a_notebook_with_text_code_and_a_question():
    jupytext = pytest.importorskip("jupytext")
    assert [c.name[:2] for c in CHAPTERS] == ["01", "02", "03", "04", "05", "06", "07"]
    for chapter in CHAPTERS:
        notebook = jupytext.read(chapter)
        kinds = [cell.cell_type for cell in notebook.cells]
        assert kinds[0] == "markdown" and "code" in kinds and kinds.count("markdown") >= 3, chapter.name
        assert "**Try**" in notebook.cells[-1].source, f"{chapter.name} ends without a question to try"
        assert f"course/{chapter.name}" in (ROOT / "docs" / "course.md").read_text()


def test_the_demo_names_an_existing_chapter_for_every_xray_view():
    from tinylm_hf import demo

    assert set(demo.COURSE) == {"tokens", "surprisal", "next", "attention", "lens"}
    for view, chapters in demo.COURSE.items():
        line = demo.course_line(view)
        for chapter in chapters:
            assert (ROOT / "course" / f"{chapter}.py").is_file() and f"course/{chapter}.py" in line, view


@pytest.mark.slow
@pytest.mark.parametrize("chapter, model, figure", [
    ("01_text_to_numbers", None, "01_bytes_per_token.png"),
    ("02_the_model_by_hand", "qwen3", "02_parameters.png"),  # grouped-query attention and QK-norm, by hand
    ("02_the_model_by_hand", "llama", "02_parameters.png"),
    ("04_next_token_and_sampling", "trained", "04_temperature.png"),
    ("07_ship_it", "llama", "07_sizes.png"),  # ONNX Runtime's greedy tokens, and llama.cpp's where js/ is installed
])
def test_a_chapter_runs_on_a_model(chapter, model, figure, random_model_dirs, tiny_model_dir, tmp_path):
    folder = tiny_model_dir if model == "trained" else random_model_dirs[model] if model else tmp_path / "none"
    env = {**os.environ, "TINYLM_MODEL": str(folder), "TINYLM_COURSE_OUT": str(tmp_path / "figures"),
           "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "course" / f"{chapter}.py")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "figures" / figure).stat().st_size > 10_000
    if chapter.startswith("02"):
        difference = float(proc.stdout.split("largest difference from TinyLMForCausalLM's logits: ")[1].split()[0])
        assert difference < 1e-5


@pytest.mark.slow
def test_the_by_hand_forward_fails_on_a_gpt_model_in_one_line(random_model_dirs, tmp_path):
    env = {**os.environ, "TINYLM_MODEL": str(random_model_dirs["gpt"]), "TINYLM_COURSE_OUT": str(tmp_path)}
    proc = subprocess.run([sys.executable, str(ROOT / "course" / "02_the_model_by_hand.py")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1 and "is of the gpt family" in proc.stderr.strip().splitlines()[-1]
