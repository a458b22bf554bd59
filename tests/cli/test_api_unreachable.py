"""Commands that need the API fail with one clear line when it is not running."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from cli.main import main


def closed_port_url() -> str:
    """A loopback URL on which nothing listens (a port just released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize(
    "argv",
    [
        ["runs", "list", "--agent", "data_manager"],
        ["approvals", "list"],
        ["approve", "run:call", "--note", "ok"],
        ["audit", "export", "--agent", "data_manager", "--run", "r1"],
    ],
)
def test_api_not_running_exits_1_with_one_line(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    url = closed_port_url()

    code = main([*argv, "--api-url", url])

    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1
    assert err.startswith(f"countersign: error: cannot reach the Countersign API at {url}")
    assert "connection refused" in err


def test_api_not_running_console_script_has_no_traceback() -> None:
    url = closed_port_url()

    done = subprocess.run(
        [sys.executable, "-m", "cli", "approvals", "list"],
        env={"COUNTERSIGN_API_URL": url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 1
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith(f"countersign: error: cannot reach the Countersign API at {url}")
