import pytest
import torch

from ._toy import make_data


@pytest.fixture(autouse=True, scope="package")
def _one_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy machine OpenMP threads
    contending for the cores slow these tests down by an order of magnitude."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def toy_data(tmp_path_factory):
    """Six short synthetic videos (4 training, 2 validation), 3 classes, 8-d features."""
    root = tmp_path_factory.mktemp("toy_data")
    make_data(root)
    return root
