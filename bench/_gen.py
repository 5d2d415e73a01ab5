"""The benchmarks' CSV generator: the same one the demo uses, from the package."""

from __future__ import annotations

from mailblast.entrypoints.sample import Expected, write_csv

__all__ = ["Expected", "write_csv"]
