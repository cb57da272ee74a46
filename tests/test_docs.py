"""The docs cannot go stale quietly: every `zoolite` command that README.md and docs/ show parses with the
CLI's own parser (each subcommand and flag exists), every benchmark they name exists, the README stays
short, and the commands that need nothing but the repository run."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from zoolite.cli import _parser, main

ROOT = Path(__file__).parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def shown_lines() -> list[tuple[str, list[str]]]:
    """(page, the line's words) for every line of the pages' ```sh blocks, comments dropped."""
    lines, language = [], None  # language: that of the fenced block the line is in, None outside
    for page in PAGES:
        for line in page.read_text(encoding="utf-8").splitlines():
            if line.startswith("```"):
                language = line[3:].strip() if language is None else None
            elif language == "sh" and (words := shlex.split(line, comments=True)):
                lines.append((page.name, words))
    return lines


def zoolite_commands() -> list[tuple[str, list[str]]]:
    return [(page, words[1:]) for page, words in shown_lines() if Path(words[0]).name == "zoolite"]


def test_the_pages_show_commands_of_every_kind():
    shown = {args[0] for _, args in zoolite_commands()}
    assert {"run", "check", "predict", "evaluate", "report", "export", "serve"} <= shown
    assert {page for page, _ in zoolite_commands()} >= {"README.md", "usage.md"}


@pytest.mark.parametrize("page,args", zoolite_commands(), ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_every_zoolite_command_shown_parses(page, args, capsys):
    try:
        _parser().parse_args(args)
    except SystemExit as exit_:  # --help exits 0 once it has printed the help
        if exit_.code != 0:
            pytest.fail(f"{page}: `zoolite {' '.join(args)}` does not parse: {capsys.readouterr().err.strip()}")


def test_every_benchmark_shown_exists():
    scripts = [words[1] for _, words in shown_lines() if Path(words[0]).name == "python" and len(words) > 1]
    assert len(scripts) >= 10
    assert [s for s in scripts if not (ROOT / s).is_file()] == []


def test_the_readme_is_short_and_links_every_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode()) <= 12_000
    docs = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))
    assert len(docs) >= 3 and all(f"]({page})" in readme for page in docs)


def test_the_check_the_readme_shows_runs_on_the_bundled_sample(monkeypatch, capsys):
    """The one command shown that needs no data of the user's: run as shown (from the repository root), without
    the suspect labels, whose features would fill the session's cache that other tests' runs time."""
    shown = [args for page, args in zoolite_commands() if page == "README.md" and args[0] == "check"]
    assert shown
    monkeypatch.chdir(ROOT)
    assert main([*shown[0], "--json", "--no-suspects"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["photos"] == 160 and len(report["classes"]) == 10
