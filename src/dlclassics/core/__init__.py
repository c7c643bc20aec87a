"""The core every layer above builds on: errors, bounds, the run directory, checkpoints, the
machine, logs, distributed training, tables, plots and downloads. It imports nothing above it."""
