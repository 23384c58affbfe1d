import pytest

from tests.torch_threads import one_torch_thread  # noqa: F401  (autouse)

from ._toy import make_data


@pytest.fixture(scope="session")
def toy_data(tmp_path_factory):
    """Six short synthetic videos (4 training, 2 validation), 3 classes, 8-d features."""
    root = tmp_path_factory.mktemp("toy_data")
    make_data(root)
    return root
