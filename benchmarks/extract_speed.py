"""Feature extraction speed: decoding alone, the I3D forward alone, and ``tadkit extract``'s pipeline.

    python benchmarks/extract_speed.py [--weights CKPT (default: the `tadkit weights i3d` cache)]
        [--videos tests/data/real/videos] [--device cpu|cuda] [--threads N] [--fps F] [--frames N]
        [--results JSON]

For each video: frames per second of (1) decoding + resize 256 + centre crop 224 alone,
(2) the backbone forward alone on already-decoded clips (16-frame windows every 4 frames,
batches of 8), (3) the whole pipeline (decoding in a background thread beside the backbone).
"Frames" are video frames at the decoding rate; each frame is seen by window/stride = 4 clips.
The last column is pipeline time / backbone time: 1.0 means decoding is fully hidden.
Prints the table and writes it to ``benchmarks/results/extract_speed.json`` (``--results``).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

import _results  # benchmarks/_results.py (the script's folder is on sys.path)

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", help="I3D checkpoint (default: the one `tadkit weights i3d` cached)")
    p.add_argument("--videos", default=str(ROOT / "tests" / "data" / "real" / "videos"))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--fps", type=float, default=None, help="resample (default: native)")
    p.add_argument("--frames", type=int, default=96, help="frames per video measured (the first N)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--amp", action="store_true", help="bfloat16 autocast on GPU")
    _results.add_results_argument(p, "extract_speed")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    from tadkit.data.frames import list_videos
    from tadkit.data.video import iter_clips, read_frames
    from tadkit.engine.extract import _clip_batches, _prefetch, to_model_input
    from tadkit.models.backbones.i3d import build_i3d, i3d_features

    device = torch.device(args.device)
    from tadkit.engine.weights import default_weights
    model = build_i3d(args.weights or default_weights("i3d"), final_endpoint="Mixed_5c").to(device).eval()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def forward(clips):
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16,
                                             enabled=args.amp and device.type == "cuda"):
            return i3d_features(model, to_model_input(clips, device)).float().cpu()

    rows = []
    for vid, path in list_videos(args.videos).items():
        t = time.perf_counter()
        frames = read_frames(path, fps=args.fps, end_frame=args.frames)                     # (N, 224, 224, 3)
        decode = time.perf_counter() - t
        n = len(frames)
        clips = [np.array(c) for c in iter_clips(frames, 16, 4)]
        clips = np.concatenate(clips)
        forward(clips[:2])                                                                # warm-up
        sync()
        t = time.perf_counter()
        for i in range(0, len(clips), args.batch_size):
            forward(clips[i:i + args.batch_size])
        sync()
        backbone = time.perf_counter() - t

        def pipeline_batches():
            for b in _clip_batches(path, fps=args.fps, stride=4, window=16, short_side=256, crop=224,
                                   batch_size=args.batch_size):
                yield b

        t = time.perf_counter()
        seen = 0
        for b in _prefetch(pipeline_batches()):
            if seen >= len(clips):
                break
            forward(b)
            seen += len(b)
        sync()
        pipeline = time.perf_counter() - t
        rows.append((vid, n, n / decode, n / backbone, n / pipeline, pipeline / backbone))

    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} threads"
    setting = (f"I3D Mixed_5c, 16-frame windows every 4 frames, batch {args.batch_size}, "
               f"first {args.frames} frames{'' if args.fps is None else f' at {args.fps:g} fps'}"
               f"{', bfloat16 autocast' if args.amp and device.type == 'cuda' else ''}")
    print(f"extraction speed on {dev} ({setting})")
    print(f"{'video':<26} {'frames':>6} {'decode f/s':>11} {'backbone f/s':>13} {'pipeline f/s':>13} "
          f"{'pipeline/backbone':>18}")
    for r in rows:
        print(f"{r[0]:<26} {r[1]:>6d} {r[2]:>11.1f} {r[3]:>13.1f} {r[4]:>13.1f} {r[5]:>18.2f}")
    keys = ("video", "frames", "decode_frames_per_s", "backbone_frames_per_s", "pipeline_frames_per_s",
            "pipeline_over_backbone")
    _results.save("extract_speed", [dict(zip(keys, r)) for r in rows], args.results, threads=torch.get_num_threads(),
                  device=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", argv=argv,
                  setting=setting)
    return 0


if __name__ == "__main__":
    sys.exit(main())
