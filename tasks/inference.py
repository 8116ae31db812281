"""Torch at the edge of numpy: the one batched-inference loop.

Every network of the tasks (VQ-VAE encoder and decoder, scorers, metric feature extractors) is
run through :func:`batched_inference`, so batching, inference mode and the eval/train switch are
handled in one place.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn



def batched_inference(module: nn.Module, forward: Callable[[torch.Tensor], torch.Tensor], inputs: np.ndarray,
                      device: torch.device, batch_size: int = 256) -> np.ndarray:
    """``forward`` over consecutive batches of ``inputs`` on ``device``, concatenated as numpy.

    ``module`` is switched to eval mode for the duration (and back to its previous mode after),
    and everything runs under ``torch.inference_mode``. Empty ``inputs`` go through ``forward``
    once as an empty batch, so the result has the right trailing shape.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    inputs = np.ascontiguousarray(inputs)
    was_training = module.training
    module.eval()
    try:
        with torch.inference_mode():
            starts = range(0, len(inputs), batch_size) if len(inputs) else [0]
            outputs = [forward(torch.from_numpy(inputs[s:s + batch_size]).to(device)).cpu().numpy() for s in starts]
    finally:
        module.train(was_training)
    return np.concatenate(outputs, axis=0)
