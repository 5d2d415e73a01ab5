"""mailblast: one email campaign to hundreds of thousands of recipients, on time, once each."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
