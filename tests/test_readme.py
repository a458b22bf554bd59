"""The README stays true to the code: every setting documented, the two commands first."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import AliasChoices

from countersign.settings import Settings

README = (Path(__file__).parents[1] / "README.md").read_text()


def _env_names() -> list[str]:
    names = []
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        assert isinstance(alias, AliasChoices)
        names.append(str(alias.choices[0]))
    return names


def test_readme_documents_every_setting() -> None:
    table = README.split("## Settings", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", table))
    missing = [name for name in _env_names() if name not in documented]
    assert missing == []


def test_readme_opens_with_the_two_commands() -> None:
    first_section = README.split("\n## ", 2)[1]
    assert first_section.startswith("The two commands")
    assert "make up" in first_section
    assert "make test" in first_section
