"""Small helpers shared by the model tests."""
import torch


def prefix_mask(lengths, T):
    """(B, T) bool mask whose row b is True on its first ``lengths[b]`` steps."""
    return torch.arange(T)[None, :] < torch.as_tensor(lengths)[:, None]


def fill_padding(x, mask, value=1e3):
    """``x`` (B, C, T) with garbage written at the invalid steps."""
    return torch.where(mask[:, None, :], x, torch.full_like(x, value))
