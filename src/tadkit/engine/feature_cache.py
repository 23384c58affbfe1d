"""Features kept across runs, so a second ``tadkit fit`` on the same videos extracts nothing.

``$TADKIT_HOME/features/<key>/`` (default ``~/.cache/tadkit/features``) holds, per video,
``<fingerprint>.npy`` and ``<fingerprint>.json`` (its ``features.json`` entry), where

* ``key`` is a hash of the extraction settings (endpoint, fps, stride, window, short side, crop)
  and of the backbone's weights (the weights file's sha256, or the given model's parameters), so
  features made any other way are never mixed in;
* ``fingerprint`` is a hash of the video's size and its first and last MiB: fast on large files,
  and a copied or moved video keeps it, while a re-encoded one does not.

A run folder takes a cached video as a hard link (a copy where links are not possible), which
costs no space; the cache keeps its files when run folders are deleted. ``tadkit fit
--no-feature-cache`` neither reads nor fills it; deleting the folder is always safe.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

from ..core.io import atomic_link_or_copy

__all__ = ["FeatureCache", "video_fingerprint", "backbone_identity", "default_root"]

_EDGE = 1 << 20


def default_root() -> Path:
    from .weights import tadkit_home
    return tadkit_home() / "features"


def video_fingerprint(path) -> str:
    """Size and first / last MiB of the file, hashed."""
    path = Path(path)
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        h.update(f.read(_EDGE))
        if size > _EDGE:                         # the rest up to the last MiB's worth (all of a 1-2 MiB file)
            f.seek(max(_EDGE, size - _EDGE))
            h.update(f.read(_EDGE))
    return h.hexdigest()[:32]


def backbone_identity(weights=None, model=None) -> str:
    """The weights file's sha256, or a hash of ``model``'s parameters and buffers."""
    if model is not None:
        h = hashlib.sha256()
        for name, t in sorted(model.state_dict().items()):
            h.update(name.encode())
            h.update(str(tuple(t.shape)).encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        return "model:" + h.hexdigest()
    from .weights import sha256_of
    return "file:" + sha256_of(weights)


class FeatureCache:
    """One settings-and-backbone folder of the cache."""

    def __init__(self, root, settings: dict, backbone: str):
        blob = json.dumps({"settings": settings, "backbone": backbone}, sort_keys=True)
        self.dir = Path(root) / hashlib.sha256(blob.encode()).hexdigest()[:24]
        self.settings, self.backbone = settings, backbone

    def fetch(self, videos: dict, out: Path) -> list[str]:
        """Put the cached features of ``videos`` ({id: path}) into the feature folder ``out`` (each
        ``.npy`` with its entry in ``out/.parts``, which :func:`tadkit.engine.extract.extract_features`
        takes as finished); the ids found."""
        from ..core.errors import TadkitError
        from .extract import write_part
        got = []
        try:
            if not self.dir.is_dir():
                return []
            for vid, path in videos.items():
                if (out / f"{vid}.npy").exists():
                    continue
                fp = video_fingerprint(path)
                npy, entry = self.dir / f"{fp}.npy", self.dir / f"{fp}.json"
                if not (npy.is_file() and entry.is_file()):
                    continue
                try:
                    meta = json.loads(entry.read_text())
                except ValueError:
                    continue
                meta["source"] = Path(path).name
                atomic_link_or_copy(npy, out / f"{vid}.npy")
                write_part(out, vid, self.settings, meta)
                got.append(vid)
        except (OSError, TadkitError):       # an unreadable cache, a full disk: those videos are extracted
            pass
        return got

    def store(self, videos: dict, out: Path) -> int:
        """Keep the features of ``videos`` that ``out`` holds (per its ``features.json``); how many were new."""
        from ..core.errors import TadkitError
        from ..core.io import atomic_write_json
        from ..data.features import read_features_meta
        meta = read_features_meta(out) or {}
        n = 0
        # a full, read-only or unreadable cache only costs the reuse (a full disk is a DataError from atomic_path)
        with contextlib.suppress(OSError, TadkitError):
            for vid, path in videos.items():
                entry = meta.get("videos", {}).get(vid)
                if entry is None or not (out / f"{vid}.npy").is_file():
                    continue
                fp = video_fingerprint(path)
                if (self.dir / f"{fp}.npy").is_file() and (self.dir / f"{fp}.json").is_file():
                    continue
                self.dir.mkdir(parents=True, exist_ok=True)
                atomic_link_or_copy(out / f"{vid}.npy", self.dir / f"{fp}.npy")
                atomic_write_json(self.dir / f"{fp}.json", entry)     # written last: the pair is complete
                n += 1
            if n:
                atomic_write_json(self.dir / "settings.json", {"settings": self.settings, "backbone": self.backbone})
        return n
