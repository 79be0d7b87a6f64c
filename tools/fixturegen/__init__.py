"""Rebuilds Tests/Fixtures/pytorch (see tools/README.md): checkpoints written by real PyTorch, their sidecars, and
the numbers the Swift tests compare against."""
