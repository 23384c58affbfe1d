import inspect

import pytest

from tadkit.core.errors import ConfigError
from tadkit.models import _hyperparameters, available_detectors, build_detector, detector_class, detector_defaults
from tadkit.models.detectors.actionformer import ActionFormer


def test_detectors_are_found_by_module_name():
    assert "actionformer" in available_detectors()
    assert detector_class("actionformer") is ActionFormer


def test_unknown_name_lists_the_available_ones():
    with pytest.raises(ConfigError, match="unknown model.name 'nope'.*actionformer"):
        build_detector("nope", num_classes=2, input_dim=4, max_seq_len=32)


def test_unknown_hyperparameter_is_named_with_the_valid_ones():
    with pytest.raises(ConfigError) as err:
        build_detector("actionformer", num_classes=2, input_dim=4, max_seq_len=32, windw_size=9)
    assert "windw_size" in str(err.value) and "window_size" in str(err.value)


def test_defaults_cover_every_hyperparameter_and_exclude_the_contract_ones():
    defaults = detector_defaults("actionformer")
    params = inspect.signature(ActionFormer).parameters
    assert set(defaults) == set(params) - {"num_classes", "input_dim", "max_seq_len"}
    assert all(defaults[k] == params[k].default for k in defaults)


def test_hyperparameters_follow_kwargs_to_the_base_class():
    class Sub(ActionFormer):
        def __init__(self, num_classes, input_dim, max_seq_len=64, *, extra: int = 1, window_size: int = 7,
                     **kwargs):
            super().__init__(num_classes, input_dim, max_seq_len, window_size=window_size, **kwargs)

    params = _hyperparameters(Sub)
    assert params["extra"].default == 1 and params["window_size"].default == 7  # the subclass wins
    assert "embed_dim" in params and "kwargs" not in params

    class Closed(ActionFormer):
        def __init__(self, num_classes, input_dim, max_seq_len=64, *, only: int = 1):
            super().__init__(num_classes, input_dim, max_seq_len)

    assert set(_hyperparameters(Closed)) == {"only"}


def test_build_passes_the_contract_arguments():
    model = build_detector("actionformer", num_classes=3, input_dim=4, max_seq_len=32, embed_dim=8, fpn_dim=8,
                           head_dim=8, num_heads=2, branch_layers=1, regression_ranges=[(0, 4), (4, 1e4)])
    assert (model.num_classes, model.input_dim, model.max_seq_len) == (3, 4, 32)
