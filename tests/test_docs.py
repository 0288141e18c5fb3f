"""The documents hold together: every section the code and docs cite exists in
docs/design.md, and every image a tracked Markdown file embeds is itself in git."""

import os
import re
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DESIGN = os.path.join(ROOT, "docs", "design.md")
CITATION = re.compile(r"design\.md §(\d+(?:\.\d+)?)(?:–(\d+(?:\.\d+)?))?")


def _tracked() -> list[str]:
    """The repository's tracked files (what a clone holds)."""
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout.split("\n")[:-1]


def _sections() -> set[str]:
    with open(DESIGN, encoding="utf-8") as fh:
        heads = re.findall(r"^#{2,3} (\d+(?:\.\d+)?)\.? ", fh.read(), flags=re.MULTILINE)
    return set(heads)


def test_the_design_document_has_its_sections():
    sections = _sections()
    assert {"1", "1.1", "1.2", "2", "3", "3.5", "3.6", "4", "4.1", "4.2", "4.3", "4.4", "5", "6"} <= sections


def _texts():
    for path in _tracked():
        if path.endswith((".py", ".md", ".toml")) or path.startswith(".ci/"):
            with open(os.path.join(ROOT, path), encoding="utf-8") as fh:
                yield path, fh.read()


def test_every_citation_of_the_design_points_at_a_section_that_exists():
    sections = _sections()
    cited = 0
    for path, text in _texts():
        if path == "tests/test_docs.py":  # the patterns below are written here
            continue
        assert "DESIGN §" not in text, f"{path} cites a design document the project does not contain"
        assert "/".join(("..", "shared")) not in text, f"{path} cites the steering side's files"
        refs = CITATION.findall(text)
        if path == "docs/design.md":  # its own cross-references: "§3.4", "(§4.4)"
            refs = [(m, "") for m in re.findall(r"§(\d+(?:\.\d+)?)", text)]
        for first, last in refs:
            cited += 1
            for number in (first, last):
                assert not number or number in sections, f"{path} cites docs/design.md §{number}, which does not exist"
    assert cited >= 30  # the package cites its design throughout


def test_every_image_a_tracked_markdown_file_embeds_is_tracked():
    tracked = set(_tracked())
    embedded = 0
    for path in (p for p in tracked if p.endswith(".md")):
        with open(os.path.join(ROOT, path), encoding="utf-8") as fh:
            for target in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", fh.read()):
                if target.startswith(("http://", "https://")):
                    continue
                image = os.path.normpath(os.path.join(os.path.dirname(path), target))
                embedded += 1
                assert image in tracked, f"{path} embeds {image}, which is not in git (a broken image on a clone)"
    assert embedded >= 15


@pytest.mark.parametrize("name", ["report.md", "copy.md"])
def test_the_committed_report_is_the_commands_output(name):
    """docs/reproduce/ is `attnsim reproduce` as written: its report links only figures it holds."""
    folder = os.path.join(ROOT, "docs", "reproduce")
    with open(os.path.join(folder, name), encoding="utf-8") as fh:
        figures = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", fh.read())
    assert figures and all(os.path.isfile(os.path.join(folder, f)) for f in figures)
