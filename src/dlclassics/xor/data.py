"""The XOR points, and the validation set of the hyperparameter study."""

import torch

INPUTS = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
TARGETS = torch.tensor([[0.0], [1.0], [1.0], [0.0]])

# The four XOR points first, then four points near the corners: the batched sweep relies on the
# training set being the first four validation points.
VAL_INPUTS = torch.cat([INPUTS, torch.tensor([[1.0, 0.1], [1.0, 0.9], [0.9, 0.9], [0.1, 0.9]])])
VAL_TARGETS = torch.cat([TARGETS, torch.tensor([[1.0], [0.0], [0.0], [1.0]])])
