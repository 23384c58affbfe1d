"""Small helpers shared by the model tests."""
import torch


def prefix_mask(lengths, T):
    """(B, T) bool mask whose row b is True on its first ``lengths[b]`` steps."""
    return torch.arange(T)[None, :] < torch.as_tensor(lengths)[:, None]


def fill_padding(x, mask, value=1e3):
    """``x`` (B, C, T) with garbage written at the invalid steps."""
    return torch.where(mask[:, None, :], x, torch.full_like(x, value))


def pattern_batch(segments, labels, lengths, num_classes, channels, T, seed=0):
    """A detector batch: noise (std 0.3) plus a per-class pattern (std 2) on the steps ``[s, e]`` of
    each action, padding filled with garbage. ``segments`` / ``labels``: one tensor per video."""
    g = torch.Generator().manual_seed(seed)
    proto = torch.randn(num_classes, channels, generator=g) * 2
    feats = torch.randn(len(lengths), channels, T, generator=g) * 0.3
    for b, (segs, labs) in enumerate(zip(segments, labels)):
        for (s, e), lab in zip(segs.long().tolist(), labs.tolist()):
            feats[b, :, s:e + 1] += proto[lab][:, None]
    masks = prefix_mask(list(lengths), T)
    return {"feats": fill_padding(feats, masks), "masks": masks, "segments": segments, "labels": labels}
