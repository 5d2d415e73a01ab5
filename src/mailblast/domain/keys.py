"""Object keys: the ones we hand out for uploads, and the shape every key must have."""

from __future__ import annotations

import secrets
from datetime import datetime

from mailblast.domain.errors import InvalidInputError

__all__ = ["UPLOAD_PREFIX", "check_key", "new_upload_key"]

#: Every presigned upload lands below this prefix; callers never choose the key.
UPLOAD_PREFIX = "uploads/"


def new_upload_key(now: datetime) -> str:
    """A fresh key under ``uploads/`` that no caller can choose or guess."""
    return f"{UPLOAD_PREFIX}{now:%Y/%m/%d}/{secrets.token_hex(16)}.csv"


def check_key(key: str) -> str:
    """``key`` if it is a plain relative key (no empty, ``.`` or ``..`` parts)."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise InvalidInputError({"key": f"not a valid object key: {key!r}"})
    return key
