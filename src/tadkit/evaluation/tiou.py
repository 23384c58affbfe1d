"""tIoU threshold sets: presets and the ``LIST`` / ``start:stop:step`` syntax."""
from __future__ import annotations

import numpy as np

from ..core.errors import TadkitError

# Built with np.linspace exactly as the reference evaluations do (0.9 is 0.8999999999999999),
# because predictions whose tIoU ties a threshold depend on the last bit.
PRESETS = {
    "thumos14": (0.3, 0.7, 5),
    "activitynet": (0.5, 0.95, 10),
    "multithumos": (0.1, 0.9, 9),
    "charades": (0.1, 0.9, 9),
    "ego4d": (0.1, 0.5, 5),
    "epic": (0.1, 0.5, 5),
}
MAX_THRESHOLDS = 1000     # a start:stop:step range longer than this is a typo (e.g. a step of 1e-9)


def parse_tiou(spec) -> np.ndarray:
    """Thresholds from a preset name, ``"0.3,0.5,0.7"``, ``"0.3:0.7:0.1"`` (inclusive) or a sequence."""
    if spec is None:
        spec = "activitynet"
    if not isinstance(spec, str):
        arr = np.asarray(spec, dtype=np.float64).reshape(-1)
    elif spec.lower() in PRESETS:
        a, b, n = PRESETS[spec.lower()]
        arr = np.linspace(a, b, n)
    elif ":" in spec:
        parts = spec.split(":")
        try:
            a, b, step = (float(p) for p in parts)
        except ValueError:
            raise TadkitError(f"cannot read tIoU range {spec!r}",
                              fix="write start:stop:step, e.g. 0.3:0.7:0.1") from None
        if step <= 0 or b < a:
            raise TadkitError(f"tIoU range {spec!r} is empty", fix="write start:stop:step with start <= stop, step > 0")
        count = (b - a) / step
        if not np.isfinite(count) or count > MAX_THRESHOLDS:
            raise TadkitError(f"tIoU range {spec!r} does not give a finite list of at most {MAX_THRESHOLDS} "
                              "thresholds", fix="write finite numbers and a larger step, e.g. 0.3:0.7:0.1")
        n = int(round(count)) + 1
        arr = np.linspace(a, a + (n - 1) * step, n) if abs(a + (n - 1) * step - b) > 1e-9 else np.linspace(a, b, n)
    else:
        try:
            arr = np.array([float(p) for p in spec.split(",") if p.strip()], dtype=np.float64)
        except ValueError:
            raise TadkitError(f"cannot read tIoU thresholds {spec!r}",
                              fix=f"write 0.3,0.5,0.7 or 0.3:0.7:0.1 or a preset: {', '.join(PRESETS)}") from None
    if arr.size == 0 or not np.all((arr >= 0) & (arr <= 1)):
        raise TadkitError(f"tIoU thresholds must lie in [0, 1], got {spec!r}", fix="pick thresholds between 0 and 1")
    return arr
