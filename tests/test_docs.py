"""The README and the docs tell the truth: every `tinylm` command they show exists and takes the flags shown with it,
the README stays a front door, and the docs site builds with `mkdocs build --strict` (broken links fail)."""

import re
import subprocess
import sys

import pytest

from tinylm_hf import cli

from .conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SUBCOMMANDS = {"export": ("onnx", "web", "gguf"), "hub": ("push", "pull")}
COMMAND = re.compile(r"^\s*tinylm ([a-z]+)\b([^#]*)")  # a command at the start of a line or span, then its flags


def shown_commands(pages) -> list[tuple[str, str, str, set[str]]]:
    """(page, command, subcommand or "", flags) for every `tinylm ...` that starts an inline code span or a line
    (or follows `&&`) in a code block."""
    found = []
    for page in pages:
        text = page.read_text()
        blocks = re.findall(r"```.*?```", text, re.S)
        lines = [part for block in blocks for line in block.splitlines() for part in line.split("&&")]
        spans = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
        for candidate in lines + [part for span in spans for part in span.split("&&")]:
            match = COMMAND.match(candidate)
            if not match:
                continue
            name, rest = match.groups()
            words = rest.split()
            sub = next((w for w in words[:1] if w in SUBCOMMANDS.get(name, ())), "")
            if not sub and "{" in rest:  # tinylm export {onnx,web,gguf} ...: each of them
                found += [(page.name, name, s, set()) for s in SUBCOMMANDS.get(name, ())]
            found.append((page.name, name, sub, set(re.findall(r"--[a-z][a-z0-9_]*", rest))))
    return found


def problems(pages, capsys) -> list[str]:
    """What the pages show that the `tinylm` command does not have: an unknown command, a flag its --help lacks."""
    found, helps = [], {}
    for page, name, sub, flags in shown_commands(pages):
        if name not in cli.COMMANDS:
            found.append(f"{page}: `tinylm {name}` is no command")
            continue
        if (name, sub) not in helps:
            with pytest.raises(SystemExit) as exit_:
                cli.main([name, *([sub] if sub else []), "--help"])
            assert exit_.value.code in (0, None)
            helps[name, sub] = capsys.readouterr().out
        missing = sorted(f for f in flags if f not in helps[name, sub] and f != "--debug")
        if missing:
            found.append(f"{page}: `tinylm {name} {sub}` does not take {missing}")
    return found


def test_every_tinylm_command_the_docs_show_exists_and_takes_its_flags(capsys):
    commands = shown_commands(PAGES)
    assert len(commands) > 30 and {name for _, name, _, _ in commands} == set(cli.COMMANDS)
    assert problems(PAGES, capsys) == []


def test_a_page_with_a_wrong_flag_or_command_is_caught(tmp_path, capsys):
    page = tmp_path / "page.md"
    page.write_text("Run `tinylm pretrain --time_budget 3 --no_such_flag 1`, then\n```bash\ntinylm trian\n```\n")
    assert problems([page], capsys) == ["page.md: `tinylm trian` is no command",  # code blocks come first
                                        "page.md: `tinylm pretrain ` does not take ['--no_such_flag']"]


def test_the_readme_is_a_front_door():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    test_command = next(line for line in readme.splitlines() if line.startswith('pip install -e ".[dev]" &&'))
    assert "pytest" in test_command  # .ci/run runs this line
    for link in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / link).is_file(), f"the README links to {link}, which does not exist"


@pytest.mark.slow
def test_the_docs_site_builds_strict(tmp_path):
    pytest.importorskip("mkdocs")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    performance = (tmp_path / "site" / "performance" / "index.html").read_text()
    assert "results time_to_quality" not in performance and "LlamaForCausalLM" in performance  # the tables came in
    reference = (tmp_path / "site" / "reference" / "index.html").read_text()
    assert "plan_steps" in reference and "TinyLMForCausalLM" in reference
