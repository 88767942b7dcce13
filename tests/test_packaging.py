"""What a pip user and a PyPI page get: the built sdist and wheel, and their metadata.

Both are built from this tree with uv (as a release would be) once per module. The checks PyPI
and packaging tools make run on them: ``twine check --strict``, ``check-wheel-contents`` and
``pyroma`` (10/10); each also gets a broken copy to show it can fail.
"""

from __future__ import annotations

import email
import json
import os
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
    from collections.abc import Callable
    from email.message import Message

NAME = "airflow_provider_plugz"
# pyroma's one complaint is the missing author e-mail: the project has no public contact address
# yet, and inventing one is worse than losing the points (pyproject.toml's `authors`).
PYROMA_SKIPPED = ("AuthorEmail",)


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
def sdist(dist: Path) -> Path:
    (path,) = dist.glob("*.tar.gz")
    return path


@pytest.fixture(scope="module")
def wheel(dist: Path) -> Path:
    (path,) = dist.glob("*.whl")
    return path


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


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    # From the project root: check-wheel-contents reads its settings from pyproject.toml there.
    # twine prints through rich: no colours, and lines long enough that nothing wraps.
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "500"}
    return subprocess.run(
        [str(arg) for arg in args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
        env=env,
    )


def _twine_check(*artifacts: Path) -> subprocess.CompletedProcess[str]:
    return _run(sys.executable, "-m", "twine", "check", "--strict", *artifacts)


def _check_wheel_contents(wheel: Path) -> subprocess.CompletedProcess[str]:
    return _run(sys.executable, "-m", "check_wheel_contents", wheel)


def _pyroma(
    sdist: Path,
    tmp_path: Path,
    edit: Callable[[Message], None] | None = None,
    skip: tuple[str, ...] = PYROMA_SKIPPED,
) -> tuple[int, list[str]]:
    """pyroma's rating of the sdist: its project folder and its metadata (PKG-INFO).

    pyroma would build the metadata again (``build``, isolated: a download of the build backend);
    it gets the metadata uv built into the sdist instead, so the test needs no network.
    """
    from pyroma import projectdata, ratings

    tmp_path.mkdir()
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp_path, filter="data")
    (project,) = tmp_path.iterdir()
    metadata = email.message_from_bytes((project / "PKG-INFO").read_bytes())
    if edit is not None:
        edit(metadata)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(projectdata, "wheel_metadata", lambda path, isolated=None: metadata)
        data = projectdata.get_build_data(str(project))
    rating, problems = ratings.rate(data, skip_tests=list(skip))
    return rating, problems


def _rewrite_wheel(wheel: Path, out: Path, change: Callable[[str, bytes], bytes | None]) -> Path:
    """A copy of the wheel whose members go through ``change`` (None drops one)."""
    copy = out / wheel.name
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(copy, "w", zipfile.ZIP_DEFLATED) as target:
        for name in source.namelist():
            content = change(name, source.read(name))
            if content is not None:
                target.writestr(name, content)
    return copy


def _without_content_type(name: str, content: bytes) -> bytes:
    if name.endswith(".dist-info/METADATA"):
        return content.replace(b"Description-Content-Type: text/markdown\n", b"")
    return content


def _with_stray_tests_package(name: str, content: bytes) -> bytes:
    if name.endswith(".dist-info/RECORD"):
        return content + b"tests/__init__.py,,\n"
    return content


def test_twine_check_strict_passes_on_both(sdist: Path, wheel: Path) -> None:
    result = _twine_check(sdist, wheel)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASSED") == 2, result.stdout
    assert "WARNING" not in result.stdout + result.stderr


def test_twine_check_strict_fails_without_the_content_type(wheel: Path, tmp_path: Path) -> None:
    # Without it PyPI renders the Markdown README as reStructuredText; --strict makes that warning fail.
    broken = _rewrite_wheel(wheel, tmp_path, _without_content_type)
    result = _twine_check(broken)
    assert result.returncode != 0
    assert "`long_description_content_type` missing" in result.stdout + result.stderr


def test_check_wheel_contents_passes(wheel: Path) -> None:
    result = _check_wheel_contents(wheel)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith(": OK"), result.stdout


def test_check_wheel_contents_fails_on_a_stray_top_level_package(wheel: Path, tmp_path: Path) -> None:
    broken = _rewrite_wheel(wheel, tmp_path, _with_stray_tests_package)
    with zipfile.ZipFile(broken, "a") as target:
        target.writestr("tests/__init__.py", b"")
    result = _check_wheel_contents(broken)
    assert result.returncode != 0
    assert "W202" in result.stdout  # toplevel is configured as airflow_provider_plugz alone


def test_pyroma_rates_the_sdist_ten(sdist: Path, tmp_path: Path) -> None:
    rating, problems = _pyroma(sdist, tmp_path / "skipping")
    assert (rating, problems) == (10, [])
    # The skipped check is the only thing pyroma holds against the sdist.
    rating, problems = _pyroma(sdist, tmp_path / "all", skip=())
    assert (rating, problems) == (9, ["Your package does not have author-email data."])


def _drop(field: str) -> Callable[[Message], None]:
    def edit(metadata: Message) -> None:
        del metadata[field]

    return edit


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(_drop("Requires-Python"), id="no-requires-python"),
        pytest.param(_drop("Keywords"), id="no-keywords"),
        pytest.param(_drop("Project-URL"), id="no-urls"),
        pytest.param(_drop("Classifier"), id="no-classifiers"),
    ],
)
def test_pyroma_rates_lower_when_metadata_is_missing(
    sdist: Path, tmp_path: Path, edit: Callable[[Message], None]
) -> None:
    rating, problems = _pyroma(sdist, tmp_path / "edited", edit)
    assert rating < 10
    assert problems


def test_the_built_version_is_one_version_everywhere(wheel: Path, metadata: Message, tmp_path: Path) -> None:
    # The wheel's metadata, __version__ and the provider info of the installed wheel's code agree
    # (the version the deployment test sees in `airflow providers list`).
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(tmp_path)
    probe = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import airflow_provider_plugz as p; "
        "from airflow_provider_plugz.get_provider_info import get_provider_info as info; "
        "print(json.dumps([p.__file__, p.__version__, info()['versions']]))"
    )
    result = _run(sys.executable, "-I", "-c", probe, tmp_path)
    assert result.returncode == 0, result.stderr
    module_file, version, versions = json.loads(result.stdout)
    assert Path(module_file).is_relative_to(tmp_path)
    assert version == metadata["Version"]
    assert versions == [metadata["Version"]]
    assert wheel.name.startswith(f"{NAME}-{metadata['Version']}-")


def _copy_of_the_tree(target: Path) -> Path:
    """The project's files as they are now (committed or not), without its git history."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        capture_output=True,
        check=True,
        cwd=ROOT,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def _git(tree: Path, *args: str) -> None:
    identity = ["-c", "user.name=packaging test", "-c", "user.email=packaging-test@localhost"]
    subprocess.run(["git", *identity, *args], cwd=tree, check=True, capture_output=True, timeout=60)


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        pytest.param(["v9.8.7"], "9.8.7", id="tagged-v-prefix"),
        pytest.param(["9.8.7"], "9.8.7", id="tagged-bare"),
        pytest.param([], "0.0.1.dev1+g", id="clone-without-tags"),
        pytest.param(None, "0.0.0", id="no-git-fallback"),
    ],
)
def test_the_version_is_the_git_tag(tmp_path: Path, history: list[str] | None, expected: str) -> None:
    # history None: a copy without git (and without PKG-INFO) gets the fallback version.
    tree = _copy_of_the_tree(tmp_path / "tree")
    if history is not None:
        _git(tree, "init", "--quiet")
        _git(tree, "add", "--all")
        _git(tree, "commit", "--quiet", "--no-verify", "--message", "the tree")
        for tag in history:
            _git(tree, "tag", tag)
    out = tmp_path / "dist"
    result = _run(_uv(), "build", "--quiet", "--wheel", "--out-dir", out, tree)
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = out.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        version = email.message_from_bytes(archive.read(name))["Version"]
        generated = archive.read(f"{NAME}/_version.py").decode()
    assert version.startswith(expected) if expected.endswith("+g") else version == expected
    assert f"__version__ = {version!r}" in generated
    # The build wrote nothing into the tree it built (only an editable install does).
    assert not (tree / NAME / "_version.py").exists()
