"""Which model version is newer, as a promotion gate decides what it supersedes: Azure ML's versions are
strings, usually whole numbers."""

from __future__ import annotations

from bot.promotions import is_newer_version


def test_versions_are_compared_as_numbers() -> None:
    assert is_newer_version("10", "9") and not is_newer_version("9", "10")
    assert is_newer_version("1.10", "1.9") and is_newer_version("2", "1.9.9")
    # the same version, however written, is not newer than itself
    assert not is_newer_version("8", "8") and not is_newer_version("1.2.0", "1.2") and not is_newer_version("08", "8")


def test_a_version_that_is_not_numbers_is_never_newer_nor_older() -> None:
    for version, other in (("v2", "1"), ("1", "v2"), ("2024-06-01", "2024-05-01"), ("latest", "3"), ("", "1")):
        assert not is_newer_version(version, other)
