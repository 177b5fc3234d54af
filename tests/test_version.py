"""The version is written once, in pyproject.toml; the package reports what was installed."""
from importlib.metadata import version
from pathlib import Path

import pytest

import fastrnn


def test_the_package_version_is_the_installed_one():
    assert fastrnn.__version__ == version("fastrnn")
    assert "__version__" in dir(fastrnn)


def test_the_installed_version_is_the_one_in_pyproject():
    tomllib = pytest.importorskip("tomllib")
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    if not pyproject.exists():
        pytest.skip("run from an installed copy of the tests")
    with open(pyproject, "rb") as f:
        assert version("fastrnn") == tomllib.load(f)["project"]["version"]
