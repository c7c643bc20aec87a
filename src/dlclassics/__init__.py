"""dlclassics: classic deep-learning experiments as fast, tested PyTorch software."""

import os

__version__ = "0.1.0"

# OpenMP's threads spin while they wait for work by default: on a machine whose cores are busy
# with other processes, two spinning threads of a 2-core machine took a small LSTM step from 7 ms
# to 615 ms. Passive threads sleep instead, at no cost to the arithmetic (the same threads do
# the same sums). Set before torch loads, as OpenMP reads it once; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
