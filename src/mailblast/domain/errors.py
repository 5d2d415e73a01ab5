"""The error hierarchy: one root, names for business facts, transient vs permanent for I/O."""

from __future__ import annotations

__all__ = [
    "CampaignNotFoundError",
    "ConcurrentUpdateError",
    "CsvFileError",
    "DomainError",
    "InvalidAddressError",
    "InvalidInputError",
    "InvalidTransitionError",
    "MailblastError",
    "NotFoundError",
    "NotSentError",
    "PermanentError",
    "StaleExecutionError",
    "StaleImportError",
    "ThrottledError",
    "TransientError",
]


class MailblastError(Exception):
    """Root of every error mailblast raises on purpose."""


class DomainError(MailblastError):
    """A request the business rules refuse."""


class InvalidTransitionError(DomainError):
    """A status change the state machine does not allow from the current status."""

    def __init__(self, *, entity: str, current: str, event: str) -> None:
        self.entity = entity
        self.current = current
        self.event = event
        super().__init__(f"cannot {event.replace('_', ' ')}: the {entity} is {current}")


class StaleImportError(DomainError):
    """An import finished (or failed) after a newer import started for the same campaign."""

    def __init__(self, *, campaign_id: object, import_id: object, expected: object) -> None:
        self.campaign_id = campaign_id
        self.import_id = import_id
        self.expected = expected
        super().__init__(
            f"import {import_id} of campaign {campaign_id} is stale (current: {expected})"
        )


class StaleExecutionError(DomainError):
    """A send workflow execution that is no longer the one the campaign points at."""

    def __init__(self, *, campaign_id: object, execution_id: str, expected: str | None) -> None:
        self.campaign_id = campaign_id
        self.execution_id = execution_id
        self.expected = expected
        super().__init__(
            f"send execution {execution_id} of campaign {campaign_id} is stale "
            f"(current: {expected})"
        )


class NotFoundError(DomainError):
    """Something asked for by id does not exist."""


class CampaignNotFoundError(NotFoundError):
    """No campaign has this id."""

    def __init__(self, campaign_id: object) -> None:
        self.campaign_id = campaign_id
        super().__init__(f"campaign {campaign_id} does not exist")


class ConcurrentUpdateError(DomainError):
    """A compare-and-set lost: someone else changed the record first."""

    def __init__(self, *, entity: str, entity_id: object, expected_version: int) -> None:
        self.entity = entity
        self.entity_id = entity_id
        self.expected_version = expected_version
        super().__init__(
            f"{entity} {entity_id} was changed concurrently (expected version {expected_version})"
        )


class InvalidInputError(DomainError):
    """A request body or option is malformed; ``errors`` maps field paths to reasons."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__("; ".join(f"{path}: {why}" for path, why in self.errors.items()))


class InvalidAddressError(DomainError):
    """An email address SES would not accept."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class CsvFileError(DomainError):
    """The CSV file as a whole cannot be imported; ``reason`` is meant for a person."""

    def __init__(self, reason: str, *, code: str) -> None:
        self.reason = reason
        self.code = code
        super().__init__(reason)


class TransientError(MailblastError):
    """An I/O failure that may succeed when retried later."""


class NotSentError(TransientError):
    """The call certainly did not take effect (refused or never delivered); safe to retry."""


class ThrottledError(NotSentError):
    """The provider refused the call for rate or quota; nothing was done, retry later."""


class PermanentError(MailblastError):
    """An I/O failure that will fail again the same way."""


class BlobNotFoundError(NotFoundError):
    """No object has this key."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"no object at {key}")


__all__ += ["BlobNotFoundError"]
