"""What the installed distribution puts on ``sys.path``."""

from __future__ import annotations

from importlib.metadata import distribution

import countersign


def test_distribution_installs_no_top_level_agents_package() -> None:
    # ``agents`` is the OpenAI Agents SDK's package (which
    # temporalio.contrib.openai_agents imports): owning that name would make the
    # two impossible to install side by side.
    top_level = distribution("countersign").read_text("top_level.txt")
    assert top_level is not None
    names = set(top_level.split())
    assert "countersign" in names
    assert "agents" not in names


def test_authoring_api_is_importable_from_the_package() -> None:
    from countersign import Agent, ToolContext, tool  # noqa: F401

    assert set(countersign.__all__) >= {"Agent", "ToolContext", "tool"}


def test_package_ships_py_typed() -> None:
    files = distribution("countersign").files or []
    shipped = {str(f) for f in files}
    # An editable install lists its finder, not the tree: check the source too.
    from pathlib import Path

    assert (Path(countersign.__file__).parent / "py.typed").exists() or any(
        name.endswith("countersign/py.typed") for name in shipped
    )
