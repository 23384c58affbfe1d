"""From video files: tadkit extract (real I3D weights), end-to-end PointTAD / SP-TAD, tadkit detect."""
import json
import os

import numpy as np
import pytest
import torch
import yaml

from tadkit.cli.main import main
from tadkit.config import load_config
from tadkit.core.errors import ConfigError, DataError
from tadkit.data.synthetic_video import make_synthetic_videos
from tadkit.data.video import read_frames

from ._toy import predictions_close

SMALL = ["--short-side", "64", "--crop", "64", "--no-progress"]   # real weights, small frames: seconds on CPU


@pytest.fixture(scope="module")
def synvideos(tmp_path_factory):
    """Six 6.4 s synthetic videos (10 fps, 64 x 64), two classes; four training, two testing."""
    root = tmp_path_factory.mktemp("synvideos")
    make_synthetic_videos(root, videos=6, classes=2, frames=64, fps=10.0, size=64, seed=3)
    return root


@pytest.fixture(scope="module")
def extracted(synvideos, i3d_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("feats") / "i3d"
    weights = i3d_checkpoint
    rc = main(["extract", str(synvideos / "videos"), "--weights", str(weights), "--out", str(out), *SMALL])
    assert rc == 0
    return out, weights


def _tiny_e2e(synvideos, out_dir, name):
    cfg = {
        "data": {"annotations": str(synvideos / "annotations.json"), "videos": str(synvideos / "videos"),
                 "short_side": 40, "crop_size": 32, "test_subset": "testing", "train_windows": True,
                 "train_window_overlap": 0.5, "window_overlap": 0.0, "crop_ratio": None, "trunc_thresh": 1.0},
        "model": {"name": name, "backbone": {"width": 0.125, "frozen_bn": False, "checkpoint": True,
                                             "fusion": "concat" if name == "pointtad" else "levels"}},
        "train": {"epochs": 4, "batch_size": 2, "lr": 1e-3, "warmup_epochs": 0, "schedule": "constant",
                  "ema_decay": None, "eval_every": 0, "progress": False, "seed": 1},
        "test": {"nms": "none" if name == "pointtad" else "soft", "min_score": 0.0, "tiou": "thumos14"},
        "output_dir": str(out_dir),
    }
    if name == "pointtad":
        cfg["model"].update(max_seq_len=16, hidden_dim=32, num_queries=8, num_points=9, num_layers=2, num_heads=4,
                            ffn_dim=64, dynamic_dim=8, ce_weight=0.1)
    else:
        cfg["model"].update(max_seq_len=64, hidden_dim=32, num_proposals=8, num_stages=2, attn_heads=4, ffn_dim=64,
                            dynamic_dim=8, roi_size=4)
    path = out_dir.parent / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


# -- extract -------------------------------------------------------------------------------
def test_extract_writes_features_and_timing(extracted, synvideos):
    out, _ = extracted
    meta = json.loads((out / "features.json").read_text())
    assert (meta["feature_stride"], meta["feature_window"], meta["endpoint"]) == (4, 16, "Mixed_5c")
    for vid in [f"synvid_{i:03d}" for i in range(6)]:
        x = np.load(out / f"{vid}.npy")
        assert x.shape == (16, 1024) and x.dtype == np.float32 and np.isfinite(x).all()   # ceil(64 / 4) clips
        assert meta["videos"][vid] == {"fps": 10.0, "frames": 64, "duration": 6.4, "num_features": 16,
                                       "source": f"{vid}.mp4"}
    # a clip during an action differs from one of plain background: the features see the video
    x = np.load(out / "synvid_000.npy")
    assert np.abs(x[0] - x[8]).max() > 1e-3


def test_extract_resumes_and_reports_bad_videos(extracted, synvideos, real_data, tmp_path, capsys):
    out, weights = extracted
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.npy")}
    assert main(["extract", str(synvideos / "videos"), "--weights", str(weights), "--out", str(out), *SMALL]) == 0
    assert "0 videos" in capsys.readouterr().out.replace("extracted 0 videos", "0 videos")
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.npy")} == before      # nothing redone

    vids = tmp_path / "videos"
    vids.mkdir()
    os.symlink(synvideos / "videos" / "synvid_000.mp4", vids / "good.mp4")
    (vids / "broken.mp4").write_bytes((synvideos / "videos" / "synvid_001.mp4").read_bytes()[:200])
    feats = tmp_path / "feats"
    rc = main(["extract", str(vids), "--weights", str(weights), "--out", str(feats), *SMALL])
    err = capsys.readouterr().err
    assert rc == 2 and "broken.mp4" in err.splitlines()[-1] and "Traceback" not in err
    assert (feats / "good.npy").exists() and not (feats / "broken.npy").exists()
    assert not [p for p in feats.iterdir() if p.name.startswith(".")]                # no half-written file
    # other settings into the same directory: refused, the directory untouched
    rc = main(["extract", str(vids), "--weights", str(weights), "--out", str(feats), "--fps", "5", *SMALL])
    assert rc == 2 and "fps" in capsys.readouterr().err


def test_interrupted_extraction_leaves_no_partial_file(synvideos, i3d_checkpoint, tmp_path, monkeypatch):
    from tadkit.engine import extract as ex
    real = ex.to_model_input
    calls = {"n": 0}

    def interrupt(clips, device):
        calls["n"] += 1
        if calls["n"] == 3:                       # inside the second video (two batches of 8 clips per video)
            raise KeyboardInterrupt
        return real(clips, device)

    monkeypatch.setattr(ex, "to_model_input", interrupt)
    out = tmp_path / "feats"
    with pytest.raises(KeyboardInterrupt):
        ex.extract_features(synvideos / "videos", i3d_checkpoint, out,
                            short_side=64, crop=64, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["features.json", "synvid_000.npy"]
    assert list(json.loads((out / "features.json").read_text())["videos"]) == ["synvid_000"]


@pytest.mark.slow
def test_real_clips_mixed5c_features_are_stable(real_data, i3d_checkpoint):
    """The two real clips (default 256 / 224 preprocessing, 1 fps to keep it short) give the same
    Mixed_5c features on a second run."""
    from tadkit.engine.extract import extract_video
    from tadkit.models.backbones.i3d import build_i3d
    model = build_i3d(i3d_checkpoint, final_endpoint="Mixed_5c")
    for name in ("kinetics_arm_wrestling.mp4", "test_300frames.mp4"):
        a = extract_video(model, real_data / "videos" / name, fps=1.0, batch_size=3)
        b = extract_video(model, real_data / "videos" / name, fps=1.0, batch_size=2)  # other batching too
        assert a.shape == (3, 1024)                                                    # ceil(10 frames / 4)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-4)


# -- end to end ----------------------------------------------------------------------------
def test_frame_dataset_items_are_the_decoded_frames(synvideos, tmp_path):
    from tadkit.engine import builders
    cfg = load_config(_tiny_e2e(synvideos, tmp_path / "run", "pointtad"))
    ds = builders.build_dataset(cfg, "testing", training=False)
    item = ds[0]
    steps = item["steps"]
    assert item["frames"].shape == (3, steps * 4, 32, 32) and item["frames"].dtype == torch.uint8
    full = read_frames(synvideos / "videos" / f"{item['video_id']}.mp4", short_side=40, crop=32)  # (N, 32, 32, 3)
    s = int(item["offset"]) * 4
    np.testing.assert_array_equal(item["frames"].permute(1, 2, 3, 0).numpy(), full[s:s + steps * 4])
    batch = ds.collate([ds[0], ds[len(ds) - 1]])
    assert batch["frames"].shape[2] == batch["masks"].shape[1] * 4
    assert batch["masks"].sum(1).tolist() == [ds[0]["steps"], ds[len(ds) - 1]["steps"]]


def test_predict_then_frame_scores_runs_the_backbone_once(synvideos, tmp_path):
    from tadkit.engine import builders
    cfg = load_config(_tiny_e2e(synvideos, tmp_path / "run", "pointtad"))
    ds = builders.build_dataset(cfg, "testing", training=False)
    model = builders.build_model(cfg, builders.model_info(cfg, ds)).eval()
    batch = ds.collate([ds[0], ds[1]])
    reference = model.frame_scores(batch)                          # nothing kept: computes its features
    calls = []
    real = model.features
    model.features = lambda b: calls.append(1) or real(b)
    model.predict(batch)
    again = model.frame_scores(batch)
    assert len(calls) == 1                                         # predict's features served frame_scores
    for a, b in zip(again, reference):
        np.testing.assert_allclose(a, b, atol=1e-6)
    model.frame_scores(batch)                                      # kept once only: computed anew
    assert len(calls) == 2


def test_training_items_flip_half_the_time(synvideos, tmp_path):
    from tadkit.engine import builders
    path = _tiny_e2e(synvideos, tmp_path / "run", "pointtad")
    flipped = builders.build_dataset(load_config(path), "training", training=True)
    plain = builders.build_dataset(load_config(path, ["data.flip=false"]), "training", training=True)
    kinds = set()
    for i in range(len(plain)):
        a, b = flipped[i]["frames"], plain[i]["frames"]                      # same crop, maybe mirrored
        same, mirror = torch.equal(a, b), torch.equal(a, b.flip(-1))
        assert same or mirror
        kinds.add("mirror" if mirror and not same else "same")
    assert kinds == {"same", "mirror"}


def test_two_stream_end_to_end(synvideos, tmp_path):
    from tadkit.engine import builders
    cfg = load_config(_tiny_e2e(synvideos, tmp_path / "run", "sptad"),
                      [f"data.flow_videos={synvideos / 'videos'}", "model.backbone.two_stream=true"])
    ds = builders.build_dataset(cfg, "training", training=True)
    batch = ds.collate([ds[0], ds[1]])
    assert batch["flow"].shape[1] == 2 and batch["flow"].shape[2:] == batch["frames"].shape[2:]
    model = builders.build_model(cfg, builders.model_info(cfg, ds))
    assert model.backbone["flow"].in_channels == 2
    levels = model.features(batch)                                       # RGB and flow maps per level
    assert [x.shape[1] for x in levels] == [2 * model.backbone["rgb"].endpoint_channels(e)
                                            for e in ("Mixed_3c", "Mixed_4f", "Mixed_5c")]
    loss = model(batch)["loss"]
    loss.backward()
    assert torch.isfinite(loss)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.backbone["flow"].parameters())


def test_flow_frame_folders_are_cropped_like_the_rgb(synvideos, tmp_path):
    """Flow given as folders of flow_x / flow_y images: made here from the decoded RGB (R as x, G as y),
    so every item's flow must equal its RGB's first two channels, random crops and flips included."""
    from PIL import Image

    from tadkit.engine import builders
    flow = tmp_path / "flow"
    for video in sorted((synvideos / "videos").glob("*.mp4")):
        frames = read_frames(video, short_side=None, crop=None)
        (flow / video.stem).mkdir(parents=True)
        for k, f in enumerate(frames):
            Image.fromarray(f[..., 0]).save(flow / video.stem / f"flow_x_{k + 1:05d}.png")
            Image.fromarray(f[..., 1]).save(flow / video.stem / f"flow_y_{k + 1:05d}.png")
    cfg = load_config(_tiny_e2e(synvideos, tmp_path / "run", "sptad"),
                      [f"data.flow_videos={flow}", "model.backbone.two_stream=true", "data.short_side=null"])
    for subset, training in (("training", True), ("testing", False)):
        ds = builders.build_dataset(cfg, subset, training=training)
        for i in range(len(ds)):
            item = ds[i]
            rgb, fl = item["frames"][:2].clone(), item["flow"]
            if training and not torch.equal(fl[1], rgb[1]):
                pytest.fail("flow and RGB got different crops")
            if training and torch.equal(fl[0], 255 - rgb[0]) and not torch.equal(fl[0], rgb[0]):
                rgb[0] = 255 - rgb[0]                                             # mirrored: flow x negated
            assert torch.equal(fl, rgb)


@pytest.mark.parametrize("name", ["pointtad", "sptad"])
def test_end_to_end_training_learns_and_reloads(synvideos, tmp_path, name, capsys):
    from tadkit.engine.optim import build_optimizer
    from tadkit.engine.trainer import train
    cfg = load_config(_tiny_e2e(synvideos, tmp_path / "run", name))
    train(cfg)
    log = [line.split(",") for line in (tmp_path / "run" / "log.csv").read_text().splitlines()]
    col = log[0].index("loss")
    losses = [float(r[col]) for r in log[1:] if r[col]]
    assert losses[-1] < losses[0]                                                   # the loss goes down
    # the backbone learns at lr_mult (0.1) x lr
    from tadkit.engine.builders import build_model
    info = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)["model_info"]
    model = build_model(cfg, info)
    lrs = {g["name"].split("/")[0]: g["lr"] for g in build_optimizer(model, cfg.train).param_groups}
    assert lrs["backbone"] == pytest.approx(1e-4) and lrs["default"] == pytest.approx(1e-3)
    # the checkpoint reloads: predict from it gives train's predictions
    ckpt = tmp_path / "run" / "checkpoints" / "last.pt"
    out = tmp_path / "pred.json"
    assert main(["predict", "--config", str(tmp_path / "run" / "config.yaml"), "--checkpoint", str(ckpt),
                 "--out", str(out)]) == 0
    assert predictions_close(json.loads(out.read_text()), json.loads((tmp_path / "run" / "predictions.json")
                                                                     .read_text()))
    # tadkit detect on one video gives the same detections as predict on that video
    video = synvideos / "videos" / "synvid_005.mp4"
    det = tmp_path / "det.json"
    assert main(["detect", str(video), "--config", str(tmp_path / "run" / "config.yaml"), "--checkpoint", str(ckpt),
                 "--out", str(det), "--device", "cpu"]) == 0
    assert "synvid_005:" in capsys.readouterr().out and det.with_suffix(".png").stat().st_size > 0
    one = tmp_path / "one.json"
    assert main(["predict", "--config", str(tmp_path / "run" / "config.yaml"), "--checkpoint", str(ckpt),
                 "--videos", "synvid_005", "--out", str(one)]) == 0
    assert predictions_close(json.loads(det.read_text()), json.loads(one.read_text()))


def test_feature_based_detect_matches_predict_on_extracted_features(extracted, synvideos, tmp_path, capsys,
                                                                     monkeypatch):
    out, weights = extracted
    cfg = {"data": {"annotations": str(synvideos / "annotations.json"), "features": str(out),
                    "test_subset": "testing"},
           "model": {"name": "actionformer", "max_seq_len": 16, "embed_dim": 32, "fpn_dim": 32, "head_dim": 32,
                     "num_heads": 4, "branch_layers": 2, "window_size": 5,
                     "regression_ranges": [[0, 4], [4, 8], [8, 10000]]},
           "train": {"epochs": 2, "batch_size": 2, "warmup_epochs": 0, "ema_decay": None, "eval_every": 0,
                     "progress": False},
           "test": {"tiou": "thumos14"}, "output_dir": str(tmp_path / "run")}
    (tmp_path / "af.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", str(tmp_path / "af.yaml")]) == 0
    run = tmp_path / "run"
    resolved = load_config(run / "config.yaml")
    assert resolved.data.feature_stride is None                   # the timing came from features.json
    ckpt = run / "checkpoints" / "last.pt"
    det = tmp_path / "det.json"
    video = synvideos / "videos" / "synvid_004.mp4"
    assert main(["detect", str(video), "--config", str(run / "config.yaml"), "--checkpoint", str(ckpt),
                 "--weights", str(weights), "--out", str(det), "--device", "cpu"]) == 0
    one = tmp_path / "one.json"
    assert main(["predict", "--config", str(run / "config.yaml"), "--checkpoint", str(ckpt), "--videos",
                 "synvid_004", "--out", str(one)]) == 0
    got, ref = json.loads(det.read_text()), json.loads(one.read_text())
    assert len(got["results"]["synvid_004"]) > 0
    assert predictions_close(got, ref, atol=1e-3)
    # without --weights: the checkpoint `tadkit weights i3d` cached, and the same detections
    cached = tmp_path / "cached.json"
    monkeypatch.setenv("TADKIT_HOME", str(weights.parents[1]))
    assert weights == weights.parents[1] / "weights" / weights.name            # the fixture's file is the cache's
    assert main(["detect", str(video), "--config", str(run / "config.yaml"), "--checkpoint", str(ckpt),
                 "--out", str(cached), "--device", "cpu"]) == 0
    assert json.loads(cached.read_text()) == got
    # ... and with an empty cache, one line naming the command, exit 2, nothing written
    monkeypatch.setenv("TADKIT_HOME", str(tmp_path / "empty"))
    capsys.readouterr()
    none = tmp_path / "none.json"
    assert main(["detect", str(video), "--config", str(run / "config.yaml"), "--checkpoint", str(ckpt),
                 "--out", str(none)]) == 2
    err = capsys.readouterr().err
    assert "tadkit weights i3d" in err and len(err.strip().splitlines()) == 1 and not none.exists()


def test_backbone_config_errors(synvideos, tmp_path):
    path = _tiny_e2e(synvideos, tmp_path / "run", "pointtad")
    with pytest.raises(ConfigError, match="model.backbone.widht"):
        load_config(path, ["model.backbone.widht=0.5"])
    with pytest.raises(ConfigError, match="fusion"):
        load_config(path, ["model.backbone.fusion=sum"])
    with pytest.raises(ConfigError, match="backbone"):           # videos for a model without a backbone
        from tadkit.engine import builders
        builders.build_dataset(load_config(path, ["model.name=actionformer"]), "training", training=True)
    with pytest.raises(DataError, match="video directory not found"):
        from tadkit.engine import builders
        builders.build_dataset(load_config(path, [f"data.videos={tmp_path / 'nowhere'}"]), "training", training=True)
