"""The public surface: ``pykaniko.__all__``, lazy attribute resolution, py.typed, errors."""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
from pathlib import Path

import pytest

import pykaniko
import pykaniko.errors


def test_all_is_sorted_and_unique() -> None:
    assert list(pykaniko.__all__) == sorted(pykaniko.__all__)
    assert len(set(pykaniko.__all__)) == len(pykaniko.__all__)


@pytest.mark.parametrize("name", pykaniko.__all__)
def test_every_public_name_resolves(name: str) -> None:
    value = getattr(pykaniko, name)
    assert value is not None
    assert getattr(pykaniko, name) is value  # cached after the first lookup


def test_unknown_attribute_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_thing"):
        _ = pykaniko.no_such_thing


def test_all_public_errors_are_exported() -> None:
    errors = {
        name
        for name, obj in inspect.getmembers(pykaniko.errors, inspect.isclass)
        if issubclass(obj, Exception) and obj.__module__ == "pykaniko.errors"
    }
    assert errors <= set(pykaniko.__all__)
    assert set(pykaniko.errors.__all__) - {"Location"} == errors


@pytest.mark.parametrize("name", [n for n in pykaniko.__all__ if n.endswith("Error")])
def test_public_errors_subclass_the_root(name: str) -> None:
    cls = getattr(pykaniko, name)
    assert issubclass(cls, pykaniko.PykanikoError)
    err = cls("boom") if name != "RunError" else cls("boom", status=3)
    assert str(err).startswith("boom")
    assert err.code


def test_error_codes_are_distinct() -> None:
    codes = [getattr(pykaniko, n).default_code for n in pykaniko.__all__ if n.endswith("Error")]
    assert len(codes) == len(set(codes))


def test_run_error_exit_status() -> None:
    assert pykaniko.RunError("x", status=42).exit_status == 42
    assert pykaniko.RunError("x", status=300).exit_status == 1
    assert pykaniko.BuildError("x").exit_status == 1


def test_py_typed_is_shipped() -> None:
    root = Path(pykaniko.__file__).parent
    assert (root / "py.typed").is_file()
    pyproject = (root.parent / "pyproject.toml").read_text()
    assert 'pykaniko = ["py.typed"]' in pyproject


def test_version_matches_the_package_metadata() -> None:
    assert pykaniko.__version__ == importlib.metadata.version("pykaniko")


def test_type_checking_imports_cover_all() -> None:
    source = inspect.getsource(pykaniko)
    for name in pykaniko.__all__:
        assert f" {name}," in source or f" {name}\n" in source, name
