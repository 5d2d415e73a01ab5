"""``python -m mailblast``: the same CLI as the ``mailblast`` command."""

from __future__ import annotations

from mailblast.entrypoints.cli import main

raise SystemExit(main())
