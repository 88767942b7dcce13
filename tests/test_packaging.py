"""What a pip user and a PyPI page get: the built sdist and wheel, and their metadata.

Both are built from this tree with uv (as a release would be) once per module.
"""

from __future__ import annotations

import email
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.conftest import ROOT

if TYPE_CHECKING:
    from email.message import Message

NAME = "airflow_provider_plugz"


def _uv() -> str:
    found = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if found is None:
        pytest.skip("uv is not installed (make install puts it in the virtualenv)")
    return found


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [_uv(), "build", "--quiet", "--out-dir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


@pytest.fixture(scope="module")
def sdist_files(dist: Path) -> set[str]:
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        return {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}


@pytest.fixture(scope="module")
def wheel_files(dist: Path) -> set[str]:
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


@pytest.fixture(scope="module")
def metadata(dist: Path) -> Message:
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_bytes(archive.read(name))


def test_the_sdist_holds_what_its_tests_need(sdist_files: set[str]) -> None:
    # Every source file of the package, the tests and the example DAGs (also when run from the sdist).
    sources = {
        path.relative_to(ROOT).as_posix()
        for folder in (NAME, "tests", "example_dags")
        for path in (ROOT / folder).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert sources <= sdist_files
    assert {"scripts/demo.py", "README.md", "CHANGELOG.md", "LICENSE", "pyproject.toml"} <= sdist_files


@pytest.mark.parametrize(
    "stray",
    [
        pytest.param(".gitignore", id="gitignore"),
        pytest.param("benchmarks/README.md", id="benchmarks-readme-without-its-scripts"),
        pytest.param("Makefile", id="makefile"),
        pytest.param(".ci/run", id="ci"),
    ],
)
def test_the_sdist_holds_nothing_stray(sdist_files: set[str], stray: str) -> None:
    assert stray not in sdist_files
    assert not any(name.startswith(("benchmarks/", ".ci/", "test-artifacts/")) for name in sdist_files)
    assert not any("__pycache__" in name for name in sdist_files)


def test_the_wheel_is_the_provider_alone(wheel_files: set[str]) -> None:
    packages = {name.split("/", 1)[0] for name in wheel_files}
    assert packages == {NAME, f"{NAME}-{_version()}.dist-info"}
    assert f"{NAME}/py.typed" in wheel_files
    assert not any("example_dags" in name or name.startswith("tests/") for name in wheel_files)


def test_the_long_description_renders_on_pypi(metadata: Message) -> None:
    assert metadata["Description-Content-Type"] == "text/markdown"
    description = metadata.get_payload()
    assert isinstance(description, str)
    assert description.startswith("# airflow-provider-plugz")
    assert "### Security notes" in description
    # PyPI cannot resolve a path inside the repository: no relative image or link survives.
    assert "](docs/" not in description
    assert "![" not in description


def test_project_urls_point_at_the_project(metadata: Message) -> None:
    urls = dict(entry.split(", ", 1) for entry in metadata.get_all("Project-URL") or [])
    assert set(urls) >= {"Homepage", "Documentation"}
    for url in urls.values():
        assert url.startswith("https://pypi.org/project/airflow-provider-plugz/")


def _version() -> str:
    from airflow_provider_plugz import __version__

    return __version__
