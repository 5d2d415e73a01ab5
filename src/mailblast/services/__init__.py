"""Use cases: async functions that drive the domain through the ports."""

from __future__ import annotations

from mailblast.services.deps import Deps, ServiceSettings, Unlimited

__all__ = ["Deps", "ServiceSettings", "Unlimited"]
