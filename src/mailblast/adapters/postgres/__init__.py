"""PostgreSQL (asyncpg) adapters: the campaign and recipient repositories, the pool, migrations.

Importing this package connects to nothing; `PostgresPool` connects on first use.
"""

from __future__ import annotations

from mailblast.adapters.postgres.campaigns import PostgresCampaignRepo
from mailblast.adapters.postgres.migrate import (
    Migration,
    MigrationError,
    available_migrations,
    schema_version,
    upgrade,
    upgrade_dsn,
)
from mailblast.adapters.postgres.pool import (
    PostgresPool,
    PostgresSettings,
    redact_dsn,
    translate_error,
)
from mailblast.adapters.postgres.recipients import PostgresRecipientRepo

__all__ = [
    "Migration",
    "MigrationError",
    "PostgresCampaignRepo",
    "PostgresPool",
    "PostgresRecipientRepo",
    "PostgresSettings",
    "available_migrations",
    "redact_dsn",
    "schema_version",
    "translate_error",
    "upgrade",
    "upgrade_dsn",
]
