"""The campaign and recipient state machines: the tables of DESIGN §1, nothing more."""

from __future__ import annotations

import itertools
import uuid
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from factories import T0, new_campaign
from mailblast.domain.campaign import (
    CAMPAIGN_TRANSITIONS,
    Campaign,
    CampaignEvent,
    CampaignStatus,
    DeleteImport,
    MessageContent,
    StartImport,
    StartSend,
    StopWorkflow,
    next_campaign_status,
)
from mailblast.domain.errors import (
    InvalidInputError,
    InvalidTransitionError,
    StaleExecutionError,
    StaleImportError,
)
from mailblast.domain.recipient import (
    RECIPIENT_TRANSITIONS,
    RecipientEvent,
    RecipientStatus,
    Tally,
    next_recipient_status,
)

S = CampaignStatus


def test_labels_are_the_original_japanese_ones() -> None:
    """Each status carries the label staff know from the original design."""
    assert [s.label for s in CampaignStatus] == [
        "取込中",
        "取込失敗",
        "送信予約済",
        "送信中",
        "送信完了",
        "送信失敗",
    ]
    assert [s.label for s in RecipientStatus] == ["未送信", "送信済", "送信失敗", "バウンス"]


@pytest.mark.parametrize(
    ("status", "event"),
    [
        (s, e)
        for s, e in itertools.product([None, *CampaignStatus], CampaignEvent)
        if (s, e) not in CAMPAIGN_TRANSITIONS
    ],
)
def test_every_campaign_transition_outside_the_table_is_refused(
    status: CampaignStatus | None, event: CampaignEvent
) -> None:
    """Anything not in the table raises InvalidTransitionError naming the current status."""
    with pytest.raises(InvalidTransitionError) as caught:
        next_campaign_status(status, event)
    assert caught.value.current == str(status or "new")
    assert str(status or "new") in str(caught.value)


@pytest.mark.parametrize(
    ("status", "event"),
    [
        (s, e)
        for s, e in itertools.product([None, *RecipientStatus], RecipientEvent)
        if (s, e) not in RECIPIENT_TRANSITIONS
    ],
)
def test_every_recipient_transition_outside_the_table_is_refused(
    status: RecipientStatus | None, event: RecipientEvent
) -> None:
    """sent, failed and bounced are terminal for sending; the rest is refused too."""
    with pytest.raises(InvalidTransitionError):
        next_recipient_status(status, event)


def test_scheduled_at_without_an_offset_is_refused() -> None:
    """A naive time is ambiguous: the error names the field and the fix."""
    with pytest.raises(InvalidInputError) as caught:
        Campaign.register(
            campaign_id=uuid.uuid4(),
            import_id=uuid.uuid4(),
            name="x",
            from_address="a@example.com",
            content=MessageContent(subject="s", text="t"),
            scheduled_at=T0.replace(tzinfo=None),
            s3_key="uploads/x.csv",
            now=T0,
        )
    assert "scheduled_at" in caught.value.errors


def test_register_validates_every_field_at_once() -> None:
    """Empty name, subject and body are all reported together, by field."""
    with pytest.raises(InvalidInputError) as caught:
        Campaign.register(
            campaign_id=uuid.uuid4(),
            import_id=uuid.uuid4(),
            name=" ",
            from_address="a@example.com",
            content=MessageContent(subject="", text=""),
            scheduled_at=T0,
            s3_key="uploads/x.csv",
            now=T0,
        )
    assert set(caught.value.errors) == {"name", "subject", "text"}


def scheduled(campaign: Campaign | None = None) -> Campaign:
    """A campaign whose first import finished."""
    campaign = campaign or new_campaign()
    assert campaign.pending_import_id is not None
    return campaign.finish_import(
        import_id=campaign.pending_import_id, total_count=10, now=T0
    ).after


def test_edit_a_with_a_new_time_restarts_the_send_workflow() -> None:
    """Rescheduling stops the waiting execution and starts a new one the campaign points at."""
    campaign = scheduled()
    old = campaign.send_execution_id
    assert old is not None
    change = campaign.edit_metadata(now=T0, scheduled_at=campaign.scheduled_at + timedelta(days=1))
    assert change.after.status is S.SCHEDULED
    start, stop = change.commands
    assert stop == StopWorkflow(old)
    assert isinstance(start, StartSend)
    assert start.execution_name == change.after.send_execution_id != old


def test_edit_a_without_a_new_time_keeps_the_workflow() -> None:
    """A subject edit changes no workflow."""
    campaign = scheduled()
    change = campaign.edit_metadata(now=T0, content=MessageContent(subject="New", text="t"))
    assert change.commands == ()
    assert change.after.content.subject == "New"
    assert change.after.send_execution_id == campaign.send_execution_id


def test_edit_b_while_scheduled_stops_the_send_and_imports_again() -> None:
    """A new CSV moves a scheduled campaign back to importing with a fresh import id."""
    campaign = scheduled()
    new_import = uuid.uuid4()
    change = campaign.replace_csv(s3_key="uploads/new.csv", import_id=new_import, now=T0)
    assert change.after.status is S.IMPORTING
    assert change.after.pending_import_id == new_import
    assert change.after.current_import_id == campaign.current_import_id
    assert change.after.send_execution_id is None
    assert isinstance(change.commands[0], StartImport)
    assert isinstance(change.commands[1], StopWorkflow)


def test_finishing_a_replacement_import_drops_the_old_one() -> None:
    """The swap points at the new import and asks to delete the previous one."""
    first = scheduled()
    replaced = first.replace_csv(s3_key="uploads/b.csv", import_id=uuid.uuid4(), now=T0).after
    assert replaced.pending_import_id is not None
    change = replaced.finish_import(import_id=replaced.pending_import_id, total_count=5, now=T0)
    assert change.after.current_import_id == replaced.pending_import_id
    assert DeleteImport(first.id, first.current_import_id) in change.commands  # type: ignore[arg-type]


def test_a_failed_import_keeps_the_current_recipients() -> None:
    """Failing a replacement import leaves current_import_id alone and drops only its rows."""
    first = scheduled()
    replaced = first.replace_csv(s3_key="uploads/b.csv", import_id=uuid.uuid4(), now=T0).after
    pending = replaced.pending_import_id
    assert pending is not None
    change = replaced.fail_import(import_id=pending, reason="bad", now=T0)
    assert change.after.current_import_id == first.current_import_id
    assert change.commands == (DeleteImport(first.id, pending),)


class CampaignMachine(RuleBasedStateMachine):
    """Random sequences of requests: allowed ones follow the table, the rest are refused
    with a named error and change nothing; stale imports and executions never act."""

    def __init__(self) -> None:
        super().__init__()
        self.campaign = new_campaign()
        self.imports: list[uuid.UUID] = [self.campaign.pending_import_id]  # type: ignore[list-item]
        self.executions: list[str] = []
        self.seen: set[tuple[CampaignStatus, CampaignStatus]] = set()

    def _apply(self, action: str, make: object) -> None:
        before = self.campaign
        try:
            change = make()  # type: ignore[operator]
        except (InvalidTransitionError, StaleImportError, StaleExecutionError):
            return
        after = change.after
        assert after.version == before.version + 1
        self.seen.add((before.status, after.status))
        self.campaign = after
        for command in change.commands:
            if isinstance(command, StartImport):
                self.imports.append(command.import_id)
            if isinstance(command, StartSend):
                self.executions.append(command.execution_name)
        del action

    @rule(which=st.integers(min_value=0, max_value=5))
    def finish_import(self, which: int) -> None:
        """An import (maybe an old one) finishes."""
        import_id = self.imports[min(which, len(self.imports) - 1)]
        current = self.campaign.is_current_import(import_id)
        before = self.campaign
        self._apply(
            "finish",
            lambda: self.campaign.finish_import(import_id=import_id, total_count=3, now=T0),
        )
        if not current:
            assert self.campaign == before

    @rule(which=st.integers(min_value=0, max_value=5))
    def fail_import(self, which: int) -> None:
        """An import (maybe an old one) fails."""
        import_id = self.imports[min(which, len(self.imports) - 1)]
        current = self.campaign.is_current_import(import_id)
        before = self.campaign
        self._apply(
            "fail", lambda: self.campaign.fail_import(import_id=import_id, reason="x", now=T0)
        )
        if not current:
            assert self.campaign == before

    @rule()
    def replace_csv(self) -> None:
        """Staff upload a new CSV (edit B)."""
        allowed = self.campaign.status in (S.SCHEDULED, S.IMPORT_FAILED)
        before = self.campaign
        self._apply(
            "replace",
            lambda: self.campaign.replace_csv(
                s3_key="uploads/n.csv", import_id=uuid.uuid4(), now=T0
            ),
        )
        assert (self.campaign != before) == allowed

    @rule(days=st.integers(min_value=0, max_value=2))
    def edit_metadata(self, days: int) -> None:
        """Staff edit metadata (edit A), maybe the time."""
        allowed = self.campaign.status is S.SCHEDULED
        before = self.campaign
        self._apply(
            "edit",
            lambda: self.campaign.edit_metadata(
                now=T0, scheduled_at=self.campaign.scheduled_at + timedelta(days=days)
            ),
        )
        assert (self.campaign != before) == allowed

    @rule(which=st.integers(min_value=0, max_value=5))
    def start_sending(self, which: int) -> None:
        """A send execution (maybe a stale one) wakes up."""
        if not self.executions:
            return
        execution = self.executions[min(which, len(self.executions) - 1)]
        stale = execution != self.campaign.send_execution_id
        before = self.campaign
        self._apply("start", lambda: self.campaign.start_sending(execution_id=execution, now=T0))
        if stale:
            assert self.campaign == before

    @rule(pending=st.integers(min_value=0, max_value=1))
    def complete(self, pending: int) -> None:
        """The poller finds nothing (or something) pending."""
        before = self.campaign
        self._apply(
            "complete",
            lambda: self.campaign.complete_sending(
                tally=Tally(sent=2, failed=1, pending=pending), now=T0
            ),
        )
        if pending:
            assert self.campaign == before

    @rule()
    def fail_sending(self) -> None:
        """The send workflow fails."""
        self._apply(
            "fail_send",
            lambda: self.campaign.fail_sending(reason="x", tally=Tally(), now=T0),
        )

    @invariant()
    def statuses_follow_the_table(self) -> None:
        """Every observed move is an edge of the transition table."""
        edges = {(s, t) for (s, _), t in CAMPAIGN_TRANSITIONS.items() if s is not None}
        assert self.seen <= edges

    @invariant()
    def pointers_match_the_status(self) -> None:
        """Importing has a pending import; scheduled and later point at a current one."""
        c = self.campaign
        assert (c.pending_import_id is not None) == (c.status is S.IMPORTING)
        if c.status in (S.SCHEDULED, S.SENDING, S.COMPLETED, S.SEND_FAILED):
            assert c.current_import_id is not None
            assert c.send_execution_id is not None


TestCampaignMachine = CampaignMachine.TestCase
TestCampaignMachine.settings = settings(
    max_examples=300,
    stateful_step_count=30,
    suppress_health_check=[HealthCheck.too_slow],
    deadline=None,
)


def test_every_allowed_campaign_transition_is_reachable() -> None:
    """Random walks over the requests reach every edge of the table."""
    seen: set[tuple[CampaignStatus, CampaignStatus]] = set()

    @settings(max_examples=400, stateful_step_count=25, deadline=None)
    class Walk(CampaignMachine):
        def teardown(self) -> None:
            seen.update(self.seen)

    Walk.TestCase().runTest()
    edges = {(s, t) for (s, _), t in CAMPAIGN_TRANSITIONS.items() if s is not None}
    assert seen == edges


class RecipientMachine(RuleBasedStateMachine):
    """Random recipient events: only the table's moves happen, terminal stays terminal."""

    def __init__(self) -> None:
        super().__init__()
        self.status: RecipientStatus | None = None
        self.seen: set[tuple[RecipientStatus | None, RecipientStatus]] = set()

    @rule(event=st.sampled_from(RecipientEvent))
    def happen(self, event: RecipientEvent) -> None:
        """Apply one event; refused ones leave the status alone."""
        try:
            new = next_recipient_status(self.status, event)
        except InvalidTransitionError:
            assert (self.status, event) not in RECIPIENT_TRANSITIONS
            return
        self.seen.add((self.status, new))
        self.status = new

    @invariant()
    def terminal_is_terminal(self) -> None:
        """Once failed or bounced, nothing moves it."""
        assert all(
            before in (None, RecipientStatus.PENDING, RecipientStatus.SENT)
            for before, _ in self.seen
        )


TestRecipientMachine = RecipientMachine.TestCase


def test_the_send_poll_backs_off_only_while_nothing_moves() -> None:
    """Progress keeps the base wait; a stall doubles it up to the cap, then progress resets."""
    from mailblast.domain.batching import poll_wait_seconds

    waits = []
    previous, wait = -1, 0.0
    for pending in [100, 60, 60, 60, 60, 60, 60, 60, 10, 0]:
        wait = poll_wait_seconds(pending, previous, wait, base=60, cap=900)
        waits.append(wait)
        previous = pending
    assert waits == [60, 60, 120, 240, 480, 900, 900, 900, 60, 60]
