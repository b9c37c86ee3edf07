# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The docs that ship with the collection: the hardware sections code cites exist, links resolve, and
galaxy.yml keeps docs/ in the artifact."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import pytest
import yaml

THIS = Path(__file__).resolve()
REPO = THIS.parents[3]
HARDWARE = REPO / "docs" / "hardware.md"
#: The sections code cites by number: they keep their numbers and titles (a new subject comes after them).
CITED_SECTIONS = {
    1: "Compute-module control lines",
    2: "I2C GPIO expanders used on carrier boards",
    3: "Boards already on the market",
    4: "Bootloader EEPROM image",
    5: "Bootloader config keys",
    6: "Network (TFTP) boot",
    7: "HTTP boot",
    8: "Console",
    9: "Node identity",
}
SCANNED_DIRS = ("plugins", "sim", "roles", "tests", "docs", "bench", "inventory", "playbooks", "meta", "scripts")
SCANNED_FILES = ("README.md", "Makefile", "galaxy.yml")
SCANNED_SUFFIXES = {".py", ".md", ".yml", ".yaml", ".j2", ".txt", ".cfg", ".sh", ".ini", ""}
SKIPPED_PARTS = {"__pycache__", "output", ".pytest_cache", ".hypothesis"}

# "HARDWARE.md section 4", "docs/hardware.md sections 4, 5 and 8", a citation broken across comment lines.
_SEP = r"[\s#*/]*"
# Section numbers have one or two digits: "section 8, 115200 8N1" cites section 8 alone.
_NUMBERS = r"(\d{1,2}(?!\d)(?:\s*(?:,|and|&)" + _SEP + r"\d{1,2}(?!\d))*)"
CITE_NUMBER_RE = re.compile(r"(?:docs/hardware|HARDWARE)\.md[`,)]?" + _SEP + r"sections?" + _SEP + _NUMBERS)
# docs/hardware.md, "Node identity": a citation by title.
CITE_TITLE_RE = re.compile(r"(?:docs/hardware|HARDWARE)\.md`?,\s*\"([^\"]+)\"")
HEADING_RE = re.compile(r"^## (\d+)\. (.+?)\s*$", re.M)
LINK_RE = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def hardware_sections():
    return {int(n): title for n, title in HEADING_RE.findall(HARDWARE.read_text(encoding="utf-8"))}


def scanned_files():
    for name in SCANNED_FILES:
        if (REPO / name).is_file():
            yield REPO / name
    for top in SCANNED_DIRS:
        for path in sorted((REPO / top).rglob("*")):
            # This file holds example citations, not real ones.
            if path == THIS:
                continue
            if path.is_file() and path.suffix in SCANNED_SUFFIXES and not SKIPPED_PARTS & set(path.parts):
                yield path


def citations():
    """``[(file, line, cited numbers, cited title)]`` for every citation of the hardware facts."""
    found = []
    for path in scanned_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        rel = str(path.relative_to(REPO))
        for match in CITE_NUMBER_RE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append((rel, line, [int(n) for n in re.findall(r"\d+", match.group(1))], None))
        for match in CITE_TITLE_RE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append((rel, line, [], match.group(1)))
    return found


def test_hardware_md_sections_are_numbered_from_one_in_order():
    text = HARDWARE.read_text(encoding="utf-8")
    numbers = [int(n) for n, dummy in HEADING_RE.findall(text)]
    assert numbers == list(range(1, len(numbers) + 1)), numbers


def test_hardware_md_keeps_the_nine_cited_sections():
    sections = hardware_sections()
    changed = {n: sections.get(n) for n, title in CITED_SECTIONS.items()
               if not (sections.get(n) or "").startswith(title)}
    assert not changed, changed


def test_every_hardware_section_names_its_sources():
    text = HARDWARE.read_text(encoding="utf-8")
    bodies = HEADING_RE.split(text)[1:]
    for number, title, body in zip(bodies[0::3], bodies[1::3], bodies[2::3]):
        assert re.search(r"^Sources: \S", body, re.M), "section %s (%s) has no 'Sources:' line" % (number, title)


def test_the_citation_scan_finds_the_citations():
    # The code cites the sections in about ninety places: a scan that finds few is broken.
    found = citations()
    assert len(found) > 50, found
    assert set(CITED_SECTIONS) <= {n for dummy, dummy, numbers, dummy in found for n in numbers}


def test_every_citation_names_a_section_that_exists():
    sections = hardware_sections()
    bad = []
    for rel, line, numbers, title in citations():
        for number in numbers:
            if number not in sections:
                bad.append("%s:%d cites section %d" % (rel, line, number))
        if title is not None and not any(heading.startswith(title) for heading in sections.values()):
            bad.append("%s:%d cites %r, not the start of any section title" % (rel, line, title))
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("text,numbers", [
    ("# HARDWARE.md section 4: the image", [4]),
    ("(docs/hardware.md sections 4, 5 and 8)", [4, 5, 8]),
    ("HARDWARE.md section\n# 10) of a wrapped comment", [10]),
    ("HARDWARE.md sections 6 and 9.", [6, 9]),
    ("(HARDWARE.md section 8, 115200 8N1)", [8]),
])
def test_citation_pattern(text, numbers):
    match = CITE_NUMBER_RE.search(text)
    assert match and [int(n) for n in re.findall(r"\d+", match.group(1))] == numbers


def test_title_citation_pattern():
    assert CITE_TITLE_RE.findall('(docs/hardware.md, "Node identity")') == ["Node identity"]
    assert CITE_TITLE_RE.findall('{"docs/hardware.md", "docs/internals.md"}') == []


def _markdown_files():
    return [REPO / "README.md"] + sorted((REPO / "docs").glob("*.md"))


def _links(path):
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.M | re.S)
    return LINK_RE.findall(text)


@pytest.mark.parametrize("path", _markdown_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_point_at_files_that_exist(path):
    missing = []
    for target in _links(path):
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue
        if not (path.parent / target.split("#", 1)[0]).exists():
            missing.append(target)
    assert not missing, missing


def test_readme_links_the_docs():
    targets = {target.split("#", 1)[0] for target in _links(REPO / "README.md")}
    assert {"docs/hardware.md", "docs/internals.md", "docs/testing.md"} <= targets, targets


def test_galaxy_build_ignore_keeps_docs():
    patterns = yaml.safe_load((REPO / "galaxy.yml").read_text(encoding="utf-8")).get("build_ignore") or []
    paths = ["docs"] + ["docs/%s" % p.name for p in sorted((REPO / "docs").glob("*.md"))]
    dropped = [(path, pattern) for path in paths for pattern in patterns if fnmatch.fnmatch(path, pattern)]
    assert not dropped, dropped
