"""Print one version's section of CHANGELOG.md: the body of a GitHub release.

    python scripts/changelog_section.py 1.0.0 > notes.md     # or v1.0.0, or Unreleased

The changelog follows Keep a Changelog: a section starts at a ``## [1.0.0] - 2026-12-08`` (or
``## [Unreleased]``) heading and ends at the next ``## `` heading, or at the link definitions
(``[1.0.0]: https://...``) that may close the file. The heading itself is left out (the release
has its own title); so are blank lines around the body. A version without a section, or with an
empty one, is an error: the script says so on stderr and exits with status 1, so a release is
never published with empty notes. Standard library only: the release workflow runs it with the
runner's Python before anything is installed.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

CHANGELOG = Path(__file__).resolve().parent.parent / "CHANGELOG.md"

#: ``## [1.0.0] - 2026-12-08``, ``## [Unreleased]``, ``## 1.0.0`` (brackets and date optional).
_HEADING = re.compile(r"^## +\[?(?P<name>[^\]\s]+)\]?(?: +- +.*)?\s*$")
#: A Markdown link reference definition, as the links of Keep a Changelog's headings are written.
_LINK_DEFINITION = re.compile(r"^\[[^\]]+\]: +\S")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")


class SectionNotFoundError(LookupError):
    """The changelog has no section, or only an empty one, for the version asked for."""


def normalise(version: str) -> str:
    """``v1.0.0`` -> ``1.0.0`` (a tag's name), ``unreleased`` -> ``Unreleased``; others unchanged."""
    version = version.strip()
    if re.fullmatch(r"[vV]\d.*", version):
        version = version[1:]
    if version.lower() == "unreleased":
        return "Unreleased"
    return version


def headings(text: str) -> list[str]:
    """The names of the ``## `` sections of ``text``, in order (outside fenced code blocks)."""
    names: list[str] = []
    in_fence = False
    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and (match := _HEADING.match(line)):
            names.append(match["name"])
    return names


def section(text: str, version: str) -> str:
    """The body of ``version``'s section of the changelog ``text``, without its heading.

    Raises :class:`SectionNotFoundError` when there is no such section or it is empty.
    """
    wanted = normalise(version)
    body: list[str] | None = None
    in_fence = False
    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        match = None if in_fence else _HEADING.match(line)
        if body is None:
            if match and normalise(match["name"]) == wanted:
                body = []
            continue
        if match or (not in_fence and line.startswith("# ")) or _LINK_DEFINITION.match(line):
            break
        body.append(line)
    if body is None:
        known = ", ".join(headings(text)) or "none"
        raise SectionNotFoundError(f"CHANGELOG has no section for {wanted!r} (its sections: {known})")
    notes = "\n".join(body).strip("\n")
    if not notes.strip():
        raise SectionNotFoundError(f"CHANGELOG's section for {wanted!r} is empty")
    return notes + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python scripts/changelog_section.py",
        description="Print one version's section of the Keep-a-Changelog CHANGELOG.md.",
    )
    parser.add_argument("version", help="1.0.0, v1.0.0 (a tag's name) or Unreleased")
    parser.add_argument(
        "--changelog", type=Path, default=CHANGELOG, help="the changelog to read (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    try:
        text = args.changelog.read_text(encoding="utf-8")
    except OSError as exc:
        print(f"changelog_section: cannot read {args.changelog}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    try:
        notes = section(text, args.version)
    except SectionNotFoundError as exc:
        print(f"changelog_section: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
