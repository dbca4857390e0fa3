"""docs/state-machine.md is what statemachine/diagram.py draws from the committed definitions
(data refresh and worker range), and it shows every state of them, so the diagram cannot drift
from the machines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_diagram_is_current():
    result = subprocess.run(
        [sys.executable, str(ROOT / "statemachine" / "diagram.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("machine", ["data-refresh", "worker-range"])
def test_every_state_is_drawn(machine):
    definition = json.loads((ROOT / "statemachine" / f"{machine}.asl.json").read_text())
    diagram = (ROOT / "docs" / "state-machine.md").read_text()

    def names(states: dict):
        for name, state in states.items():
            yield name
            processor = state.get("ItemProcessor") or state.get("Iterator")
            if processor:
                yield from names(processor["States"])

    missing = [name for name in names(definition["States"]) if f'"{name}"' not in diagram]
    assert not missing, f"states not in the diagram: {missing}"
