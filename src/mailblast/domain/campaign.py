"""The campaign: its statuses, its transition table and the changes the use cases ask for.

Every change returns the new campaign (``attrs.evolve``, version + 1) together with the
commands the caller must carry out (start or stop a workflow, drop an old import).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from datetime import datetime
from email.utils import parseaddr
from typing import Any

import attrs

from mailblast.domain.addresses import normalize_address
from mailblast.domain.errors import (
    InvalidAddressError,
    InvalidInputError,
    InvalidTransitionError,
    StaleExecutionError,
    StaleImportError,
)
from mailblast.domain.recipient import Tally
from mailblast.domain.render import PLACEHOLDER

__all__ = [
    "CAMPAIGN_TRANSITIONS",
    "Campaign",
    "CampaignEvent",
    "CampaignStatus",
    "Change",
    "Command",
    "DeleteImport",
    "MessageContent",
    "StartImport",
    "StartSend",
    "StopWorkflow",
    "import_execution_name",
    "next_campaign_status",
    "placeholders",
    "send_execution_name",
]


class CampaignStatus(enum.StrEnum):
    """Where a campaign is in its life; values are stored in the database."""

    IMPORTING = "importing"
    IMPORT_FAILED = "import_failed"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    COMPLETED = "completed"
    SEND_FAILED = "send_failed"

    @property
    def label(self) -> str:
        """The original Japanese label shown to staff."""
        return _CAMPAIGN_LABELS[self]

    @property
    def is_final(self) -> bool:
        """True when the campaign will never change status again."""
        return self in (CampaignStatus.COMPLETED, CampaignStatus.SEND_FAILED)


_CAMPAIGN_LABELS: Mapping[CampaignStatus, str] = {
    CampaignStatus.IMPORTING: "取込中",
    CampaignStatus.IMPORT_FAILED: "取込失敗",
    CampaignStatus.SCHEDULED: "送信予約済",
    CampaignStatus.SENDING: "送信中",
    CampaignStatus.COMPLETED: "送信完了",
    CampaignStatus.SEND_FAILED: "送信失敗",
}


class CampaignEvent(enum.StrEnum):
    """What can happen to a campaign."""

    REGISTER = "register"
    IMPORT_SUCCEEDED = "finish_import"
    IMPORT_FAILED = "fail_import"
    CSV_REPLACED = "replace_csv"
    METADATA_EDITED = "edit_metadata"
    SEND_STARTED = "start_sending"
    SEND_COMPLETED = "complete_sending"
    SEND_FAILED = "fail_sending"


_S = CampaignStatus
_E = CampaignEvent

#: DESIGN §1, as data: (current status or None for a new campaign, event) -> next status.
CAMPAIGN_TRANSITIONS: Mapping[tuple[CampaignStatus | None, CampaignEvent], CampaignStatus] = {
    (None, _E.REGISTER): _S.IMPORTING,
    (_S.IMPORTING, _E.IMPORT_SUCCEEDED): _S.SCHEDULED,
    (_S.IMPORTING, _E.IMPORT_FAILED): _S.IMPORT_FAILED,
    (_S.IMPORT_FAILED, _E.CSV_REPLACED): _S.IMPORTING,
    (_S.SCHEDULED, _E.CSV_REPLACED): _S.IMPORTING,
    (_S.SCHEDULED, _E.METADATA_EDITED): _S.SCHEDULED,
    (_S.SCHEDULED, _E.SEND_STARTED): _S.SENDING,
    (_S.SENDING, _E.SEND_COMPLETED): _S.COMPLETED,
    (_S.SENDING, _E.SEND_FAILED): _S.SEND_FAILED,
}


def next_campaign_status(current: CampaignStatus | None, event: CampaignEvent) -> CampaignStatus:
    """Apply the transition table; raise `InvalidTransitionError` for anything it lacks."""
    try:
        return CAMPAIGN_TRANSITIONS[(current, event)]
    except KeyError:
        raise InvalidTransitionError(
            entity="campaign", current=str(current or "new"), event=event.value
        ) from None


def placeholders(text: str) -> frozenset[str]:
    """The merge-field names used as ``{{name}}`` in a template text."""
    return frozenset(m.group(1) for m in PLACEHOLDER.finditer(text))


@attrs.frozen(kw_only=True)
class MessageContent:
    """What every recipient gets: subject, text and optional HTML with ``{{field}}``s."""

    subject: str
    text: str
    html: str | None = None

    def fields_used(self) -> frozenset[str]:
        """Every merge field the message refers to."""
        return placeholders(self.subject) | placeholders(self.text) | placeholders(self.html or "")

    def problems(self) -> dict[str, str]:
        """Field path -> reason for content that cannot be sent."""
        errors: dict[str, str] = {}
        if not self.subject.strip():
            errors["subject"] = "must not be empty"
        elif "\n" in self.subject or "\r" in self.subject:
            errors["subject"] = "must be one line"
        if not self.text.strip() and not (self.html or "").strip():
            errors["text"] = "text or html must not be empty"
        return errors


# --- commands: what a caller must do after a change --------------------------------------


def import_execution_name(import_id: uuid.UUID) -> str:
    """Deterministic (<= 80 characters, as Step Functions wants): one execution per import."""
    return f"import-{import_id}"


def send_execution_name(campaign_id: uuid.UUID, version: int) -> str:
    """Deterministic per campaign version: a reschedule is a new execution."""
    return f"send-{campaign_id}-v{version}"


@attrs.frozen
class StartImport:
    """Start the import workflow for ``import_id`` under ``execution_name``."""

    campaign_id: uuid.UUID
    import_id: uuid.UUID
    execution_name: str


@attrs.frozen
class StopWorkflow:
    """Stop a workflow execution (an already finished one is fine)."""

    execution_id: str


@attrs.frozen
class StartSend:
    """Start the send workflow that waits until ``scheduled_at``, under ``execution_name``.

    The campaign stores the name before the execution starts, so a send workflow that
    begins at once already finds itself current.
    """

    campaign_id: uuid.UUID
    scheduled_at: datetime
    execution_name: str


@attrs.frozen
class DeleteImport:
    """Remove the recipients of an import that is no longer current (outside the swap)."""

    campaign_id: uuid.UUID
    import_id: uuid.UUID


Command = StartImport | StopWorkflow | StartSend | DeleteImport


@attrs.frozen
class Change:
    """A campaign after a change, and the commands that must follow it."""

    before: Campaign
    after: Campaign
    commands: tuple[Command, ...] = ()


def sender_problem(value: str) -> str | None:
    """Why ``value`` cannot be the From address (``a@b.jp`` or ``Name <a@b.jp>``), or None."""
    name, address = parseaddr(value)
    if not address or (not name and address != value.strip()):
        return "must be an email address, optionally with a name: Name <news@example.com>"
    try:
        normalize_address(address)
    except InvalidAddressError as exc:
        return f"is not an address SES accepts: {exc.reason}"
    return None


def _aware(value: datetime, path: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError({path: "must carry a UTC offset, e.g. 2026-12-24T09:00:00+09:00"})


@attrs.frozen(kw_only=True)
class Campaign:
    """One send of one message to one imported list. Change it only through its methods."""

    id: uuid.UUID
    name: str
    from_address: str
    content: MessageContent
    scheduled_at: datetime
    status: CampaignStatus
    s3_key: str
    current_import_id: uuid.UUID | None = None
    pending_import_id: uuid.UUID | None = None
    total_count: int = 0
    sent_count: int = 0
    failed_count: int = 0
    bounced_count: int = 0
    import_execution_id: str | None = None
    send_execution_id: str | None = None
    last_error: str | None = None
    version: int = 1
    created_at: datetime
    updated_at: datetime

    # --- construction ------------------------------------------------------------------

    @classmethod
    def register(
        cls,
        *,
        campaign_id: uuid.UUID,
        import_id: uuid.UUID,
        name: str,
        from_address: str,
        content: MessageContent,
        scheduled_at: datetime,
        s3_key: str,
        now: datetime,
    ) -> Change:
        """A new campaign in ``importing``, and the import to start."""
        errors = content.problems()
        if not name.strip():
            errors["name"] = "must not be empty"
        if (problem := sender_problem(from_address)) is not None:
            errors["from_address"] = problem
        if not s3_key:
            errors["s3_key"] = "must not be empty"
        if errors:
            raise InvalidInputError(errors)
        _aware(scheduled_at, "scheduled_at")
        status = next_campaign_status(None, CampaignEvent.REGISTER)
        campaign = cls(
            id=campaign_id,
            name=name,
            from_address=from_address,
            content=content,
            scheduled_at=scheduled_at,
            status=status,
            s3_key=s3_key,
            pending_import_id=import_id,
            import_execution_id=import_execution_name(import_id),
            created_at=now,
            updated_at=now,
        )
        start = StartImport(campaign_id, import_id, import_execution_name(import_id))
        return Change(campaign, campaign, (start,))

    # --- helpers -----------------------------------------------------------------------

    def _to(self, event: CampaignEvent, now: datetime, **changes: Any) -> Campaign:
        status = next_campaign_status(self.status, event)
        changed = attrs.evolve(self, status=status, version=self.version + 1, updated_at=now)
        return attrs.evolve(changed, **changes) if changes else changed

    def _stop_send(self) -> tuple[Command, ...]:
        if self.status is CampaignStatus.SCHEDULED and self.send_execution_id:
            return (StopWorkflow(self.send_execution_id),)
        return ()

    # --- edits (DESIGN §2) -------------------------------------------------------------

    def _metadata(
        self,
        *,
        name: str | None,
        from_address: str | None,
        content: MessageContent | None,
        scheduled_at: datetime | None,
    ) -> Campaign:
        new_content = content or self.content
        errors = new_content.problems()
        if name is not None and not name.strip():
            errors["name"] = "must not be empty"
        if from_address is not None and (problem := sender_problem(from_address)) is not None:
            errors["from_address"] = problem
        if errors:
            raise InvalidInputError(errors)
        if scheduled_at is not None:
            _aware(scheduled_at, "scheduled_at")
        return attrs.evolve(
            self,
            name=self.name if name is None else name,
            from_address=from_address or self.from_address,
            content=new_content,
            scheduled_at=scheduled_at or self.scheduled_at,
        )

    def edit_metadata(
        self,
        *,
        now: datetime,
        name: str | None = None,
        from_address: str | None = None,
        content: MessageContent | None = None,
        scheduled_at: datetime | None = None,
    ) -> Change:
        """Edit A: metadata only; a new ``scheduled_at`` restarts the send workflow."""
        edited = self._metadata(
            name=name, from_address=from_address, content=content, scheduled_at=scheduled_at
        )
        after = edited._to(CampaignEvent.METADATA_EDITED, now)
        commands: tuple[Command, ...] = ()
        if after.scheduled_at != self.scheduled_at:
            name_ = send_execution_name(self.id, after.version)
            # start the new wait first: if the stop then fails, the old one is stale anyway
            commands = (StartSend(self.id, after.scheduled_at, name_), *self._stop_send())
            after = attrs.evolve(after, send_execution_id=name_)
        return Change(self, after, commands)

    def replace_csv(
        self,
        *,
        s3_key: str,
        import_id: uuid.UUID,
        now: datetime,
        name: str | None = None,
        from_address: str | None = None,
        content: MessageContent | None = None,
        scheduled_at: datetime | None = None,
    ) -> Change:
        """Edit B: a new CSV (and optionally new metadata); stop a waiting send workflow
        and import again."""
        if not s3_key:
            raise InvalidInputError({"s3_key": "must not be empty"})
        edited = self._metadata(
            name=name, from_address=from_address, content=content, scheduled_at=scheduled_at
        )
        after = edited._to(
            CampaignEvent.CSV_REPLACED,
            now,
            s3_key=s3_key,
            pending_import_id=import_id,
            import_execution_id=import_execution_name(import_id),
            send_execution_id=None,
            last_error=None,
        )
        start = StartImport(self.id, import_id, import_execution_name(import_id))
        return Change(self, after, (start, *self._stop_send()))

    # --- import workflow ---------------------------------------------------------------

    def _check_import(self, import_id: uuid.UUID) -> None:
        if self.pending_import_id != import_id or self.status is not CampaignStatus.IMPORTING:
            raise StaleImportError(
                campaign_id=self.id, import_id=import_id, expected=self.pending_import_id
            )

    def is_current_import(self, import_id: uuid.UUID) -> bool:
        """True while ``import_id`` is the import this campaign waits for."""
        return self.status is CampaignStatus.IMPORTING and self.pending_import_id == import_id

    def finish_import(self, *, import_id: uuid.UUID, total_count: int, now: datetime) -> Change:
        """The swap: point at the new import, drop the old one later, start the send wait."""
        self._check_import(import_id)
        version = self.version + 1
        name = send_execution_name(self.id, version)
        after = self._to(
            CampaignEvent.IMPORT_SUCCEEDED,
            now,
            send_execution_id=name,
            current_import_id=import_id,
            pending_import_id=None,
            total_count=total_count,
            sent_count=0,
            failed_count=0,
            bounced_count=0,
            last_error=None,
        )
        commands: list[Command] = []
        if self.current_import_id is not None and self.current_import_id != import_id:
            commands.append(DeleteImport(self.id, self.current_import_id))
        commands.append(StartSend(self.id, after.scheduled_at, name))
        return Change(self, after, tuple(commands))

    def fail_import(self, *, import_id: uuid.UUID, reason: str, now: datetime) -> Change:
        """The import failed: keep the current recipients, drop the partial new ones."""
        self._check_import(import_id)
        after = self._to(
            CampaignEvent.IMPORT_FAILED, now, pending_import_id=None, last_error=reason
        )
        return Change(self, after, (DeleteImport(self.id, import_id),))

    # --- send workflow -----------------------------------------------------------------

    def _check_execution(self, execution_id: str) -> None:
        if self.send_execution_id != execution_id:
            raise StaleExecutionError(
                campaign_id=self.id, execution_id=execution_id, expected=self.send_execution_id
            )

    def start_sending(self, *, execution_id: str, now: datetime) -> Change:
        """``scheduled_at`` reached: only the execution the campaign points at may start."""
        self._check_execution(execution_id)
        return Change(self, self._to(CampaignEvent.SEND_STARTED, now))

    def complete_sending(self, *, tally: Tally, now: datetime) -> Change:
        """Every recipient reached a terminal status: store the counts."""
        if tally.pending:
            raise InvalidTransitionError(
                entity="campaign",
                current=f"{self.status.value} with {tally.pending} recipients pending",
                event=CampaignEvent.SEND_COMPLETED.value,
            )
        after = self._to(
            CampaignEvent.SEND_COMPLETED,
            now,
            sent_count=tally.sent,
            failed_count=tally.failed,
            bounced_count=tally.bounced,
        )
        return Change(self, after)

    def fail_sending(self, *, reason: str, tally: Tally, now: datetime) -> Change:
        """The send workflow itself failed (not: some recipients failed)."""
        after = self._to(
            CampaignEvent.SEND_FAILED,
            now,
            last_error=reason,
            sent_count=tally.sent,
            failed_count=tally.failed,
            bounced_count=tally.bounced,
        )
        return Change(self, after)

    def note_error(self, *, reason: str, now: datetime) -> Campaign:
        """Keep why a workflow failed without changing the status."""
        return attrs.evolve(self, last_error=reason, version=self.version + 1, updated_at=now)
