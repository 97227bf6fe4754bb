"""Which model version is newer (a promotion gate, a model card's baseline): Azure ML's versions are
strings, usually whole numbers."""

from __future__ import annotations

from bot.versions import is_newer_version, version_sort_key


def test_versions_are_compared_as_numbers() -> None:
    assert is_newer_version("10", "9") and not is_newer_version("9", "10")
    assert is_newer_version("1.10", "1.9") and is_newer_version("2", "1.9.9")
    # the same version, however written, is not newer than itself
    assert not is_newer_version("8", "8") and not is_newer_version("1.2.0", "1.2") and not is_newer_version("08", "8")


def test_a_version_that_is_not_numbers_is_never_newer_nor_older() -> None:
    for version, other in (("v2", "1"), ("1", "v2"), ("2024-06-01", "2024-05-01"), ("latest", "3"), ("", "1")):
        assert not is_newer_version(version, other)


def test_versions_sort_as_numbers_and_those_not_made_of_numbers_before_them() -> None:
    versions = ["10", "1.10", "v2", "9", "1.9", "2", "²", "1"]
    assert sorted(versions, key=version_sort_key) == ["v2", "²", "1", "1.9", "1.10", "2", "9", "10"]
    assert max(["1.9", "1.10"], key=version_sort_key) == "1.10"
    assert max(["1.9", "10"], key=version_sort_key) == "10"
