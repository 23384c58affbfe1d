"""benchmarks/render.py: results files to docs/benchmarks.md."""
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render = _load("render")

EVAL = {
    "benchmark": "eval_speed", "command": "python benchmarks/eval_speed.py --repeat 1", "date": "2025-01-02T03:04:05Z",
    "commit": "0123456789abcdef0123456789abcdef01234567-dirty", "cpu": "Test CPU", "cpu_count": 4, "threads": 4,
    "python": "3.11.7", "torch": "2.13.0", "setting": "best of 1 run",
    "columns": ["case", "videos", "tadkit_s", "official_s"],
    "rows": [{"case": "thumos14", "videos": 213, "tadkit_s": 0.4231, "official_s": None},
             {"case": "activitynet", "videos": 4728, "tadkit_s": 3.5}],
}
TAGS = {
    "benchmark": "tags_memory", "command": "python benchmarks/tags_memory.py --lengths 256",
    "date": "2025-01-02T03:04:05Z",
    "commit": "fedcba9876543210fedcba9876543210fedcba98", "cpu": "Test CPU", "threads": 2, "device": "cpu",
    "python": "3.11.7", "torch": "2.13.0", "columns": ["T", "tags_train_MiB", "model", "train_s_per_epoch"],
    "rows": [{"table": "memory", "T": 256, "tags_train_MiB": 120.5},
             {"table": "time", "model": "tags", "train_s_per_epoch": 12.25}],
}


def _write(folder: Path, *results: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for data in results:
        (folder / f"{data['benchmark']}.json").write_text(json.dumps(data, sort_keys=True))
    return folder


def _table(text: str, first_header: str) -> list[list[str]]:
    """The cells of the Markdown table whose first header cell is ``first_header`` (header and separator dropped)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip()[1:-1].split(" | ")])
    return rows


def test_cells_equal_the_input_values(tmp_path):
    text = render.render(_write(tmp_path / "results", EVAL))
    assert "| case | videos | tadkit_s | official_s |" in text
    rows = _table(text, "case")
    assert [r[0] for r in rows] == ["thumos14", "activitynet"]
    assert [int(r[1]) for r in rows] == [213, 4728]
    assert [float(r[2]) for r in rows] == [0.4231, 3.5]
    assert rows[0][3] == "n/a" and rows[1][3] == ""          # None, and a key the row does not have
    assert "`python benchmarks/eval_speed.py --repeat 1`" in text
    assert "Test CPU (4 CPUs) · 4 threads" in text and "2025-01-02T03:04:05Z" in text
    assert "commit 0123456789ab-dirty" in text


def test_rows_grouped_by_table(tmp_path):
    text = render.render(_write(tmp_path / "results", TAGS))
    assert "### tags_memory: memory" in text and "### tags_memory: time" in text
    assert _table(text, "T") == [["256", "120.5"]]
    assert _table(text, "model") == [["tags", "12.25"]]
    assert "device cpu" in text


def test_missing_benchmarks_listed_as_not_yet_run(tmp_path):
    text = render.render(_write(tmp_path / "results", EVAL))
    for name, (_, command) in render.BENCHMARKS.items():
        if name == "eval_speed":
            continue
        assert command.startswith(f"python benchmarks/{name}.py")
        assert f"(not yet run: `{command}`)" in text
        assert f"## {name}\n\nNot yet run: `{command}`" in text
    assert "* [eval_speed](#eval_speed): " in text and "(last run 2025-01-02)" in text
    assert "Not yet run: `python benchmarks/eval_speed.py`" not in text
    empty = render.render(_write(tmp_path / "none"))
    assert all(f"(not yet run: `{command}`)" in empty for _, command in render.BENCHMARKS.values())


def test_output_is_deterministic(tmp_path):
    a = render.render(_write(tmp_path / "a", EVAL, TAGS))
    # the same results written with other key orders and in the other order
    folder = tmp_path / "b"
    folder.mkdir()
    for data in (TAGS, EVAL):
        shuffled = dict(reversed(list(data.items())))
        shuffled["rows"] = [dict(reversed(list(r.items()))) for r in data["rows"]]
        (folder / f"{data['benchmark']}.json").write_text(json.dumps(shuffled, indent=3))
    assert render.render(folder) == a == render.render(tmp_path / "a")
    assert a.index("## eval_speed") < a.index("## tags_memory")


@pytest.mark.parametrize("value, cell", [(None, "n/a"), (True, "yes"), (7, "7"), (0.0, "0"), (1.5, "1.500"),
                                         (1234.5678, "1235"), (0.012344, "0.01234"), (1e-5, "1.000e-05"),
                                         (float("nan"), "n/a"), ([0.3, 0.5], "0.3000, 0.5000"), ("a|b", "a\\|b")])
def test_number_formats(value, cell):
    assert render.format_value(value) == cell


def test_not_a_results_file(tmp_path):
    (tmp_path / "x.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a results file"):
        render.render(tmp_path)


def test_committed_docs_are_the_rendering_of_the_committed_results():
    """docs/benchmarks.md is generated: it must equal what render.py makes of benchmarks/results/."""
    expected = render.render(ROOT / "benchmarks" / "results")
    assert (ROOT / "docs" / "benchmarks.md").read_text() == expected, \
        "docs/benchmarks.md is stale or hand-edited: run `python benchmarks/render.py`"
