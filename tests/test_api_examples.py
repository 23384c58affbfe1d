"""The examples in the docstrings of the public Python API run, and say what they show.

Each function's examples run on their own (an empty namespace: they import what they use), in
a temporary working directory with the temporary folders they make inside it. The number of
examples that ran is checked too, so an example emptied or marked ``+SKIP`` does not pass unseen.
"""
from __future__ import annotations

import doctest
import io
import re
import tempfile
from pathlib import Path

import pytest
import torch

import tadkit

ROOT = Path(__file__).resolve().parents[1]
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

# examples (``>>>`` lines) that must run, per function; the +SKIP ones need the I3D checkpoint
RUN = {"load_config": 9, "build_detector": 10, "train": 10, "predict": 14, "evaluate": 12, "extract": 11,
       "detect": 9, "diagnose": 6, "fit": 11}
SKIPPED = {"extract": 1, "detect": 1, "fit": 1}


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """Work in ``tmp_path``, make the examples' temporary folders there, one torch thread."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield tmp_path
    torch.set_num_threads(threads)


def _examples(name: str) -> doctest.DocTest:
    (test,) = doctest.DocTestFinder(recurse=False).find(getattr(tadkit, name), f"tadkit.{name}", globs={})
    return test


@pytest.mark.parametrize("name", list(RUN))
def test_docstring_examples_run(name, scratch):
    test = _examples(name)
    skipped = sum(bool(ex.options.get(doctest.SKIP)) for ex in test.examples)
    assert skipped == SKIPPED.get(name, 0), f"tadkit.{name}: {skipped} examples marked +SKIP"
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report = io.StringIO()
    result = runner.run(test, out=report.write, clear_globs=True)
    assert result.failed == 0, report.getvalue()
    assert result.attempted == RUN[name], f"tadkit.{name}: {result.attempted} examples ran, {RUN[name]} expected"


def test_every_public_function_is_documented():
    """One line of summary, the parameters, return value, errors and an example, for each function."""
    assert set(RUN) == set(tadkit.__all__) - {"TadkitError", "__version__"}
    for name in RUN:
        doc = getattr(tadkit, name).__doc__
        assert doc and doc.splitlines()[0].strip().endswith("."), name
        for section in ("Parameters", "Returns", "Raises", "Example"):
            assert f"\n    {section}\n" in doc, (name, section)


def test_python_api_doc_examples_run(scratch, monkeypatch):
    """The ``pycon`` blocks of docs/python-api.md, in order, from the repository root."""
    monkeypatch.chdir(ROOT)
    text = (ROOT / "docs" / "python-api.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```pycon\n(.*?)^```", text, flags=re.S | re.M)
    test = doctest.DocTestParser().get_doctest("\n".join(blocks), {}, "docs/python-api.md", None, 0)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report = io.StringIO()
    result = runner.run(test, out=report.write, clear_globs=True)
    assert result.failed == 0, report.getvalue()
    assert len(blocks) == 6 and result.attempted == 30, (len(blocks), result.attempted)
