"""Static checks of ``infra/``: cfn-lint on the SAM template, cfn-lint on each state
machine definition (cfn-lint does not open SAM ``DefinitionUri`` files), a graph check of
each definition, and the template facts the design depends on. No network needed."""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
TEMPLATE = INFRA / "template.yaml"
MACHINES = {"ImportStateMachine": "import", "SendStateMachine": "send"}
SUBSTITUTION = re.compile(r"^\$\{(\w+)\}$")


def _cfn_lint(*paths: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("cfn-lint", path=str(Path(sys.executable).parent)) or "cfn-lint"
    return subprocess.run(  # noqa: PLW1510 - the return code is what is checked
        [exe, *map(str, paths)], capture_output=True, text=True, timeout=300
    )


def _template() -> dict[str, Any]:
    template, problems = decode(str(TEMPLATE))
    assert not problems, problems
    assert template is not None
    return dict(template)


def _definition(kind: str) -> dict[str, Any]:
    return dict(json.loads((INFRA / "statemachines" / f"{kind}.asl.json").read_text()))


def _substitutions(machine: str) -> set[str]:
    return set(_template()["Resources"][machine]["Properties"]["DefinitionSubstitutions"])


# --- the graph check -------------------------------------------------------------------


def _targets(state: Mapping[str, Any]) -> Iterator[str]:
    if "Next" in state:
        yield state["Next"]
    if "Default" in state:
        yield state["Default"]
    for choice in state.get("Choices", []):
        yield choice["Next"]
    for catch in state.get("Catch", []):
        yield catch["Next"]


def _scopes(
    definition: Mapping[str, Any], path: str = ""
) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every state-machine scope: the top level, each Map processor, each Parallel branch."""
    yield path or "(top)", definition
    for name, state in definition["States"].items():
        inner = state.get("ItemProcessor") or state.get("Iterator")
        if inner:
            yield from _scopes(inner, f"{path}/{name}")
        for index, branch in enumerate(state.get("Branches", [])):
            yield from _scopes(branch, f"{path}/{name}[{index}]")


def graph_problems(definition: Mapping[str, Any], substitutions: set[str]) -> list[str]:
    """Everything wrong with a definition's graph (empty when it is sound)."""
    problems: list[str] = []
    for scope, machine in _scopes(definition):
        states: Mapping[str, Any] = machine["States"]
        if machine["StartAt"] not in states:
            problems.append(f"{scope}: StartAt {machine['StartAt']} does not exist")
        for name, state in states.items():
            problems += [
                f"{scope}/{name}: target {target} does not exist"
                for target in _targets(state)
                if target not in states
            ]
            terminal = state["Type"] in ("Succeed", "Fail", "Choice") or state.get("End")
            if not terminal and "Next" not in state:
                problems.append(f"{scope}/{name}: neither Next nor End")
            if state["Type"] == "Task":
                match = SUBSTITUTION.match(str(state.get("Resource", "")))
                if match is None or match.group(1) not in substitutions:
                    problems.append(f"{scope}/{name}: Resource is not a defined substitution")
            if state["Type"] == "Map" and not 1 <= state.get("MaxConcurrency", 0) <= 40:
                problems.append(f"{scope}/{name}: MaxConcurrency must be 1..40")
        seen, todo = set(), [machine["StartAt"]]
        while todo:
            name = todo.pop()
            if name in seen or name not in states:
                continue
            seen.add(name)
            todo.extend(_targets(states[name]))
        problems += [f"{scope}/{name}: unreachable" for name in states if name not in seen]
    return problems


# --- the tests -------------------------------------------------------------------------


def test_cfn_lint_passes_on_the_sam_template() -> None:
    """cfn-lint finds nothing wrong in infra/template.yaml."""
    result = _cfn_lint(TEMPLATE)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("machine", "kind"), sorted(MACHINES.items()))
def test_cfn_lint_passes_on_each_definition_as_a_plain_state_machine(
    tmp_path: Path, machine: str, kind: str
) -> None:
    """Each ASL file, wrapped as an AWS::StepFunctions::StateMachine, passes cfn-lint."""
    arn = "arn:aws:lambda:us-east-1:123456789012:function:mailblast-{}"
    wrapper = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {
            "Machine": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {
                    "RoleArn": "arn:aws:iam::123456789012:role/mailblast-states",
                    "Definition": _definition(kind),
                    "DefinitionSubstitutions": {
                        name: arn.format(name) for name in sorted(_substitutions(machine))
                    },
                },
            }
        },
    }
    path = tmp_path / f"{kind}.json"
    path.write_text(json.dumps(wrapper))
    result = _cfn_lint(path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("machine", "kind"), sorted(MACHINES.items()))
def test_each_definition_graph_is_sound(machine: str, kind: str) -> None:
    """Every target exists, every state is reachable, every Task names a substitution."""
    substitutions = _substitutions(machine)
    definition = _definition(kind)
    assert graph_problems(definition, substitutions) == []
    used = {
        SUBSTITUTION.match(state["Resource"]).group(1)  # type: ignore[union-attr]
        for _, scope in _scopes(definition)
        for state in scope["States"].values()
        if state["Type"] == "Task"
    }
    assert used == substitutions


def test_the_graph_check_finds_what_it_looks_for() -> None:
    """A dangling target, an unreachable state and an unknown Resource are all reported."""
    broken = {
        "StartAt": "A",
        "States": {
            "A": {"Type": "Task", "Resource": "${Known}", "Next": "Missing"},
            "B": {"Type": "Task", "Resource": "arn:aws:lambda:x", "End": True},
        },
    }
    problems = graph_problems(broken, {"Known"})
    assert any("Missing does not exist" in p for p in problems)
    assert any("B: unreachable" in p for p in problems)
    assert any("B: Resource" in p for p in problems)


def test_send_workflow_shape() -> None:
    """The send machine waits on scheduled_at, ends quietly when stale, fails via its step."""
    states = _definition("send")["States"]
    assert states["WaitUntilScheduled"]["TimestampPath"] == "$.scheduled_at"
    begin_catch = states["Begin"]["Catch"]
    assert begin_catch[0]["ErrorEquals"] == ["StaleExecutionError"]
    assert states[begin_catch[0]["Next"]]["Type"] == "Succeed"
    for name, state in states.items():
        if state["Type"] in ("Task", "Map") and name != "FailSend":
            assert state["Catch"][-1] == {
                "ErrorEquals": ["States.ALL"],
                "ResultPath": "$.error",
                "Next": "FailSend",
            }, name
        if state["Type"] == "Task":
            assert "Lambda.ServiceException" in state["Retry"][0]["ErrorEquals"]
            assert "TransientError" in state["Retry"][0]["ErrorEquals"]


def test_import_workflow_shape() -> None:
    """The import machine discards a stale import and fails anything else via its step."""
    states = _definition("import")["States"]
    for name in ("Split", "InsertChunks", "Finalize", "ScheduleSend"):
        catches = states[name]["Catch"]
        assert catches[0]["ErrorEquals"] == ["StaleImportError"]
        assert catches[0]["Next"] == "DiscardStaleImport"
        assert catches[-1]["ErrorEquals"] == ["States.ALL"]
        assert catches[-1]["Next"] == "FailImport"
    assert states["FailImport"]["Parameters"]["error.$"] == "$.error"


def _function(resources: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    return dict(resources[name]["Properties"])


def test_template_queue_and_event_source_mapping_settings() -> None:
    """Visibility >= 6x the sender timeout, 3 receives to the DLQ, ESM caps and reports."""
    resources = _template()["Resources"]
    sender = _function(resources, "SenderFunction")
    queue = resources["SendQueue"]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * sender["Timeout"]
    assert queue["RedrivePolicy"]["maxReceiveCount"] == 3
    event = sender["Events"]["Batches"]["Properties"]
    assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert "MaximumConcurrency" in event["ScalingConfig"]
    bucket = resources["CampaignBucket"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    prefixes = {rule.get("Prefix") for rule in bucket["LifecycleConfiguration"]["Rules"]}
    assert {"uploads/", "imports/"} <= prefixes


def test_every_api_route_is_authenticated() -> None:
    """Both API variants have a default authorizer; every route event targets one of them."""
    resources = _template()["Resources"]
    apis = {n for n, r in resources.items() if r["Type"] == "AWS::Serverless::Api"}
    for name in apis:
        assert resources[name]["Properties"]["Auth"]["DefaultAuthorizer"], name
    for name, resource in resources.items():
        for event in resource.get("Properties", {}).get("Events", {}).values():
            if event["Type"] == "Api":
                assert event["Properties"]["RestApiId"]["Ref"] in apis, name
                assert "Auth" not in event["Properties"], name  # no route opts out


def test_every_handler_in_the_template_exists() -> None:
    """Each function's Handler names a callable in the package."""
    resources = _template()["Resources"]
    handlers = [
        r["Properties"]["Handler"]
        for r in resources.values()
        if r["Type"] == "AWS::Serverless::Function"
    ]
    assert len(handlers) == 16
    for handler in handlers:
        module, _, attribute = handler.rpartition(".")
        assert callable(getattr(importlib.import_module(module), attribute)), handler
