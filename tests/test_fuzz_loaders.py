"""Fuzzed readers: for any input, every user-facing reader succeeds or raises a one-line TadkitError.

Each reader is fed random inputs and mutated copies of small excerpts of real files (lines
deleted, duplicated or swapped, bytes flipped, files truncated, numbers replaced by NaN, inf,
negative, huge or non-numbers, headers changed, empty files, other encodings, BOMs, CRLF, deep
nesting). Every call runs under :func:`outcome`: it must return, or raise a
:class:`~tadkit.core.errors.TadkitError` whose message is one line; any other exception, more
than ``LIMIT_S`` seconds, or a peak memory growth above ``MEMORY_MB`` fails the test.

Readers covered: annotations (:class:`Annotations`), predictions and ``evaluate_files`` (what
``tadkit eval`` runs), the six converters, the feature stores (``.npy``/``.npz``/``.pt``
directories and HDF5 files), ``features.json``, the config loader with overrides, and
checkpoints. Inputs that once broke a reader stay as explicit ``@example``s.

The runs are derandomized (the same examples on every run) and sized to take well under a
minute on two cores; ``TADKIT_FUZZ_SCALE`` and ``TADKIT_FUZZ_RANDOM`` (see below) make a longer hunt.
"""
from __future__ import annotations

import codecs
import contextlib
import functools
import io
import json
import math
import os
import pickle
import re
import resource
import shutil
import signal
import tempfile
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tadkit.models  # noqa: F401  (imported here: no reader call is charged the memory of importing torch models)
from tadkit.core.errors import TadkitError
from tests.conftest import REAL_DATA

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "tests" / "fixtures" / "converters"
LIMIT_S = 10          # per reader call
MEMORY_MB = 300       # peak resident memory growth per reader call
# expected noise: numpy's memmap on a huge declared shape, torch.load on a foreign pickle's protocol
pytestmark = [pytest.mark.filterwarnings("ignore:overflow encountered in scalar multiply:RuntimeWarning"),
              pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")]
# A longer hunt: TADKIT_FUZZ_SCALE=20 runs twenty times the examples, TADKIT_FUZZ_RANDOM=1 new ones each run.
SCALE = float(os.environ.get("TADKIT_FUZZ_SCALE", "1"))
RANDOM = os.environ.get("TADKIT_FUZZ_RANDOM", "") == "1"


def fuzz_settings(n: int):
    return settings(max_examples=max(1, int(n * SCALE)), deadline=None, derandomize=not RANDOM, database=None,
                    print_blob=RANDOM,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much, HealthCheck.large_base_example])


# -- the contract --------------------------------------------------------------------------------
class Hang(Exception):
    """A reader ran past LIMIT_S."""


@contextlib.contextmanager
def time_limit(seconds: float):
    def on_alarm(signum, frame):
        raise Hang(f"no answer after {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0      # Linux: KiB


def outcome(fn, *args, **kwargs):
    """``fn(*args, **kwargs)``: its result, or the TadkitError it raised (checked to be one line).

    Any other exception propagates (and fails the test); so do a hang and a memory blow-up.
    """
    before = _peak_mb()
    with time_limit(LIMIT_S):
        try:
            result = fn(*args, **kwargs)
        except TadkitError as e:
            text = str(e)
            assert text.strip(), "empty error message"
            assert "\n" not in text and "\r" not in text, f"not one line: {text!r}"
            result = e
    grown = _peak_mb() - before
    assert grown < MEMORY_MB, f"peak memory grew by {grown:.0f} MB"
    return result


def failed(result) -> bool:
    return isinstance(result, TadkitError)


@contextlib.contextmanager
def scratch():
    with tempfile.TemporaryDirectory(prefix="tadkit-fuzz-") as d:
        yield Path(d)


# -- random JSON / YAML values --------------------------------------------------------------------
ODD_STRINGS = ["", " ", "nan", "NaN", "inf", "-inf", "1e999", "-1", "0", "training", "validation", "testing",
               "v_", "a\x00b", "\u2028", "é", "1,2", "[1, 2]", "00:00:01.00"]
scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-10, max_value=10**6),
    st.sampled_from([-1, 0, 2**63, 2**64 + 1, -(2**63) - 1, 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8), st.sampled_from(ODD_STRINGS),
)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=12)


def maybe(plausible, p_odd=json_values):
    """Mostly a plausible value, sometimes anything."""
    return st.one_of(plausible, plausible, p_odd)


def dump_json(obj) -> str:
    return json.dumps(obj, allow_nan=True)


# -- mutations of real file contents ---------------------------------------------------------------
NUMBER = re.compile(rb"(?<![\w.])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w.])")   # a number, not digits of a name
ODD_NUMBERS = [b"NaN", b"Infinity", b"-Infinity", b"nan", b"inf", b"-inf", b"-1", b"-0", b"0", b"1e400", b"-1e400",
               b"1" * 5000, b"99999999999999999999999", b"1" + b"0" * 400, b'"abc"', b"abc", b"", b"null", b"true",
               b"[]", b"{}", b"1,2", b"1 2", b"0x10", b"1_000", b"\xff"]
ODD_HEADERS = [b"", b"x", b"ID", b" video ", b"VIDEO", b"id", b"video", b"subset", b"length", b"actions",
               b"start_timestamp", b"\xef\xbb\xbfvideo_id", b'"video_id"', b"video_id,video_id"]

mutation = st.one_of(
    st.tuples(st.just("delete_line"), st.integers(0, 10**6)),
    st.tuples(st.just("duplicate_line"), st.integers(0, 10**6)),
    st.tuples(st.just("swap_lines"), st.integers(0, 10**6), st.integers(0, 10**6)),
    st.tuples(st.just("flip_byte"), st.integers(0, 10**6), st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("number"), st.integers(0, 10**6), st.sampled_from(ODD_NUMBERS)),
    st.tuples(st.just("number"), st.integers(0, 10**6), st.sampled_from(ODD_NUMBERS)),       # twice: more often
    st.tuples(st.just("insert"), st.integers(0, 10**6), st.binary(max_size=6)),
    st.tuples(st.just("header"), st.integers(0, 50), st.sampled_from(ODD_HEADERS)),
    st.tuples(st.just("drop_column"), st.integers(0, 50)),
    st.tuples(st.just("nest"), st.integers(0, 10**6), st.sampled_from([b"[", b"{\"a\":", b"- ", b"a: "]),
              st.sampled_from([2, 50, 5000, 100000])),
    st.sampled_from([("empty",), ("bom",), ("crlf",), ("cr",), ("utf16",), ("latin1",), ("nul",), ("whitespace",)]),
)
mutations = st.lists(mutation, min_size=1, max_size=4)


def mutate(data: bytes, ops) -> bytes:
    """Apply a list of mutations (see :data:`mutation`) to a file's bytes."""
    for op in ops:
        kind, args = op[0], op[1:]
        lines = data.split(b"\n")
        n = len(lines)
        if kind == "delete_line":
            del lines[args[0] % n]
            data = b"\n".join(lines)
        elif kind == "duplicate_line":
            i = args[0] % n
            lines.insert(i, lines[i])
            data = b"\n".join(lines)
        elif kind == "swap_lines":
            i, j = args[0] % n, args[1] % n
            lines[i], lines[j] = lines[j], lines[i]
            data = b"\n".join(lines)
        elif kind == "flip_byte":
            if data:
                i = args[0] % len(data)
                data = data[:i] + bytes([data[i] ^ args[1]]) + data[i + 1:]
        elif kind == "truncate":
            data = data[:int(len(data) * args[0])]
        elif kind == "number":
            found = list(NUMBER.finditer(data))
            if found:
                m = found[args[0] % len(found)]
                data = data[:m.start()] + args[1] + data[m.end():]
        elif kind == "insert":
            i = args[0] % (len(data) + 1)
            data = data[:i] + args[1] + data[i:]
        elif kind in ("header", "drop_column"):
            cols = lines[0].split(b",")
            i = args[0] % len(cols)
            if kind == "header":
                cols[i] = args[1]
            else:
                del cols[i]
            lines[0] = b",".join(cols)
            data = b"\n".join(lines)
        elif kind == "nest":
            i = args[0] % (len(data) + 1)
            data = data[:i] + args[1] * args[2] + data[i:]
        elif kind == "empty":
            data = b""
        elif kind == "bom":
            data = codecs.BOM_UTF8 + data
        elif kind == "crlf":
            data = data.replace(b"\n", b"\r\n")
        elif kind == "cr":
            data = data.replace(b"\n", b"\r")
        elif kind == "utf16":
            data = data.decode("utf-8", "replace").encode("utf-16")
        elif kind == "latin1":
            data = data.decode("utf-8", "replace").encode("latin-1", "replace") + "é".encode("latin-1")
        elif kind == "nul":
            data = data.replace(b" ", b"\x00", 1)
        elif kind == "whitespace":
            data = b"\n".join(b"  " + ln + b"\t " for ln in lines)
    return data


json_mutation = st.one_of(
    st.tuples(st.just("replace"), st.integers(0, 10**6), json_values),
    st.tuples(st.just("delete"), st.integers(0, 10**6)),
    st.tuples(st.just("rename"), st.integers(0, 10**6), st.sampled_from(["", "x", "label", "segment", "subset"])),
    st.tuples(st.just("wrap"), st.integers(0, 10**6)),
    st.tuples(st.just("duplicate"), st.integers(0, 10**6)),
)
json_mutations = st.lists(json_mutation, min_size=1, max_size=4)


def _slots(tree, out):
    """Every (container, key) of a JSON tree, depth first."""
    if isinstance(tree, dict):
        for k in list(tree):
            out.append((tree, k))
            _slots(tree[k], out)
    elif isinstance(tree, list):
        for i in range(len(tree)):
            out.append((tree, i))
            _slots(tree[i], out)
    return out


def mutate_tree(tree, ops):
    """Structural mutations of a parsed JSON/YAML tree (a deep copy is changed)."""
    tree = json.loads(json.dumps(tree)) if not isinstance(tree, (str, int, float)) else tree
    for kind, idx, *arg in ops:
        slots = _slots(tree, [])
        if not slots:
            return arg[0] if kind == "replace" else tree
        parent, key = slots[idx % len(slots)]
        if kind == "replace":
            parent[key] = arg[0]
        elif kind == "delete":
            del parent[key]
        elif kind == "rename" and isinstance(parent, dict):
            parent[arg[0]] = parent.pop(key)
        elif kind == "wrap":
            parent[key] = [parent[key]]
        elif kind == "duplicate":
            if isinstance(parent, list):
                parent.insert(key, parent[key])
            else:
                parent[f"{key}_2"] = parent[key]
    return tree


# =================================================================================================
# Annotations
# =================================================================================================
numbers = maybe(st.floats(-10, 500, allow_nan=False), st.sampled_from([float("nan"), float("inf"), -1.0, 10**400,
                                                                        "12.5", "abc", None, [1], True]))
segments = maybe(st.lists(numbers, min_size=2, max_size=2), st.one_of(st.lists(numbers, max_size=3), json_values))
ann_items = maybe(st.fixed_dictionaries({"segment": segments, "label": maybe(st.sampled_from(["a", "b", "Run"]))},
                                        optional={"score": numbers}))
entries = st.fixed_dictionaries(
    {},
    optional={"subset": maybe(st.sampled_from(["training", "validation", "testing"])),
              "duration": numbers, "duration_second": numbers, "fps": numbers,
              "annotations": maybe(st.lists(ann_items, max_size=3)),
              "ignore": maybe(st.lists(segments, max_size=2))})
databases = st.dictionaries(st.sampled_from(["a", "v_a", "b", "", "video_1"]), maybe(entries), max_size=3)
annotation_docs = st.one_of(
    st.fixed_dictionaries({"database": maybe(databases)},
                          optional={"classes": maybe(st.lists(st.sampled_from(["a", "b", "Run", ""]), max_size=3)),
                                    "version": json_values}),
    databases, json_values)

GT = REAL_DATA / "eval-oracle" / "gt.json"
RESULT = REAL_DATA / "eval-oracle" / "result.json"

# inputs that once ended in another exception than a TadkitError
BIG_INT_DURATION = {"database": {"a": {"subset": "training", "duration": 10**400}}}
IGNORE_NOT_A_LIST = {"database": {"a": {"subset": "training", "duration": 10.0, "ignore": 5}}}


@fuzz_settings(250)
@given(doc=annotation_docs)
@example(doc=BIG_INT_DURATION)
@example(doc=IGNORE_NOT_A_LIST)
@example(doc={"database": {"a": {"subset": "training", "duration": 10.0, "ignore": [[0, 10**400]]}}})
def test_annotations_from_random_documents(doc):
    from tadkit.data.annotations import Annotations
    from tadkit.evaluation.api import evaluate_files
    outcome(Annotations.from_dict, doc)
    with scratch() as d:
        p = d / "ann.json"
        p.write_text(dump_json(doc))
        r = outcome(Annotations.load, p)
        if failed(r):
            assert r.path == os.fspath(p)           # the message names the file
            return
        # odd but loadable ground truth (reversed, zero-length, outside the video...) through tadkit eval
        pred = {"results": {vid: [{"segment": [0.0, 1.0], "label": lab, "score": 0.5}
                                  for lab in (v.labels[:1] or ["a"])] for vid, v in r.videos.items()}}
        for segmentation in (False, True):
            outcome(evaluate_files, r, pred, segmentation=segmentation, exclude_ignored=segmentation)


@fuzz_settings(200)
@given(ops=mutations, tree_ops=st.one_of(st.none(), json_mutations))
@example(ops=[("number", 0, b"1" * 5000)], tree_ops=None)                       # int past Python's digit limit
@example(ops=[("nest", 0, b"[", 100000)], tree_ops=None)                        # nesting past the recursion limit
@example(ops=[("number", 3, b"1" + b"0" * 400)], tree_ops=None)                 # int too large for a float
def test_annotations_from_mutated_real_file(ops, tree_ops):
    from tadkit.data.annotations import Annotations
    data = GT.read_bytes()
    if tree_ops:
        data = dump_json(mutate_tree(json.loads(data), tree_ops)).encode()
    with scratch() as d:
        p = d / "gt.json"
        p.write_bytes(mutate(data, ops))
        r = outcome(Annotations.load, p)
        if failed(r):
            assert r.path == os.fspath(p)


# =================================================================================================
# Predictions and evaluation (tadkit eval)
# =================================================================================================
detections = maybe(st.fixed_dictionaries({"segment": segments, "label": maybe(st.sampled_from(["Wakeboarding", "x"])),
                                          "score": numbers}))
prediction_docs = st.one_of(
    st.fixed_dictionaries({"results": maybe(st.dictionaries(st.sampled_from(["bYUmtLBL7W4", "v_bYUmtLBL7W4", "zz"]),
                                                            maybe(st.lists(detections, max_size=3)), max_size=3))},
                          optional={"version": json_values, "external_data": json_values}),
    st.dictionaries(st.text(max_size=4), st.lists(detections, max_size=2), max_size=2),
    json_values)
tious = st.one_of(st.sampled_from(["activitynet", "thumos14", "0.5", "0.3:0.7:0.1", "0.5,0.75", "", ",", "2",
                                   "nan", "0:1:0", "0:1:1e-300", "0:1e308:1e-308", "1:0:0.1", "a:b:c", "-1", "inf",
                                   "0.5:0.5:0.1", "0:1:1e-9"]),
                  st.text(max_size=10))


def _eval_kwargs():
    return st.fixed_dictionaries({"subset": st.sampled_from([None, "validation", "val", "training", "nope"]),
                                  "tiou": tious, "segmentation": st.booleans(), "exclude_ignored": st.booleans(),
                                  "frames_per_video": st.sampled_from([25, 1, 3]),
                                  "recall_ks": st.sampled_from([(1, 5), (), (0,), (-1,)])})


@fuzz_settings(200)
@given(doc=prediction_docs, kwargs=_eval_kwargs())
@example(doc={"results": {"a": [{"segment": [1, 10**400], "label": "x", "score": 1}]}},
         kwargs={"subset": None, "tiou": "0.5", "segmentation": False, "exclude_ignored": False,
                 "frames_per_video": 25, "recall_ks": (1,)})
@example(doc={"results": {"a": [{"segment": [1, 2], "label": "x", "score": 10**400}]}},
         kwargs={"subset": None, "tiou": "0.5", "segmentation": False, "exclude_ignored": False,
                 "frames_per_video": 25, "recall_ks": (1,)})
@example(doc={"results": {"bYUmtLBL7W4": [{"segment": [1, 2], "label": "Wakeboarding", "score": 1}]}},
         kwargs={"subset": None, "tiou": "0:1:1e-300", "segmentation": False, "exclude_ignored": False,
                 "frames_per_video": 25, "recall_ks": (1,)})
def test_predictions_and_evaluation_from_random_documents(doc, kwargs):
    from tadkit.evaluation.api import Predictions, evaluate_files
    outcome(Predictions.from_dict, doc)
    with scratch() as d:
        p = d / "pred.json"
        p.write_text(dump_json(doc))
        r = outcome(Predictions.load, p)
        if failed(r):
            assert r.path == os.fspath(p)
        outcome(evaluate_files, GT, p, **kwargs)


@fuzz_settings(150)
@given(which=st.sampled_from(["gt", "pred"]), ops=mutations, tree_ops=st.one_of(st.none(), json_mutations),
       segmentation=st.booleans())
@example(which="pred", ops=[("number", 0, b"1" * 5000)], tree_ops=None, segmentation=False)
@example(which="pred", ops=[("number", 2, b"1" + b"0" * 400)], tree_ops=None, segmentation=False)
def test_evaluation_of_mutated_real_files(which, ops, tree_ops, segmentation):
    from tadkit.evaluation.api import evaluate_files
    src = GT if which == "gt" else RESULT
    data = src.read_bytes()
    if tree_ops:
        data = dump_json(mutate_tree(json.loads(data), tree_ops)).encode()
    with scratch() as d:
        p = d / src.name
        p.write_bytes(mutate(data, ops))
        gt, pred = (p, RESULT) if which == "gt" else (GT, p)
        outcome(evaluate_files, gt, pred, segmentation=segmentation)


# =================================================================================================
# Converters
# =================================================================================================
def _excerpt_lines(path: Path, n: int) -> bytes:
    return b"\n".join(path.read_bytes().split(b"\n")[:n]) + b"\n"


def _thumos_case(d: Path):
    val = REAL_DATA / "thumos14" / "official" / "annotations_val"
    folder = d / "annotations_val"
    folder.mkdir()
    vids = set()
    for name in ("GolfSwing_val.txt", "Diving_val.txt", "Ambiguous_val.txt"):
        data = _excerpt_lines(val / name, 3)
        (folder / name).write_bytes(data)
        vids |= {ln.split()[0].decode() for ln in data.splitlines() if ln.strip()}
    info = json.loads((REAL_DATA / "thumos14" / "video_info.json").read_text())
    (d / "video_info.json").write_text(json.dumps({v: info[v] for v in sorted(vids) if v in info}))
    files = sorted(folder.iterdir()) + [d / "video_info.json"]
    return [str(folder)], {}, files


@functools.lru_cache(maxsize=None)
def _multithumos_excerpt() -> str:
    data = json.loads((REAL_DATA / "multithumos" / "multithumos.json").read_text())
    return json.dumps({vid: dict(data[vid], actions=data[vid]["actions"][:3]) for vid in list(data)[:2]})


def _multithumos_case(d: Path):
    p = d / "multithumos.json"
    p.write_text(_multithumos_excerpt())
    return [str(p)], {}, [p]


@functools.lru_cache(maxsize=None)
def _anet_excerpt() -> tuple[str, bytes, str]:
    anet = REAL_DATA / "activitynet"
    data = json.loads((anet / "anet_anno_action.json").read_text())
    vids = list(data)[:3]
    rows = (anet / "video_info_new.csv").read_bytes().split(b"\n")
    info = b"\n".join([rows[0]] + [r for r in rows[1:] if r.split(b",")[0].decode() in vids]) + b"\n"
    labels = {a["label"] for v in vids for a in data[v]["annotations"]}
    names = "action\n" + "".join(f"{x}\n" for x in sorted(labels | {"Arm wrestling"}))
    return json.dumps({v: data[v] for v in vids}), info, names


def _anet_case(d: Path):
    ann, info_rows, class_names = _anet_excerpt()
    p, info, names = d / "anet_anno_action.json", d / "video_info_new.csv", d / "action_name.csv"
    p.write_text(ann)
    info.write_bytes(info_rows)
    names.write_text(class_names)
    return [str(p), str(info), str(names)], {}, [p, info, names]


def _charades_case(d: Path):
    files = []
    for name in ("Charades_v1_train_excerpt.csv", "Charades_v1_test_excerpt.csv", "Charades_v1_classes_excerpt.txt"):
        shutil.copy(FIX / "charades" / name, d / name)
        files.append(d / name)
    return [str(files[0]), str(files[1])], {"classes": str(files[2])}, files


def _ego4d_case(d: Path):
    files = []
    for name in ("moments_train_mini.json", "moments_test_mini.json"):
        shutil.copy(FIX / "ego4d" / name, d / name)
        files.append(d / name)
    return [str(f) for f in files], {}, files


def _epic_case(d: Path):
    files = []
    for name in ("EPIC_100_train_excerpt.csv", "EPIC_100_validation_excerpt.csv", "EPIC_100_video_info_excerpt.csv",
                 "EPIC_100_verb_classes_excerpt.csv"):
        shutil.copy(FIX / "epic100" / name, d / name)
        files.append(d / name)
    return [str(files[0]), str(files[1])], {"video_info": str(files[2]), "classes": str(files[3])}, files


CASES = {"thumos14": _thumos_case, "multithumos": _multithumos_case, "activitynet-bsn": _anet_case,
         "charades": _charades_case, "ego4d-mq": _ego4d_case, "epic100": _epic_case}


def test_converter_cases_convert_unchanged():
    """The excerpts the fuzz tests mutate are valid inputs of their converters."""
    from tadkit.data.converters import FORMATS, convert
    assert sorted(CASES) == sorted(FORMATS)
    for fmt, case in CASES.items():
        with scratch() as d:
            inputs, kwargs, _ = case(d)
            ann, report = convert(fmt, inputs, **kwargs)
            assert len(ann) > 0, fmt


converter_options = st.fixed_dictionaries(
    {"drop_defects": st.booleans(),
     "subset": st.sampled_from([None, None, None, "training", "val", "  ", "odd subset"]),
     "task": st.sampled_from(["verb", "verb", "noun", "adverb"]),
     "drop_option": st.sampled_from([None, None, "video_info", "classes"])})


@pytest.mark.parametrize("fmt", sorted(CASES))
@fuzz_settings(120)
@given(target=st.integers(0, 10), ops=mutations, tree_ops=st.one_of(st.none(), st.none(), json_mutations),
       options=converter_options)
@example(target=0, ops=[("number", 0, b"1" + b"0" * 400)], tree_ops=None,     # an integer too large for a float
         options={"drop_defects": False, "subset": None, "task": "verb", "drop_option": None})
@example(target=3, ops=[("bom",), ("whitespace",)], tree_ops=None,            # epic100: a short row of the class CSV
         options={"drop_defects": False, "subset": None, "task": "verb", "drop_option": None})
@example(target=0, ops=[("number", 3, b"1" * 5000)], tree_ops=None,          # epic100: 5000 digits in a timestamp
         options={"drop_defects": False, "subset": None, "task": "verb", "drop_option": None})
@example(target=0, ops=[("number", 11, b"1" * 5000)], tree_ops=None,          # epic100: ... and in a class id
         options={"drop_defects": False, "subset": None, "task": "verb", "drop_option": None})
def test_converters_on_mutated_real_inputs(fmt, target, ops, tree_ops, options):
    from tadkit.data.converters import convert
    with scratch() as d:
        inputs, kwargs, files = CASES[fmt](d)
        f = files[target % len(files)]
        data = f.read_bytes()
        if tree_ops and f.suffix == ".json":
            data = dump_json(mutate_tree(json.loads(data), tree_ops)).encode()
        f.write_bytes(mutate(data, ops))
        kwargs = dict(kwargs)
        kwargs.pop(options["drop_option"], None)
        outcome(convert, fmt, inputs, drop_defects=options["drop_defects"], subset=options["subset"],
                task=options["task"], **kwargs)


@fuzz_settings(100)
@given(fmt=st.sampled_from(sorted(CASES) + ["THUMOS_14", "nope", ""]), name=st.sampled_from(
    ["a.json", "a.csv", "a.txt", "a_val.txt", "Charades_v1_train.csv", "EPIC_100_train.csv", "video_info.json",
     "moments_train.json", "a"]),
       content=st.one_of(st.binary(max_size=200), json_values.map(lambda v: dump_json(v).encode())),
       as_dir=st.booleans())
def test_converters_on_random_files(fmt, name, content, as_dir):
    from tadkit.data.converters import convert
    with scratch() as d:
        p = d / name
        if as_dir:
            p = d / "annotations_val"
            p.mkdir()
            (p / name).write_bytes(content)
        else:
            p.write_bytes(content)
        outcome(convert, fmt, [str(p)])
        outcome(convert, fmt, [str(p)], video_info=str(p))


# =================================================================================================
# Feature stores
# =================================================================================================
def _store_ops(path, layout="TC", vid="a", max_length_gap=0):
    """open_features, then every query a training run makes."""
    from tadkit.data.features import open_features
    store = outcome(open_features, path, layout=layout, max_length_gap=max_length_gap)
    if failed(store):
        return store
    results = {"dim": outcome(lambda: store.dim), "length": outcome(store.length, vid),
               "width": outcome(store.width, vid), "load": outcome(store.load, vid),
               "check_widths": outcome(store.check_widths, [vid, "v_" + vid]),
               "missing": outcome(store.load, "not-there")}
    assert failed(results["missing"])
    return results


def _check_valid(results, arr, layout):
    """A valid array loads as (T, C) float32 equal to it; the cheap queries agree."""
    x = np.asarray(arr)
    ok = (x.ndim == 2 and np.issubdtype(x.dtype, np.number) and not np.issubdtype(x.dtype, np.complexfloating)
          and x.size > 0 and np.isfinite(x.astype(np.float64)).all() and np.isfinite(x.astype(np.float32)).all())
    if not isinstance(results, dict):
        raise AssertionError(f"the store did not open: {results}")
    if not ok:
        assert failed(results["load"])
        return
    want = x.T if layout == "CT" else x
    got = results["load"]
    assert not failed(got), got
    np.testing.assert_array_equal(got, want.astype(np.float32))
    assert results["length"] == want.shape[0] and results["dim"] == want.shape[1]
    assert results["width"] in (None, want.shape[1])


dtypes = st.one_of(hnp.scalar_dtypes(), hnp.complex_number_dtypes(), st.just(np.dtype(object)),
                   hnp.byte_string_dtypes(max_len=3), st.just(np.dtype([("x", "f4"), ("y", "i2")])),
                   st.sampled_from([np.dtype("f4"), np.dtype("f8"), np.dtype("f2"), np.dtype("i8"), np.dtype("u1")]))
arrays = dtypes.flatmap(lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
                                              elements=None if dt.kind != "O" else st.just(1)))


def _save_npz(path, arr, key):
    np.savez(path, **{key: arr}) if key else np.savez(path, arr)


@fuzz_settings(250)
@given(arr=arrays, kind=st.sampled_from([".npy", ".npz", ".pt", ".h5"]), layout=st.sampled_from(["TC", "CT"]),
       npz_key=st.sampled_from([None, "feats", "features", "other", "x.npy"]), two_keys=st.booleans())
def test_feature_arrays_of_any_shape_and_dtype(arr, kind, layout, npz_key, two_keys):
    with scratch() as d:
        store = d / "feats"
        store.mkdir()
        if kind == ".npy":
            np.save(store / "a.npy", arr, allow_pickle=True)
            target = store
        elif kind == ".npz":
            if two_keys:
                np.savez(store / "a.npz", **{(npz_key or "arr_1"): arr, "other2": np.zeros((2, 2))})
            else:
                _save_npz(store / "a.npz", arr, npz_key)
            target = store
        elif kind == ".pt":
            try:
                t = torch.from_numpy(np.ascontiguousarray(arr))
            except (TypeError, ValueError, RuntimeError):
                return                              # a dtype torch has no tensor for
            torch.save({"feats": t} if two_keys else t, store / "a.pt")
            target = store
        else:
            target = d / "feats.h5"
            try:
                with h5py.File(target, "w") as f:
                    f.create_dataset("a", data=arr)
            except (TypeError, ValueError):
                return                              # a dtype HDF5 cannot store
        results = _store_ops(target, layout)
        if not two_keys or npz_key in ("feats", "features") or kind != ".npz":      # one array to find
            _check_valid(results, arr, layout)
        other = d / "other"                      # concatenated with a valid stream (two-stream features)
        other.mkdir()
        np.save(other / "a.npy", np.ones((3, 2), np.float32))
        _store_ops([target, other], layout)


def _npy_header(shape, descr="<f4", fortran=False, version=(1, 0)) -> bytes:
    b = io.BytesIO()
    header = {"descr": descr, "fortran_order": fortran, "shape": shape}
    if version == (1, 0):
        np.lib.format.write_array_header_1_0(b, header)
    else:
        np.lib.format.write_array_header_2_0(b, header)
    return b.getvalue()


huge_shapes = st.one_of(
    st.tuples(st.integers(0, 10**12), st.integers(0, 10**6)),
    st.tuples(st.integers(0, 2**62), st.integers(0, 2**62)),
    st.lists(st.integers(0, 10**9), min_size=0, max_size=4).map(tuple))


@fuzz_settings(120)
@given(shape=huge_shapes, descr=st.sampled_from(["<f4", "<f8", ">i8", "|u1", "<c16", "|O", "|V16", "<U4"]),
       fortran=st.booleans(), version=st.sampled_from([(1, 0), (2, 0)]), payload=st.integers(0, 256),
       kind=st.sampled_from([".npy", ".npz", ".npz-deflate", ".h5"]))
@example(shape=(10**11, 4), descr="<f8", fortran=False, version=(1, 0), payload=64, kind=".npz")
@example(shape=(762, 16111899, 93907016), descr="<f4", fortran=False, version=(1, 0), payload=0, kind=".npy")
@example(shape=(10**6, 10**6), descr="<f4", fortran=False, version=(1, 0), payload=0, kind=".h5")
def test_a_huge_declared_shape_is_never_allocated(shape, descr, fortran, version, payload, kind):
    with scratch() as d:
        store = d / "feats"
        store.mkdir()
        if kind == ".h5":
            target = d / "feats.h5"
            if len(shape) == 0 or 0 in shape or any(s > 2**40 for s in shape):
                return
            try:
                with h5py.File(target, "w") as f:                                 # declared, never written
                    f.create_dataset("a", shape=shape, dtype="f4", chunks=tuple(min(s, 64) for s in shape))
            except (ValueError, TypeError, OSError):
                return
        else:
            try:
                npy = _npy_header(shape, descr, fortran, version) + b"\x01" * payload
            except ValueError:
                return
            if kind == ".npy":
                (store / "a.npy").write_bytes(npy)
            else:
                method = zipfile.ZIP_STORED if kind == ".npz" else zipfile.ZIP_DEFLATED
                with zipfile.ZipFile(store / "a.npz", "w", method) as z:
                    z.writestr("feats.npy", npy)
            target = store
        _store_ops(target)


valid_files = {}


def _valid_feature_bytes(kind: str) -> bytes:
    """A small valid feature file of each kind, as bytes."""
    if kind not in valid_files:
        x = np.arange(12, dtype=np.float32).reshape(4, 3)
        b = io.BytesIO()
        if kind == ".npy":
            np.save(b, x)
        elif kind == ".npz":
            np.savez_compressed(b, feats=x)
        elif kind == ".npz-lzma":
            with zipfile.ZipFile(b, "w", zipfile.ZIP_LZMA) as z:
                z.writestr("feats.npy", _npy_header((4, 3)) + x.tobytes())
        elif kind == ".pt":
            torch.save(torch.from_numpy(x), b)
        elif kind == ".h5":
            with h5py.File(b, "w") as f:
                f.create_dataset("a", data=x, chunks=(2, 3), compression="gzip")
        valid_files[kind] = b.getvalue()
    return valid_files[kind]


@fuzz_settings(250)
@given(kind=st.sampled_from([".npy", ".npz", ".npz-lzma", ".pt", ".h5"]), ops=mutations,
       name_as=st.sampled_from([None, None, ".npy", ".npz", ".pt"]),
       random_bytes=st.one_of(st.none(), st.binary(max_size=300)))
@example(kind=".npz", ops=[("insert", 0, b"")], name_as=".npy", random_bytes=None)     # an npz named .npy
@example(kind=".npy", ops=[("insert", 0, b"")], name_as=".npz", random_bytes=None)     # an npy named .npz
@example(kind=".npz-lzma", ops=[("flip_byte", 70, 255)], name_as=None, random_bytes=None)   # lzma.LZMAError
@example(kind=".npz", ops=[("flip_byte", 28, 1)], name_as=None, random_bytes=None)         # zlib.error
@example(kind=".npy", ops=[("header", 2, b"")], name_as=None, random_bytes=None)      # tokenize.TokenError (header)
def test_damaged_feature_files(kind, ops, name_as, random_bytes):
    with scratch() as d:
        data = _valid_feature_bytes(kind) if random_bytes is None else random_bytes
        data = mutate(data, ops)
        suffix = (name_as or kind).split("-")[0]
        if suffix == ".h5":
            target = d / "feats.h5"
            target.write_bytes(data)
        else:
            target = d / "feats"
            target.mkdir()
            (target / f"a{suffix}").write_bytes(data)
        _store_ops(target)


def test_damaged_feature_files_explicit():
    """Feature files that once raised other exceptions: each is a one-line DataError now."""
    cases = {
        "npz-named-npy": (".npy", _valid_feature_bytes(".npz")),
        "npy-named-npz": (".npz", _valid_feature_bytes(".npy")),
    }
    for name, (suffix, data) in cases.items():
        with scratch() as d:
            (d / f"a{suffix}").write_bytes(data)
            results = _store_ops(d)
            assert all(failed(r) for k, r in results.items() if k not in ("width",)), (name, results)
    for name, obj in {"sparse": torch.eye(3).to_sparse(), "meta": torch.ones(3, 2, device="meta"),
                      "complex": torch.ones(3, 2, dtype=torch.complex64),
                      "bool": torch.ones(3, 2, dtype=torch.bool)}.items():
        with scratch() as d:
            torch.save(obj, d / "a.pt")
            results = _store_ops(d)
            assert failed(results["load"]), name
    with scratch() as d:                                   # an HDF5 dataset with no shape (h5py.Empty)
        with h5py.File(d / "f.h5", "w") as f:
            f.create_dataset("a", data=h5py.Empty("f4"))
        results = _store_ops(d / "f.h5")
        assert failed(results["load"]) and failed(results["length"])


h5_kinds = st.sampled_from(["array", "empty", "scalar", "strings", "vlen", "compound", "group", "soft-dangling",
                            "external", "enum", "huge-unwritten", "bool", "attr-only", "refs", "nested-group"])


@fuzz_settings(100)
@given(kinds=st.lists(h5_kinds, min_size=1, max_size=3), arr=arrays, layout=st.sampled_from(["TC", "CT"]))
def test_hdf5_files_with_odd_datasets(kinds, arr, layout):
    with scratch() as d:
        target = d / "feats.hdf5"
        with h5py.File(target, "w") as f:
            for i, kind in enumerate(kinds):
                name = "a" if i == 0 else f"a{i}"
                if kind == "array":
                    try:
                        f.create_dataset(name, data=arr)
                    except (TypeError, ValueError):
                        f.create_dataset(name, data=np.zeros((2, 2)))
                elif kind == "empty":
                    f.create_dataset(name, data=h5py.Empty("f4"))
                elif kind == "scalar":
                    f.create_dataset(name, data=3.0)
                elif kind == "strings":
                    f.create_dataset(name, data=np.array([["a", "b"]], dtype=h5py.string_dtype()))
                elif kind == "vlen":
                    f.create_dataset(name, shape=(2, 2), dtype=h5py.vlen_dtype("f4"))
                elif kind == "compound":
                    f.create_dataset(name, shape=(2, 2), dtype=np.dtype([("x", "f4"), ("y", "i4")]))
                elif kind == "group":
                    f.create_group(name)
                elif kind == "nested-group":
                    f.create_dataset(f"{name}/inner", data=np.ones((2, 2)))
                elif kind == "soft-dangling":
                    f[name] = h5py.SoftLink("/nowhere")
                elif kind == "external":
                    f[name] = h5py.ExternalLink(os.fspath(d / "missing.h5"), "/x")
                elif kind == "enum":
                    f.create_dataset(name, data=np.ones((2, 2), "i1"), dtype=h5py.enum_dtype({"x": 1}, basetype="i1"))
                elif kind == "huge-unwritten":
                    f.create_dataset(name, shape=(10**6, 10**6), dtype="f4", chunks=(8, 8))
                elif kind == "bool":
                    f.create_dataset(name, data=np.ones((2, 2), bool))
                elif kind == "attr-only":
                    f.attrs[name] = np.ones((2, 2))
                elif kind == "refs":
                    f.create_dataset(name, data=np.array([[f.ref]] * 2, dtype=h5py.ref_dtype))
        _store_ops(target, layout)


# -- pickles that would run code -------------------------------------------------------------------
class _Evil:
    """Unpickling this calls ``open(marker, "w")``: the marker file appears if the pickle ever runs."""

    def __init__(self, marker):
        self.marker = os.fspath(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _evil_payloads(marker: Path) -> dict[str, bytes]:
    evil = _Evil(marker)
    out = {}
    for proto in (2, 4, 5):
        out[f"pickle-{proto}"] = pickle.dumps(evil, protocol=proto)
    out["pickle-in-dict"] = pickle.dumps({"feats": evil, "format": "tadkit-checkpoint"})
    b = io.BytesIO()
    torch.save({"feats": evil, "format": "tadkit-checkpoint", "model": {}}, b)      # torch's zip format
    out["torch-zip"] = b.getvalue()
    b = io.BytesIO()
    torch.save({"feats": evil}, b, _use_new_zipfile_serialization=False)         # torch's legacy format
    out["torch-legacy"] = b.getvalue()
    b = io.BytesIO()
    np.save(b, np.array([evil, 1], dtype=object), allow_pickle=True)             # an object array
    out["npy-object"] = b.getvalue()
    b = io.BytesIO()
    np.savez(b, feats=np.array([evil], dtype=object))
    out["npz-object"] = b.getvalue()
    return out


@fuzz_settings(40)
@given(payload=st.sampled_from(["pickle-2", "pickle-4", "pickle-5", "pickle-in-dict", "torch-zip", "torch-legacy",
                                "npy-object", "npz-object"]),
       suffix=st.sampled_from([".pt", ".npy", ".npz", "checkpoint"]), ops=st.one_of(st.none(), mutations))
def test_a_pickle_that_would_run_code_is_refused_and_never_run(payload, suffix, ops):
    from tadkit.engine.checkpoint import load_checkpoint
    with scratch() as d:
        marker = d / "MARKER"
        data = _evil_payloads(marker)[payload]
        if ops:
            data = mutate(data, ops)
        assert not marker.exists()
        if suffix == "checkpoint":
            p = d / "last.pt"
            p.write_bytes(data)
            assert failed(outcome(load_checkpoint, p))
        else:
            store = d / "feats"
            store.mkdir()
            (store / f"a{suffix}").write_bytes(data)
            results = _store_ops(store)
            assert failed(results["load"])
        assert not marker.exists(), "the pickle ran code"


# =================================================================================================
# features.json
# =================================================================================================
def _extract_meta(n_videos: int = 2) -> dict:
    """features.json as `tadkit extract` writes it (see tadkit.engine.extract)."""
    settings_ = {"backbone": "i3d", "endpoint": "Mixed_5c", "fps": None, "feature_stride": 4, "feature_window": 16,
                 "short_side": 256, "crop": 224}
    videos = {f"v{i}": {"fps": 30.0, "frames": 300, "duration": 10.0, "num_features": 72, "source": f"v{i}.mp4"}
              for i in range(n_videos)}
    return {**settings_, "videos": videos}


def _meta_queries(d: Path):
    from tadkit.data.features import open_features, read_features_meta
    meta = outcome(read_features_meta, d)
    store = outcome(open_features, d)
    if failed(meta):
        assert failed(store) and "features.json" in str(store)
        return
    assert not failed(store)
    for vid in ("v0", "v_v0", "a", "zz"):
        fps = outcome(store.video_fps, vid)
        assert fps is None or (isinstance(fps, float) and math.isfinite(fps) and fps > 0), fps
    for vid in ("a", "v0"):
        outcome(store.load, vid)


@fuzz_settings(200)
@given(doc=st.one_of(json_values,
                     st.fixed_dictionaries({}, optional={"feature_stride": numbers, "feature_window": numbers,
                                                         "videos": maybe(st.dictionaries(
                                                             st.sampled_from(["v0", "a", "v_v0"]),
                                                             maybe(st.fixed_dictionaries({},
                                                                                         optional={"fps": numbers})),
                                                             max_size=3))})),
       tree_ops=st.one_of(st.none(), json_mutations), ops=st.one_of(st.none(), mutations))
@example(doc={"feature_stride": 4, "feature_window": 16, "videos": {"v0": {"fps": 10**400}}}, tree_ops=None, ops=None)
@example(doc={"feature_stride": 10**400, "feature_window": 16}, tree_ops=None, ops=None)
@example(doc={"feature_stride": float("inf"), "feature_window": 16, "videos": {"v0": {"fps": True}}}, tree_ops=None,
         ops=None)
@example(doc=_extract_meta(), tree_ops=None, ops=[("nest", 0, b"[", 100000)])
@example(doc=_extract_meta(), tree_ops=None, ops=[("number", 0, b"1" * 5000)])
def test_features_json(doc, tree_ops, ops):
    with scratch() as d:
        np.save(d / "a.npy", np.zeros((5, 3), np.float32))
        if isinstance(doc, dict) and not doc and tree_ops is None and ops is None:
            doc = _extract_meta()
        if tree_ops:
            doc = mutate_tree(doc, tree_ops)
        data = dump_json(doc).encode()
        if ops:
            data = mutate(data, ops)
        (d / "features.json").write_bytes(data)
        _meta_queries(d)


def test_features_json_as_written_by_extract_is_read():
    from tadkit.data.features import open_features
    with scratch() as d:
        np.save(d / "v0.npy", np.zeros((5, 3), np.float32))
        (d / "features.json").write_text(json.dumps(_extract_meta()))
        store = open_features(d)
        assert store.video_fps("v0") == 30.0 and store.meta["feature_stride"] == 4


# =================================================================================================
# Config
# =================================================================================================
CONFIGS = sorted((ROOT / "configs").rglob("*.yaml"))
yaml_scalars = st.one_of(scalars.filter(lambda v: not (isinstance(v, str) and "\x00" in v)), st.dates(),
                         st.sampled_from(["1e-4", ".inf", "[", "~", "auto", "TC", "CT", "soft", "cosine"]))
yaml_values = st.recursive(yaml_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.one_of(st.text(max_size=6), st.integers(0, 3)), inner, max_size=3),
                           max_leaves=8)


def _dotted_keys():
    from tadkit.config import SECTIONS
    import dataclasses
    keys = [f"{s}.{f.name}" for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)]
    return keys + ["output_dir", "model.name", "model.backbone", "model.backbone.width", "model.backbone.fusion",
                   "model.backbone.lr_mult", "model.max_seq_len", "model.x", "data", "data.x", "x.y", "data.fps.x"]


DOTTED = _dotted_keys()
# a "billion laughs" list: 9**8 items through YAML aliases, a few hundred bytes of text
BOMB = ("[&a [1, 1, 1, 1, 1, 1, 1, 1, 1], &b [*a, *a, *a, *a, *a, *a, *a, *a, *a], "
        "&c [*b, *b, *b, *b, *b, *b, *b, *b, *b], &d [*c, *c, *c, *c, *c, *c, *c, *c, *c], "
        "&e [*d, *d, *d, *d, *d, *d, *d, *d, *d], &f [*e, *e, *e, *e, *e, *e, *e, *e, *e], "
        "&g [*f, *f, *f, *f, *f, *f, *f, *f, *f], &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]]")
override_values = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", "[", "[a, b]", "{a: 1}", ".nan", ".inf", "1e400", "1" * 5000, "null", "- a", "2001-01-01",
                     "!!python/name:os.system", "[" * 3000 + "]" * 3000, "{x: " * 2000, "0x10", "1_000", "~", "'q'",
                     "*a", "&a [*a]", "pointtad", "actionformer", "{lr_mult: x}", "{fusion: [1]}", "{name: [1]}",
                     "{width: 1" + "0" * 400 + "}", "1" + "0" * 400, "[1, .nan]", "[.nan]"]),
    yaml_values.map(lambda v: yaml.safe_dump(v, default_flow_style=True).strip()))
overrides = st.lists(st.one_of(st.tuples(st.sampled_from(DOTTED), override_values).map(lambda kv: f"{kv[0]}={kv[1]}"),
                               st.text(max_size=12)), max_size=4)


def _load(source, items):
    from tadkit.config import load_config
    return outcome(load_config, source, items)


@fuzz_settings(100)
@given(doc=st.one_of(yaml_values,
                     st.dictionaries(st.sampled_from(["data", "model", "train", "test", "output_dir", "x"]),
                                     yaml_values, max_size=4),
                     st.fixed_dictionaries({}, optional={s: st.dictionaries(st.sampled_from(
                         [k.split(".", 1)[1] for k in DOTTED if k.startswith(s + ".")]), yaml_values, max_size=3)
                         for s in ("data", "model", "train", "test")})),
       items=overrides, text=st.one_of(st.none(), st.text(max_size=40)))
@example(doc={"train": {"lr": 10**400}}, items=[], text=None)
@example(doc={"train": {"lr_groups": {"backbone": 10**400}}}, items=[], text=None)
@example(doc={}, items=["train.lr=" + "1" + "0" * 400], text=None)
@example(doc={}, items=["train.lr=" + "[" * 3000 + "]" * 3000], text=None)
@example(doc={}, items=["model.name=pointtad", "model.backbone={lr_mult: x}"], text=None)
@example(doc={}, items=["model.name=pointtad", "model.backbone={fusion: [1]}"], text=None)
@example(doc={}, items=[], text="[" * 5000 + "]" * 5000)
@example(doc={}, items=[], text="train: {lr: " + "1" * 5000 + "}")
@example(doc={}, items=[], text="train: {lr: " + BOMB + "}")
@example(doc={}, items=[], text="train: {lr_groups: {x: " + BOMB + "}}")
@example(doc={}, items=[], text="model: {name: pointtad, backbone: " + BOMB + "}")
@example(doc={}, items=[], text="model: {name: " + BOMB + "}")
@example(doc={}, items=[], text="output_dir: " + BOMB)
@example(doc={}, items=[], text="data: {layout: " + BOMB + "}")
@example(doc={}, items=["model.name=pointtad", "model.backbone=" + BOMB], text=None)
@example(doc={}, items=["model.name=pointtad", "model.backbone={name: " + BOMB + "}"], text=None)
def test_config_from_random_yaml_and_overrides(doc, items, text):
    with scratch() as d:
        p = d / "config.yaml"
        p.write_text(yaml.safe_dump(doc) if text is None else text)
        _load(p, items)
        if isinstance(doc, dict) and text is None:
            _load(doc, items)


@fuzz_settings(150)
@given(which=st.integers(0, len(CONFIGS) - 1),
       tree_ops=st.lists(st.one_of(
           st.tuples(st.just("replace"), st.integers(0, 10**6), yaml_values),
           st.tuples(st.just("delete"), st.integers(0, 10**6)),
           st.tuples(st.just("rename"), st.integers(0, 10**6), st.sampled_from(["", "x", "lr", "name", "data"]))),
           max_size=3),
       ops=st.one_of(st.none(), mutations), items=overrides)
def test_config_from_mutated_real_configs(which, tree_ops, ops, items):
    src = CONFIGS[which]
    with scratch() as d:
        p = d / src.name
        if tree_ops:
            tree = yaml.safe_load(src.read_text())
            for kind, idx, *arg in tree_ops:
                slots = _slots(tree, [])
                if not slots:
                    break
                parent, key = slots[idx % len(slots)]
                if kind == "replace":
                    parent[key] = arg[0]
                elif kind == "delete":
                    del parent[key]
                elif isinstance(parent, dict):
                    parent[arg[0]] = parent.pop(key)
            data = yaml.safe_dump(tree).encode()
        else:
            data = src.read_bytes()
        p.write_bytes(mutate(data, ops) if ops else data)
        _load(p, items)


def test_real_configs_load():
    from tadkit.config import load_config
    for src in CONFIGS:
        load_config(src)


# =================================================================================================
# Checkpoints
# =================================================================================================
def _real_checkpoint(d: Path) -> Path:
    from tadkit.engine.checkpoint import save_checkpoint
    p = d / "real.pt"
    save_checkpoint(p, {"epoch": 1, "model": {"w": torch.arange(6.0).reshape(2, 3)},
                        "model_info": {"name": "toy", "num_classes": 3, "input_dim": 8, "classes": ["a", "b", "c"]},
                        "config": {"train": {"lr": 1e-4}}, "ema": None})
    return p


def _tensors():
    return st.sampled_from([torch.ones(3), torch.zeros(0), torch.tensor(2), torch.tensor(float("nan"))])


@fuzz_settings(150)
@given(ops=st.one_of(st.none(), mutations), random_bytes=st.one_of(st.none(), st.binary(max_size=300)),
       state=st.one_of(st.none(), st.fixed_dictionaries(
           {}, optional={"format": maybe(st.just("tadkit-checkpoint")), "version": maybe(st.just(1), st.one_of(
               json_values, _tensors())), "model": maybe(st.just({}), _tensors()),
               "model_info": maybe(st.fixed_dictionaries({}, optional={
                   "name": maybe(st.just("toy"), st.one_of(json_values, _tensors())),
                   "num_classes": maybe(st.just(3), st.one_of(json_values, _tensors())),
                   "input_dim": maybe(st.just(8), st.one_of(json_values, _tensors()))})),
               "ema": st.one_of(st.none(), st.just({}), json_values, _tensors()),
               "config": json_values, "epoch": json_values})))
@example(ops=None, random_bytes=None, state={"format": "tadkit-checkpoint", "version": "abc", "model": {},
                                             "model_info": {}, "config": {}})
@example(ops=None, random_bytes=None, state={"format": "tadkit-checkpoint", "version": None, "model": {},
                                             "model_info": {}, "config": {}})
@example(ops=None, random_bytes=None, state={"format": "tadkit-checkpoint", "version": float("inf"), "model": {},
                                             "model_info": {}, "config": {}})
@example(ops=None, random_bytes=None, state={"format": "tadkit-checkpoint", "version": 1, "model": {},
                                             "model_info": {"name": "toy", "num_classes": "abc"}, "config": {}})
@example(ops=None, random_bytes=None, state={"format": "tadkit-checkpoint", "version": 1, "model": {},
                                             "model_info": [1], "config": {}, "ema": 3})
def test_checkpoints(ops, random_bytes, state):
    from tadkit.engine.checkpoint import check_compatible, checkpoint_weights, load_checkpoint
    with scratch() as d:
        if state is not None:
            p = d / "state.pt"
            torch.save(state, p)
            data = p.read_bytes()
        elif random_bytes is not None:
            data = random_bytes
        else:
            data = _real_checkpoint(d).read_bytes()
        if ops:
            data = mutate(data, ops)
        p = d / "last.pt"
        p.write_bytes(data)
        r = outcome(load_checkpoint, p)
        if failed(r):
            assert r.path == os.fspath(p)
            return
        assert isinstance(r, dict) and isinstance(r["model"], dict) and isinstance(r["model_info"], dict)
        outcome(check_compatible, r, name="toy", num_classes=3, input_dim=8)      # what predict/resume check next
        for weights in ("auto", "ema", "model"):
            w = outcome(checkpoint_weights, r, weights)
            assert failed(w) or isinstance(w, dict)
