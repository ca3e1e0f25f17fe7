"""The public surface is deliberate: __all__ is sorted, complete and importable."""

from __future__ import annotations

import nbp_kit


def test_all_is_sorted() -> None:
    assert nbp_kit.__all__ == sorted(nbp_kit.__all__)


def test_all_names_exist() -> None:
    missing = [name for name in nbp_kit.__all__ if not hasattr(nbp_kit, name)]
    assert missing == []


def test_public_classes_and_functions_are_exported() -> None:
    public = {
        name
        for name, value in vars(nbp_kit).items()
        if not name.startswith("_") and (isinstance(value, type) or callable(value))
    }
    assert public <= set(nbp_kit.__all__)


def test_public_names_have_docstrings() -> None:
    undocumented = [
        name
        for name in nbp_kit.__all__
        if (isinstance(getattr(nbp_kit, name), type) or callable(getattr(nbp_kit, name)))
        and not (getattr(nbp_kit, name).__doc__ or "").strip()
    ]
    assert undocumented == []
