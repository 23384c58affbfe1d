"""tadkit: temporal action detection on one shared infrastructure.

The Python API mirrors the command line: :func:`load_config`, :func:`build_detector`,
:func:`train`, :func:`predict`, :func:`evaluate`, :func:`extract`, :func:`detect`, :func:`fit`. Each one's
docstring has an example that runs on a CPU in seconds; ``docs/python-api.md`` walks through
them. Heavy modules (torch) load only when a function that needs them is called, so
``import tadkit`` and the evaluation stay light. Errors in the input are :class:`TadkitError`
subclasses whose ``one_line()`` names the file and says what to do.
"""
from __future__ import annotations

__version__ = "0.1.0"

from .core.errors import TadkitError  # noqa: E402


def load_config(source=None, overrides=()):
    """Read a configuration and apply ``key.sub=value`` overrides; return a validated :class:`tadkit.config.Config`.

    Parameters
    ----------
    source : a YAML file, a nested dict, an existing ``Config`` (the overrides apply to a copy)
        or ``None`` (every default). Relative input paths written in a file
        (``data.annotations``, ``data.features``, ...) resolve against the file's folder;
        those of a dict, ``output_dir`` and every path given as an override against the
        working directory.
    overrides : ``"section.key=value"`` strings, values read as YAML (``train.lr=2e-4``,
        ``data.features=[rgb,flow]``), applied in order after ``source``. ``model.name=...``
        switches the model, whose own defaults then fill the ``model`` section.

    Returns
    -------
    Config with sections ``data``, ``model`` (``name`` and ``params``), ``train``, ``test`` and
    ``output_dir``; every key is filled in and input paths are absolute.

    Raises
    ------
    tadkit.core.errors.ConfigError
        the file is missing, a directory or not valid YAML; a key is unknown (the message
        lists the valid keys of its section); a value has the wrong type or is out of range;
        an override has no ``=`` or names a whole section; ``model.name`` is unknown.

    Example
    -------
    >>> import pathlib, tempfile, tadkit
    >>> cfg = tadkit.load_config({"model": {"name": "asl", "embed_dim": 64}}, ["train.lr=2e-4", "train.epochs=10"])
    >>> cfg.model.name, cfg.model.params["embed_dim"], cfg.train.lr, cfg.train.epochs
    ('asl', 64, 0.0002, 10)
    >>> cfg.model.params["window_size"]             # the model's own default fills the rest
    19
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "my.yaml"
    >>> _ = path.write_text("data:\\n  annotations: ann.json\\nmodel:\\n  name: asl\\n")
    >>> tadkit.load_config(path).data.annotations == str(path.resolve().parent / "ann.json")
    True
    >>> tadkit.load_config(None, ["train.lr=fast"])
    Traceback (most recent call last):
        ...
    tadkit.core.errors.ConfigError: train.lr must be a number, got 'fast' (correct train.lr)
    >>> try:
    ...     tadkit.load_config(None, ["train.learning_rate=1e-4"])
    ... except tadkit.TadkitError as e:
    ...     print(e.one_line())
    unknown key 'train.learning_rate'; the valid keys of train are: amp, ... (fix the spelling or remove the key)
    """
    from .api import load_config as f
    return f(source, overrides)


def build_detector(config, *, num_classes=None, input_dim=None, max_seq_len=None, overrides=(), **hyperparameters):
    """Build the detector (an untrained ``torch.nn.Module``) that a config, or a model name, describes.

    Parameters
    ----------
    config : a model name (``"asl"``, ``"amnet"``, ``"tags"``, ``"sptad"``, ``"pointtad"``,
        ``"actionformer"``), or a config (``Config``, YAML file or dict, as :func:`load_config`
        takes) whose ``model`` section is used.
    num_classes, input_dim : needed with a name; with a config they default to the class
        count of the annotations (``data.classes``, else the training subset's labels) and the
        width of ``data.features``.
    max_seq_len : window length in feature steps; default ``model.max_seq_len`` of the config,
        or the detector's own default with a name.
    overrides : ``key=value`` strings applied to a config.
    **hyperparameters : model keys (``embed_dim=16``, ...); with a config they replace its values.

    Returns
    -------
    torch.nn.Module: ``model(batch)`` gives the training losses, ``model.predict(batch)`` the
    detections (see :mod:`tadkit.models`).

    Raises
    ------
    TypeError
        a name without ``num_classes`` and ``input_dim`` (or without ``max_seq_len`` when the
        detector has no default).
    tadkit.core.errors.ConfigError
        unknown model name or hyperparameter (the message lists the valid keys); a config
        without ``data.features`` and no ``input_dim``; any error of :func:`load_config`.
    tadkit.core.errors.DataError
        the annotations or features of the config cannot be read.

    Example
    -------
    >>> import tempfile, tadkit
    >>> from tadkit.data.synthetic import make_synthetic
    >>> det = tadkit.build_detector("asl", num_classes=5, input_dim=64, embed_dim=16, fpn_dim=16, head_dim=16)
    >>> type(det).__name__, det.num_classes, det.input_dim
    ('ASL', 5, 64)
    >>> tmp = tempfile.mkdtemp()
    >>> meta = make_synthetic(tmp, videos=4, classes=3, feature_dim=16)
    >>> cfg = {"data": {"annotations": f"{tmp}/annotations.json", "features": f"{tmp}/features"},
    ...        "model": {"name": "asl", "embed_dim": 16, "fpn_dim": 16, "head_dim": 16}}
    >>> det = tadkit.build_detector(cfg)            # 3 classes and 16-d features, read from the data
    >>> det.num_classes, det.input_dim
    (3, 16)
    >>> tadkit.build_detector("asl", num_classes=5, input_dim=64, embed_dims=16)
    Traceback (most recent call last):
        ...
    tadkit.core.errors.ConfigError: unknown hyperparameter embed_dims for model 'asl' (valid keys: ascl, ...)
    """
    from .api import build_detector as f
    return f(config, num_classes=num_classes, input_dim=input_dim, max_seq_len=max_seq_len, overrides=overrides,
             **hyperparameters)


def train(config, overrides=(), *, resume=False, **kwargs):
    """Train a detector as ``tadkit train`` does, then predict and evaluate ``data.test_subset``.

    The run writes into ``output_dir``: ``config.yaml`` (resolved), ``checkpoints/`` (every epoch,
    ``last.pt``, ``best.pt``), ``log.csv``, ``predictions.json``, ``metrics.json`` and
    ``report.html``; it prints one table row per epoch. Launched by ``torchrun`` it joins the
    process group (``docs/distributed.md``).

    Parameters
    ----------
    config : ``Config``, YAML file or dict (as :func:`load_config` takes); ``output_dir`` must be set.
    overrides : ``key=value`` strings applied to ``config``.
    resume : continue the run of ``output_dir`` from ``checkpoints/last.pt`` (exactly: same
        weights as an uninterrupted run, to float rounding).
    **kwargs : passed to :func:`tadkit.engine.trainer.train`: ``callbacks`` (called as
        ``callback(trainer, epoch)`` after each epoch), ``stream`` (where the table goes,
        default stdout), ``build_dataset`` / ``build_model`` (replacements for the defaults).

    Returns
    -------
    tadkit.engine.trainer.TrainResult with ``output_dir`` (Path), ``predictions`` (the
    results dict of ``predictions.json``), ``metrics`` (the dict of ``metrics.json``; None
    when the test subset has no ground truth), ``best`` (``{"epoch", "average_mAP"}``; None
    without evaluation) and ``history`` (one dict per epoch: the ``log.csv`` row). Under
    ``torchrun``, processes other than rank 0 get ``predictions`` and ``metrics`` None.

    Raises
    ------
    tadkit.core.errors.ConfigError
        ``output_dir`` is not set; it already holds a run (``checkpoints/last.pt``) and
        ``resume`` is false, or ``resume`` is true and there is nothing to resume;
        ``train.batch_size`` does not split over the processes; the training set is empty;
        any error of :func:`load_config`.
    tadkit.core.errors.DataError
        the annotations or features are missing, malformed or do not match.
    tadkit.core.errors.CheckpointError
        ``resume`` meets a checkpoint of another model, class list or feature width.
    tadkit.TadkitError
        training diverged (the gradient is not finite).

    Example
    -------
    >>> import tempfile, tadkit
    >>> from tadkit.data.synthetic import make_synthetic
    >>> tmp = tempfile.mkdtemp()
    >>> meta = make_synthetic(tmp, videos=6, classes=3, feature_dim=16, min_duration=20, max_duration=40)
    >>> cfg = tadkit.load_config({
    ...     "data": {"annotations": f"{tmp}/annotations.json", "features": f"{tmp}/features",
    ...              "fps": 30, "feature_stride": 4, "feature_window": 16},
    ...     "model": {"name": "asl", "max_seq_len": 256, "embed_dim": 16, "fpn_dim": 16, "head_dim": 16},
    ...     "train": {"epochs": 2, "warmup_epochs": 1, "eval_every": 1, "progress": False},
    ...     "test": {"tiou": "thumos14"},
    ...     "output_dir": f"{tmp}/run"})
    >>> run = tadkit.train(cfg)
    epoch step lr loss ... average_mAP best_mAP time_s
    1 2 ...
    2 4 ...
    >>> sorted(p.name for p in (run.output_dir / "checkpoints").iterdir())
    ['best.pt', 'epoch_001.pt', 'epoch_002.pt', 'last.pt']
    >>> len(run.history), run.metrics["subset"], len(run.metrics["mAP"]), run.best["epoch"] in (1, 2)
    (2, 'validation', 5, True)
    >>> tadkit.train(cfg)
    Traceback (most recent call last):
        ...
    tadkit.core.errors.ConfigError: .../run: output_dir already holds the checkpoints of a run (pass --resume ...)
    >>> run = tadkit.train(cfg, ["train.epochs=3"], resume=True)      # one more epoch
    epoch step lr loss ...
    3 6 ...
    """
    from .api import train as f
    return f(config, overrides, resume=resume, **kwargs)


def predict(config, checkpoint, *, features=None, subset=None, videos=None, out=None, overrides=(), **kwargs):
    """Run a trained checkpoint over a subset (or chosen videos) as ``tadkit predict`` does.

    Videos longer than ``model.max_seq_len`` go through overlapping windows, merged before
    the configured post-processing (``test.*``: (Soft-)NMS, top-k, score threshold).

    Parameters
    ----------
    config : the run's config; ``OUTPUT_DIR/config.yaml`` is the safest choice.
    checkpoint : a ``.pt`` file written by :func:`train`.
    features : a feature folder (or list, concatenated on channels) replacing ``data.features``.
    subset : the subset to predict (default ``data.test_subset``); ``videos`` lists video ids instead.
    out : also write the results to this JSON file.
    overrides : ``key=value`` strings applied to ``config`` (``test.nms=hard``, ...).
    **kwargs : passed to :func:`tadkit.engine.predictor.predict`: ``weights`` (``"auto"``: the
        EMA weights when the checkpoint has them, as training evaluates; ``"ema"``; ``"model"``),
        ``progress``.

    Returns
    -------
    dict: ActivityNet results, ``{"version", "results": {video_id: [{"segment": [start, end],
    "label": name, "score": p}, ...]}, "external_data"}``, seconds, each video's detections
    sorted by score; what :func:`evaluate` reads. Under ``torchrun`` the videos are shared
    among the processes and the results gathered: rank 0 returns them, the others None.

    Raises
    ------
    tadkit.core.errors.CheckpointError
        the checkpoint is missing or not a tadkit checkpoint; it holds another model, class
        list or feature width than the config and data; ``weights="ema"`` without EMA weights.
    tadkit.core.errors.DataError
        the features or annotations are missing or malformed, a video id is unknown.
    tadkit.core.errors.ConfigError
        ``data.features`` is not set; any error of :func:`load_config`.

    Example
    -------
    >>> import tempfile, tadkit
    >>> from tadkit.data.synthetic import make_synthetic
    >>> tmp = tempfile.mkdtemp()
    >>> meta = make_synthetic(tmp, videos=6, classes=3, feature_dim=16, min_duration=20, max_duration=40)
    >>> cfg = tadkit.load_config({
    ...     "data": {"annotations": f"{tmp}/annotations.json", "features": f"{tmp}/features",
    ...              "fps": 30, "feature_stride": 4, "feature_window": 16},
    ...     "model": {"name": "asl", "max_seq_len": 256, "embed_dim": 16, "fpn_dim": 16, "head_dim": 16},
    ...     "train": {"epochs": 1, "progress": False},
    ...     "test": {"tiou": "thumos14"},
    ...     "output_dir": f"{tmp}/run"})
    >>> run = tadkit.train(cfg)
    epoch ...
    >>> preds = tadkit.predict(f"{tmp}/run/config.yaml", f"{tmp}/run/checkpoints/best.pt")
    >>> preds == run.predictions                    # the validation subset, as training predicted it
    True
    >>> vid = sorted(preds["results"])[0]
    >>> first = preds["results"][vid][0]
    >>> sorted(first), first["label"] in meta["classes"]
    (['label', 'score', 'segment'], True)
    >>> one = tadkit.predict(cfg, f"{tmp}/run/checkpoints/best.pt", videos=[vid], out=f"{tmp}/one.json",
    ...                      overrides=["test.nms=hard"])
    >>> list(one["results"])
    ['synth_0001']
    >>> tadkit.predict(cfg, f"{tmp}/run/checkpoints/best.pt", overrides=["model.name=actionformer"])
    Traceback (most recent call last):
        ...
    tadkit.core.errors.CheckpointError: .../best.pt: checkpoint holds model 'asl' but the config asks for
    'actionformer' (...)
    """
    from .api import predict as f
    return f(config, checkpoint, features=features, subset=subset, videos=videos, out=out, overrides=overrides,
             **kwargs)


def evaluate(gt, pred, subset=None, tiou="activitynet", **kwargs):
    """Detection mAP of predictions against annotations, as ``tadkit eval`` computes it (no torch needed).

    The ActivityNet protocol, to the reference code's last bit: per tIoU threshold, per class,
    all-point interpolated AP; mAP averages the classes with ground truth in the subset.

    Parameters
    ----------
    gt : an annotation file (ActivityNet-style JSON) or its dict, or an
        :class:`tadkit.data.annotations.Annotations`.
    pred : a predictions file or dict (``{"results": {video_id: [{"segment", "label", "score"}]}}``,
        what :func:`predict` returns).
    subset : the annotation subset to evaluate; default: the subset holding most predicted
        videos (named in ``warnings``).
    tiou : a preset (``"thumos14"``: 0.3:0.7:0.1, ``"activitynet"``: 0.5:0.95:0.05,
        ``"multithumos"``, ``"charades"``, ``"ego4d"``, ``"epic"``), ``"0.3:0.7:0.1"``,
        ``"0.3,0.5"`` or a list of floats.
    **kwargs : ``exclude_ignored`` (drop predictions lying mostly in ignore regions, THUMOS14's
        Ambiguous), ``segmentation`` and ``frames_per_video`` (Charades-style frame mAP),
        ``recall_ks`` (default ``(1, 5, 10, 50, 100)``).

    Returns
    -------
    dict (fractions, JSON-ready): ``subset``, ``tiou`` (thresholds), ``mAP`` (one per
    threshold), ``average_mAP``, ``per_class_AP`` (label: one per threshold), ``recall``
    (``"R@k"``: one per threshold), ``num_videos``, ``num_ground_truth``, ``num_predictions``,
    ``warnings`` (unknown videos or labels, classes without predictions, ...); plus
    ``segmentation_mAP``, ``segmentation_per_class_AP``, ``frames_per_video`` with
    ``segmentation=True``.

    Raises
    ------
    tadkit.core.errors.DataError
        a file is missing or malformed; the subset does not exist (the message lists those
        that do) or has no ground truth; none of the predicted videos is in the annotations.
    tadkit.TadkitError
        ``tiou`` cannot be read or lies outside [0, 1].

    Example
    -------
    >>> import tempfile, tadkit
    >>> from tadkit.data.annotations import Annotations
    >>> from tadkit.data.synthetic import make_synthetic
    >>> tmp = tempfile.mkdtemp()
    >>> _ = make_synthetic(tmp, videos=8, classes=3, feature_dim=8)
    >>> ann = Annotations.load(f"{tmp}/annotations.json")
    >>> def shifted(by):                            # the ground truth of the validation videos, moved
    ...     return {"results": {v.video_id: [{"segment": [s + by, e + by], "label": label, "score": 0.9}
    ...                                      for (s, e), label in zip(v.segments, v.labels)]
    ...                         for v in ann.select("validation")}}
    >>> m = tadkit.evaluate(f"{tmp}/annotations.json", shifted(0.0), tiou="thumos14")
    >>> m["subset"], m["average_mAP"], len(m["mAP"]), sorted(m["recall"])[:2]
    ('validation', 1.0, 5, ['R@1', 'R@10'])
    >>> m = tadkit.evaluate(ann, shifted(1.0), subset="validation", tiou=[0.1, 0.9])
    >>> m["mAP"][0] > m["mAP"][1]                   # a one-second shift passes tIoU 0.1 more often than 0.9
    True
    >>> tadkit.evaluate(f"{tmp}/annotations.json", shifted(0.0), subset="test")
    Traceback (most recent call last):
        ...
    tadkit.core.errors.DataError: .../annotations.json: no video is in subset 'test'; the subsets are
    ['training', 'validation'] (pass one of those subset names)
    """
    from .api import evaluate as f
    return f(gt, pred, subset=subset, tiou=tiou, **kwargs)


def diagnose(gt, pred, subset=None, tiou="activitynet", **kwargs):
    """DETAD's error analysis of predictions, as ``tadkit diagnose`` computes it (no torch needed).

    The false-positive profile of the top 1G..10G predictions (true positive, double detection,
    wrong label, localisation, confusion, background), the normalised average-mAP (mAP_N) gained
    by removing each error type, the false-negative rate and mAP_N per bin of ground-truth
    coverage, length and number of instances; definitions in :mod:`tadkit.evaluation.diagnosis`.

    Parameters
    ----------
    gt : an annotation file (ActivityNet-style JSON) or its dict.
    pred : a predictions file or dict (what :func:`predict` returns).
    subset : the annotation subset; default: the subset holding most predicted videos.
    tiou : what :func:`evaluate` takes (a preset, a range, a list).
    **kwargs : ``limit_factor`` (10: the top 10G), ``min_tiou`` (0.1: below it a prediction is a
        background error), ``bins`` (``"auto"``, ``"activitynet"``, ``"thumos14"``, ``"quantile"``),
        ``fn_min_precision`` (0.05).

    Returns
    -------
    dict (fractions, JSON-ready): ``G``, ``false_positive_profile`` (ten bands, ``None`` where a band
    holds no prediction), ``removing_error_gain``, ``false_negative``, ``sensitivity`` and the
    counts; :func:`tadkit.evaluation.diagnosis_plots.plot_diagnosis` draws it.

    Raises
    ------
    tadkit.core.errors.DataError
        a file is missing or malformed, the subset does not exist or has no ground truth.
    tadkit.core.errors.ConfigError
        ``tiou`` or an option cannot be used.

    Example
    -------
    >>> import tadkit
    >>> gt = {"database": {"a": {"subset": "validation", "duration": 100.0, "annotations": [
    ...     {"segment": [10.0, 20.0], "label": "jump"}, {"segment": [50.0, 70.0], "label": "run"}]}}}
    >>> pred = {"results": {"a": [
    ...     {"segment": [10.0, 20.0], "label": "jump", "score": 0.9},    # right
    ...     {"segment": [10.5, 20.0], "label": "jump", "score": 0.8},    # the same action again
    ...     {"segment": [50.0, 70.0], "label": "jump", "score": 0.7},    # right place, wrong label
    ...     {"segment": [80.0, 90.0], "label": "run", "score": 0.6}]}}   # nothing there
    >>> d = tadkit.diagnose(gt, pred, tiou=[0.5])
    >>> d["G"]                           # ground-truth instances per class
    1
    >>> for band in d["false_positive_profile"][:4]:   # per class, its top N_j, the next N_j, ...
    ...     print(band and (band["band"], {k: v for k, v in band["fractions"].items() if v}))
    ('1G', {'true_positive': 0.5, 'background': 0.5})
    ('2G', {'double_detection': 1.0})
    ('3G', {'wrong_label': 1.0})
    None
    """
    from .evaluation.diagnosis import diagnose as _diagnose
    return _diagnose(gt, pred, subset=subset, tiou=tiou, **kwargs)


def extract(video_dir, weights=None, out_dir=None, **kwargs):
    """Extract I3D features of every video of a folder, as ``tadkit extract`` does.

    Each video is decoded (native fps unless ``fps``), its short side resized to
    ``short_side`` and centre-cropped to ``crop``; clips of ``window`` frames every ``stride``
    frames go through I3D, whose ``Mixed_5c`` output, averaged over time and space, is one
    1024-d feature. ``out_dir/<video_id>.npy`` is ``(T, C)`` float32 with
    ``T = ceil(frames / stride)``; ``out_dir/features.json`` records the timing, so
    :func:`train` needs no ``data.fps`` / ``feature_stride`` / ``feature_window``. Videos whose
    ``.npy`` exists are skipped, so an interrupted run continues where it stopped.

    Call it as ``extract(video_dir, out_dir=...)`` or ``extract(video_dir, weights, out_dir)``.

    Parameters
    ----------
    video_dir : folder of video files; a video's id is its file name without suffix.
    weights : I3D weights file (the ``i3d-kinetics-400`` checkpoint, or a PyTorch
        ``rgb_imagenet.pt``-style state dict); ``None``: the Kinetics-400 checkpoint that
        ``tadkit weights i3d`` put in the cache (``$TADKIT_HOME/weights``, default
        ``~/.cache/tadkit/weights``).
    out_dir : the feature folder to write (required).
    **kwargs : passed to :func:`tadkit.engine.extract.extract_features`: ``fps`` (resample to
        this rate), ``stride`` (4), ``window`` (16), ``short_side`` (256), ``crop`` (224),
        ``batch_size`` (8 clips), ``videos`` (only these ids), ``device`` (``"auto"``, ``"cpu"``,
        ``"cuda"``), ``amp`` (bfloat16 on the GPU), ``progress``, ``model`` (a backbone to use
        instead of the I3D of ``weights``).

    Returns
    -------
    tadkit.engine.extract.ExtractResult with ``out_dir``, ``extracted`` and ``skipped`` (video
    ids), ``failed``, ``frames`` (decoded by this run) and ``seconds``.

    Raises
    ------
    TypeError
        ``out_dir`` is not given.
    tadkit.core.errors.DataError
        ``video_dir`` is missing or holds no video; a requested id is not there; ``stride``,
        ``window``, ``fps`` or ``batch_size`` is not positive; ``out_dir`` is a file or holds
        features made with other settings; some videos cannot be read (raised at the end,
        naming them, after the other videos are written).
    tadkit.core.errors.CheckpointError
        ``weights`` is not usable as I3D weights.
    tadkit.core.errors.ConfigError
        ``weights`` is None and the cache holds no (intact) checkpoint: run
        ``tadkit weights i3d``; ``device="cuda"`` without a GPU.

    Example
    -------
    With the cached Kinetics-400 checkpoint (``tadkit weights i3d`` once, 50 MB):

    >>> result = tadkit.extract("videos/", out_dir="features/")   # doctest: +SKIP

    The same on two synthetic videos, with a small I3D of random weights in place of the
    checkpoint (``model=``; 128-d features that mean nothing, made in a second):

    >>> import tempfile, numpy as np, tadkit
    >>> from tadkit.data.synthetic_video import make_synthetic_videos
    >>> from tadkit.models.backbones.i3d import InceptionI3d
    >>> tmp = tempfile.mkdtemp()
    >>> _ = make_synthetic_videos(tmp, videos=2, frames=32, fps=10.0, size=32)
    >>> tiny = InceptionI3d(width=0.125, final_endpoint="Mixed_5c")
    >>> r = tadkit.extract(f"{tmp}/videos", out_dir=f"{tmp}/features", model=tiny, short_side=32, crop=32,
    ...                    progress=False)
    >>> r.extracted, r.frames
    (['synvid_000', 'synvid_001'], 64)
    >>> np.load(f"{tmp}/features/synvid_000.npy").shape      # ceil(32 frames / stride 4) x 128
    (8, 128)
    >>> tadkit.extract(f"{tmp}/videos", out_dir=f"{tmp}/features", model=tiny, short_side=32, crop=32,
    ...                progress=False).skipped                # already there
    ['synvid_000', 'synvid_001']
    >>> tadkit.extract(f"{tmp}/videos", f"{tmp}/features")
    Traceback (most recent call last):
        ...
    TypeError: tadkit.extract() needs out_dir, the feature folder to write: call extract(video_dir, out_dir=...)
    or extract(video_dir, weights, out_dir)
    """
    from .api import extract as f
    return f(video_dir, weights, out_dir, **kwargs)


def detect(config, checkpoint, video, *, weights=None, out=None, picture=None, overrides=(), **kwargs):
    """Detect the actions of one video file with a trained checkpoint, as ``tadkit detect`` does.

    No annotation file and no feature folder are needed. A feature-based checkpoint gets its
    features made on the fly with I3D and the extraction settings of the training features
    (their ``features.json``, else the :func:`extract` defaults); an end-to-end checkpoint
    (``model.backbone``, PointTAD / SP-TAD) reads the frames itself. Then the run's own
    inference: sliding windows, merging, the configured post-processing.

    Parameters
    ----------
    config : the run's config (``OUTPUT_DIR/config.yaml``), as :func:`load_config` takes.
    checkpoint : a ``.pt`` file written by :func:`train`.
    video : the video file; its id in the results is the file name without suffix.
    weights : I3D weights for a feature-based checkpoint (the file the training features
        were extracted with); ``None``: the Kinetics-400 checkpoint that ``tadkit weights i3d``
        put in the cache. End-to-end checkpoints do not use it.
    out : also write the results to this JSON file.
    picture : also draw a timeline of the detections (score >= 0.1) to this image file.
    overrides : ``key=value`` strings applied to ``config`` (``test.nms=hard``, ...).
    **kwargs : passed to :func:`tadkit.engine.detect.detect`: ``device`` (``"auto"``, ``"cpu"``,
        ``"cuda"``), ``progress``, ``batch_size`` (clips per I3D batch, 8).

    Returns
    -------
    dict: ActivityNet results of the one video, as :func:`predict` returns (seconds,
    sorted by score).

    Raises
    ------
    tadkit.core.errors.DataError
        the video is missing, unreadable or has no frames.
    tadkit.core.errors.CheckpointError
        the checkpoint is missing or not a tadkit checkpoint, holds another model than the
        config, or reads features of another width than the I3D gives.
    tadkit.core.errors.ConfigError
        a feature-based checkpoint, ``weights`` None and no (intact) checkpoint in the cache:
        run ``tadkit weights i3d``; a two-stream end-to-end checkpoint (it needs flow); a
        non-integer feature stride or window; ``device="cuda"`` without a GPU.

    Example
    -------
    A checkpoint trained on ``tadkit extract`` features, with the cached I3D checkpoint:

    >>> dets = tadkit.detect("runs/asl/config.yaml", "runs/asl/checkpoints/best.pt", "match.mp4")  # doctest: +SKIP

    An end-to-end SP-TAD, tiny, trained for one epoch on synthetic videos (no I3D weights involved):

    >>> import tempfile, tadkit
    >>> from tadkit.data.synthetic_video import make_synthetic_videos
    >>> tmp = tempfile.mkdtemp()
    >>> _ = make_synthetic_videos(tmp, videos=4, frames=48, fps=10.0, size=32)   # synvid_003 is "testing"
    >>> cfg = tadkit.load_config({
    ...     "data": {"annotations": f"{tmp}/annotations.json", "videos": f"{tmp}/videos",
    ...              "short_side": 32, "crop_size": 32, "test_subset": "testing"},
    ...     "model": {"name": "sptad", "max_seq_len": 64, "hidden_dim": 32, "num_proposals": 8, "num_stages": 2,
    ...               "attn_heads": 4, "ffn_dim": 64, "dynamic_dim": 8, "roi_size": 4,
    ...               "backbone": {"width": 0.125}},
    ...     "train": {"epochs": 1, "progress": False},
    ...     "test": {"tiou": "thumos14"},
    ...     "output_dir": f"{tmp}/run"})
    >>> run = tadkit.train(cfg)
    epoch ...
    >>> dets = tadkit.detect(f"{tmp}/run/config.yaml", f"{tmp}/run/checkpoints/last.pt",
    ...                      f"{tmp}/videos/synvid_003.mp4", picture=f"{tmp}/synvid_003.png", progress=False)
    >>> list(dets["results"]), sorted(dets["results"]["synvid_003"][0])
    (['synvid_003'], ['label', 'score', 'segment'])
    >>> tadkit.detect(cfg, f"{tmp}/run/checkpoints/last.pt", f"{tmp}/videos/missing.mp4")
    Traceback (most recent call last):
        ...
    tadkit.core.errors.DataError: .../missing.mp4: video file not found (check the path)
    """
    from .api import detect as f
    return f(config, checkpoint, video, weights=weights, out=out, picture=picture, overrides=overrides, **kwargs)


def fit(video_dir, labels, out, *, method="asl", overrides=(), **kwargs):
    """Videos and a label sheet to a trained detector, as ``tadkit fit`` does.

    Checks the sheet against the videos (every problem in one error), splits by video, writes
    ``out/annotations.json``, extracts I3D features into ``out/features/`` (resumable, and kept
    in the feature cache for later fits), writes ``out/config.yaml`` chosen from the data (its
    comments say why), trains, evaluates on the validation videos and summarises
    (``docs/videos.md``).

    Parameters
    ----------
    video_dir : folder of the videos the sheet names.
    labels : label sheet: CSV / TSV with video, start, end, label columns (common synonyms
        read; seconds or ``hh:mm:ss.ms``), or an ActivityNet-style JSON.
    out : the run folder to write.
    method : detector, ``configs/<method>/custom.yaml`` (``asl``).
    overrides : ``key=value`` strings applied last (``train.epochs=60``).
    **kwargs : passed to :func:`tadkit.engine.fit.fit`: ``val_fraction`` (0.2), ``seed`` (0, the
        split's), ``drop_defects``, ``weights`` (None: the cached I3D), ``short_side`` (256),
        ``crop`` (224), ``progress``, ``extract_model`` (a backbone in place of I3D),
        ``feature_cache`` (None: ``$TADKIT_HOME/features``; False: none), ``echo`` (where the
        summary goes: ``print``; None: nowhere).

    Returns
    -------
    tadkit.engine.fit.FitResult with ``run_dir``, ``config``, ``checkpoint`` (best.pt, else
    last.pt), ``metrics`` (of the final weights), ``per_class_ap``, ``too_few`` (classes with
    fewer than 3 training examples), ``subsets`` (video -> subset), ``notes``,
    ``detect_command`` and ``summary``.

    Raises
    ------
    tadkit.core.errors.DataError
        the sheet is unreadable, or has problems (all listed in the one message) and not
        ``drop_defects``; no training video is left; a video cannot be read.
    tadkit.core.errors.ConfigError
        ``out`` holds a finished run or cannot be written; an unknown method or override key;
        no ``weights`` and no cached I3D checkpoint (run ``tadkit weights i3d``).

    Example
    -------
    With the cached Kinetics-400 checkpoint (``tadkit weights i3d`` once):

    >>> result = tadkit.fit("videos/", "labels.csv", "runs/mine")     # doctest: +SKIP

    The same on eight synthetic clips and the label sheet ``make_synthetic_videos`` writes, with
    a small I3D of random weights (``extract_model=``) and a small ASL, in seconds:

    >>> import tempfile, tadkit
    >>> from tadkit.data.synthetic_video import make_synthetic_videos
    >>> from tadkit.models.backbones.i3d import InceptionI3d
    >>> tmp = tempfile.mkdtemp()
    >>> _ = make_synthetic_videos(tmp, videos=8, frames=48, fps=10.0, size=32, test_fraction=0)
    >>> small = ["model.embed_dim=16", "model.fpn_dim=16", "model.head_dim=16", "train.epochs=2",
    ...          "train.warmup_epochs=1", "train.progress=false"]
    >>> r = tadkit.fit(f"{tmp}/videos", f"{tmp}/labels.csv", f"{tmp}/run", overrides=small, short_side=32,
    ...                crop=32, extract_model=InceptionI3d(width=0.125, final_endpoint="Mixed_5c"),
    ...                feature_cache=False, progress=False, echo=None)
    epoch step lr loss ... average_mAP best_mAP time_s
    ...
    >>> sorted(p.name for p in r.run_dir.iterdir() if not p.name.startswith("."))
    ['annotations.json', 'checkpoints', 'config.yaml', 'features', 'label_sheet.json', 'log.csv', 'metrics.json', 'predictions.json', 'report.html']
    >>> sorted(r.subsets.values()).count("validation"), r.checkpoint.name
    (2, 'best.pt')
    >>> r.detect_command == f"tadkit detect VIDEO... --run {tmp}/run"
    True
    >>> print(r.config.read_text().splitlines()[0])
    # tadkit fit: asl on 8 videos of .../labels.csv (6 training, 2 validation; split by video, seed 0)
    """
    from .engine.fit import fit as f
    return f(video_dir, labels, out, method=method, overrides=overrides, **kwargs)


__all__ = ["TadkitError", "evaluate", "diagnose", "load_config", "build_detector", "train", "predict", "extract", "detect",
           "fit", "__version__"]
