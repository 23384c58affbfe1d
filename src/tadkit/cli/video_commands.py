"""``tadkit extract`` and ``tadkit detect``: from video files, thin wrappers around the engine."""
from __future__ import annotations

import sys

from .engine_commands import _setup_logging


# -- extract ---------------------------------------------------------------------------
def _reg_extract(sub):
    p = sub.add_parser("extract", help="extract I3D features of a directory of videos",
                       description="Decode every video of VIDEO_DIR, resize the short side to 256 and centre-crop "
                                   "224, cut clips of --window frames every --stride frames and write "
                                   "FEATURE_DIR/<video_id>.npy (T x 1024, I3D Mixed_5c averaged over time and "
                                   "space) plus FEATURE_DIR/features.json with the timing, which tadkit train "
                                   "reads. Finished videos are skipped, so an interrupted run continues where "
                                   "it stopped.")
    p.add_argument("video_dir", help="directory of video files (id = file name without suffix)")
    p.add_argument("--weights", required=True,
                   help="I3D Kinetics weights: the i3d-kinetics-400 pickle of numpy arrays, or a PyTorch "
                        "rgb_imagenet.pt-style state dict")
    p.add_argument("--out", required=True, help="feature directory to write")
    p.add_argument("--fps", type=float, help="resample every video to this frame rate (default: native fps)")
    p.add_argument("--stride", type=int, default=4, help="frames between consecutive clips (default 4)")
    p.add_argument("--window", type=int, default=16, help="frames per clip (default 16)")
    p.add_argument("--short-side", type=int, default=256, help="resize frames so the short side is this (256)")
    p.add_argument("--crop", type=int, default=224, help="centre crop size (224)")
    p.add_argument("--batch-size", type=int, default=8, help="clips per backbone batch (8)")
    p.add_argument("--videos", nargs="+", metavar="ID", help="extract only these videos")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="auto: the GPU when present")
    p.add_argument("--amp", action="store_true", help="bfloat16 autocast on GPU")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _run_extract(args):
    from ..engine.extract import extract_features
    _setup_logging()
    r = extract_features(args.video_dir, args.weights, args.out, fps=args.fps, stride=args.stride,
                         window=args.window, short_side=args.short_side, crop=args.crop, batch_size=args.batch_size,
                         videos=args.videos, device=args.device, amp=args.amp, progress=not args.no_progress)
    rate = f", {r.frames / r.seconds:.1f} frames/s" if r.seconds > 0 and r.frames else ""
    print(f"extracted {len(r.extracted)} videos ({r.frames} frames in {r.seconds:.1f} s{rate}); "
          f"{len(r.skipped)} already there -> {r.out_dir}", file=sys.stdout)
    return 0


# -- detect ----------------------------------------------------------------------------
def _reg_detect(sub):
    p = sub.add_parser("detect", help="detect actions in one video file with a trained checkpoint",
                       description="Decode VIDEO, make its features (I3D with --weights, as tadkit extract did "
                                   "for training; end-to-end checkpoints read the frames themselves), run the "
                                   "checkpoint over sliding windows with the config's post-processing, print "
                                   "the detections and write them as ActivityNet results JSON plus a timeline "
                                   "picture.")
    p.add_argument("video", help="video file")
    p.add_argument("--config", required=True, help="the run's config (OUTPUT_DIR/config.yaml)")
    p.add_argument("--checkpoint", required=True, help="checkpoint file (OUTPUT_DIR/checkpoints/best.pt)")
    p.add_argument("--weights", help="I3D weights used for the training features (feature-based checkpoints)")
    p.add_argument("--out", help="detections JSON to write (default VIDEO_ID_detections.json)")
    p.add_argument("--picture", help="timeline picture to write (default: beside --out, .png)")
    p.add_argument("--top", type=int, default=20, help="rows of the printed table (20)")
    p.add_argument("--min-score", type=float, default=0.0, help="leave detections below this out of the table")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="auto: the GPU when present")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. test.nms=hard")


def _run_detect(args):
    from pathlib import Path

    from ..config import load_config
    from ..engine.detect import detect
    _setup_logging()
    cfg = load_config(args.config, args.overrides)
    vid = Path(args.video).stem
    out = Path(args.out) if args.out else Path(f"{vid}_detections.json")
    picture = Path(args.picture) if args.picture else out.with_suffix(".png")
    results = detect(cfg, args.checkpoint, args.video, weights=args.weights, out=out, picture=picture,
                     device=args.device)
    dets = [d for d in results["results"].get(vid, []) if d["score"] >= args.min_score]
    print(f"{vid}: {len(results['results'].get(vid, []))} detections")
    print(f"{'start':>9} {'end':>9}  {'score':>6}  label")
    for d in dets[:args.top]:
        s, e = d["segment"]
        print(f"{s:9.2f} {e:9.2f}  {d['score']:6.3f}  {d['label']}")
    print(f"detections: {out}\ntimeline: {picture}")
    return 0


VIDEO_COMMANDS: dict = {
    "extract": (_reg_extract, _run_extract),
    "detect": (_reg_detect, _run_detect),
}
