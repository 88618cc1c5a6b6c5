"""The test bed's base image takes its Debian packages from the machine's own apt sources."""

from __future__ import annotations

from pathlib import Path

import pytest
from testbed.base_image import apt_mirror


def test_deb822_sources_are_read(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\n"
        "# a comment\n"
        "URIs: http://mirror.example/debian-security\n"
        "Suites: bookworm-security\n"
        "Components: main\n"
        "\n"
        "Types: deb deb-src\n"
        "URIs: http://mirror.example/debian\n"
        "Suites: bookworm bookworm-updates\n"
        "Components: main contrib\n"
    )
    assert apt_mirror(tmp_path) == "http://mirror.example/debian"


def test_one_line_sources_win_and_options_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text(
        "# deb http://commented.example/debian bookworm main\n"
        "deb-src http://src.example/debian bookworm main\n"
        "deb [signed-by=/k.gpg] http://list.example/debian bookworm main\n"
    )
    assert apt_mirror(tmp_path) == "http://list.example/debian"


def test_no_matching_source_is_an_error_naming_the_folder(tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text("deb http://old.example/debian bullseye main\n")
    with pytest.raises(RuntimeError, match=str(tmp_path)):
        apt_mirror(tmp_path)
