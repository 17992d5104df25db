"""``make invoke``'s exit status for the mistakes it can find before starting a stack: 2, and a line that says
what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from local import invoke


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = invoke.main(list(argv))
    return code, capsys.readouterr().err


def test_an_event_file_that_is_missing_or_not_json_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")

    assert run(capsys, "RotateFunction", str(tmp_path / "nope.json"))[0] == 2
    code, err = run(capsys, "RotateFunction", str(broken))
    assert code == 2 and f"cannot read the event {broken}" in err


def test_attaching_with_no_running_stack_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    event = tmp_path / "event.json"
    event.write_text("{}")

    code, err = run(capsys, "RotateFunction", str(event), "--attach", "--state-file", str(tmp_path / "none.json"))

    assert code == 2 and err.strip()


def test_a_malformed_parameter_override_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    event = tmp_path / "event.json"
    event.write_text("{}")

    code, err = run(capsys, "RotateFunction", str(event), "--param", "NoEqualsSign")

    assert code == 2 and err.strip()
