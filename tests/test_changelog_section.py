"""scripts/changelog_section.py: the release workflow's notes are one version's CHANGELOG section."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from tests.conftest import ROOT
from tests.support.modules import load_file

if TYPE_CHECKING:
    from pathlib import Path
    from types import ModuleType

SCRIPT = ROOT / "scripts" / "changelog_section.py"

SAMPLE = """\
# Changelog

All notable changes to this project are documented here.

## [Unreleased]

### Added
- A queue call.

## [1.1.0] - 2026-12-20

### Fixed
- The PIN read retries a 503.

```text
## [9.9.9] - a heading inside a code block is not a section
```

## [1.0.0] - 2026-12-08

### Added
- First release.

[Unreleased]: https://example.invalid/compare/v1.1.0...HEAD
[1.1.0]: https://example.invalid/compare/v1.0.0...v1.1.0
"""

FIXED_1_1_0 = """\
### Fixed
- The PIN read retries a 503.

```text
## [9.9.9] - a heading inside a code block is not a section
```
"""


def load_script() -> ModuleType:
    return load_file(SCRIPT, "changelog_section")


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return load_script()


@pytest.mark.parametrize(
    ("version", "notes"),
    [
        pytest.param("1.1.0", FIXED_1_1_0, id="found-up-to-the-next-heading"),
        pytest.param("v1.1.0", FIXED_1_1_0, id="a-tag-name-with-v"),
        pytest.param("1.0.0", "### Added\n- First release.\n", id="last-section-stops-at-link-definitions"),
        pytest.param("Unreleased", "### Added\n- A queue call.\n", id="unreleased"),
        pytest.param("unreleased", "### Added\n- A queue call.\n", id="unreleased-any-case"),
    ],
)
def test_the_section_of_a_version(script: ModuleType, version: str, notes: str) -> None:
    assert script.section(SAMPLE, version) == notes


@pytest.mark.parametrize(
    ("text", "version", "message"),
    [
        pytest.param(
            SAMPLE,
            "2.0.0",
            "CHANGELOG has no section for '2.0.0' (its sections: Unreleased, 1.1.0, 1.0.0)",
            id="missing",
        ),
        pytest.param(SAMPLE, "v1.1", "CHANGELOG has no section for '1.1'", id="no-prefix-match"),
        pytest.param(SAMPLE, "9.9.9", "CHANGELOG has no section for '9.9.9'", id="heading-in-code"),
        pytest.param(
            "# Changelog\n\n## [Unreleased]\n\n## [1.0.0] - 2026-12-08\n- x\n",
            "Unreleased",
            "CHANGELOG's section for 'Unreleased' is empty",
            id="empty-section",
        ),
        pytest.param("# Changelog\n", "1.0.0", "(its sections: none)", id="no-sections"),
    ],
)
def test_a_version_without_notes_is_an_error(
    script: ModuleType, text: str, version: str, message: str
) -> None:
    with pytest.raises(script.SectionNotFoundError) as raised:
        script.section(text, version)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("given", "normal"),
    [
        pytest.param("v1.0.0", "1.0.0", id="tag"),
        pytest.param("V2.3.4rc1", "2.3.4rc1", id="capital-v"),
        pytest.param(" 1.0.0\n", "1.0.0", id="whitespace"),
        pytest.param("UNRELEASED", "Unreleased", id="unreleased"),
        pytest.param("vNext", "vNext", id="v-not-before-a-digit"),
    ],
)
def test_normalise(script: ModuleType, given: str, normal: str) -> None:
    assert script.normalise(given) == normal


def raw_unreleased(text: str) -> str:
    """What stands between ``## [Unreleased]`` and the next ``## `` heading, found by hand."""
    rest = text[text.index("## [Unreleased]\n") + len("## [Unreleased]\n") :]
    following = rest.find("\n## ")
    return (rest if following == -1 else rest[: following + 1]).strip("\n")


def test_the_real_changelog_has_sections_that_do_not_overlap(script: ModuleType) -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    names = script.headings(text)
    assert names[0] == "Unreleased"
    assert len(set(names)) == len(names)
    for name in names:
        if name == "Unreleased" and not raw_unreleased(text):
            # Right after a release Unreleased may be empty (an error to release); a version never is.
            with pytest.raises(script.SectionNotFoundError, match="section for 'Unreleased' is empty"):
                script.section(text, name)
            continue
        notes = script.section(text, name)
        assert notes in text
        assert not any(line.startswith("## ") for line in notes.splitlines()), name


def test_the_real_changelog_unreleased_section(script: ModuleType) -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    expected = raw_unreleased(text)
    if not expected:
        pytest.skip("Unreleased is empty right after a release")
    assert script.section(text, "Unreleased") == expected + "\n"
    assert script.section(text, "Unreleased").startswith("### ")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("version", "code", "out", "err"),
    [
        pytest.param("v1.0.0", 0, "### Added\n- First release.\n", "", id="found"),
        pytest.param(
            "3.0.0",
            1,
            "",
            "changelog_section: CHANGELOG has no section for '3.0.0'"
            " (its sections: Unreleased, 1.1.0, 1.0.0)\n",
            id="missing",
        ),
    ],
)
def test_the_command_line(tmp_path: Path, version: str, code: int, out: str, err: str) -> None:
    changelog = tmp_path / "CHANGELOG.md"
    changelog.write_text(SAMPLE, encoding="utf-8")
    result = run(version, "--changelog", str(changelog))
    assert (result.returncode, result.stdout, result.stderr) == (code, out, err)


def test_the_command_line_without_a_changelog(tmp_path: Path) -> None:
    result = run("1.0.0", "--changelog", str(tmp_path / "missing.md"))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("changelog_section: cannot read ")
    assert "No such file or directory" in result.stderr


def test_the_command_line_reads_the_projects_changelog_by_default(script: ModuleType) -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    newest = script.headings(text)[1] if text.count("\n## ") > 1 else "Unreleased"
    result = run(f"v{newest}" if newest[0].isdigit() else newest)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == script.section(text, newest)
    assert result.stdout.startswith("### ")
