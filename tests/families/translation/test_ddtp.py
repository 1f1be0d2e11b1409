"""The DDTP builder (data/ddtp/prepare.py): Translation-<lang> records are joined on Description-md5 and aligned
paragraph by paragraph; descriptions with a different paragraph count are dropped, not misaligned."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[3] / "data" / "ddtp" / "prepare.py"
spec = importlib.util.spec_from_file_location("ddtp_prepare", SCRIPT)
ddtp = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ddtp)

EN = """Package: foo
Description-md5: aaa
Description-en: a tool that converts files
 This program converts many image files
 into other formats.
 .
 It is written in plain C for speed.

Package: bar
Description-md5: bbb
Description-en: another tiny command line helper
 Only one paragraph here, long enough.
"""
DE = """Package: foo
Description-md5: aaa
Description-de: ein Werkzeug, das Dateien umwandelt
 Dieses Programm wandelt viele Bilddateien
 in andere Formate um.
 .
 Es ist in reinem C geschrieben.

Package: bar
Description-md5: bbb
Description-de: noch ein kleiner Helfer
 Ein Absatz.
 .
 Ein zweiter Absatz, den das Englische nicht hat.
"""


def test_records_join_on_md5_and_align_by_paragraph(tmp_path):
    (tmp_path / "en").write_text(EN, encoding="utf-8")
    (tmp_path / "de").write_text(DE, encoding="utf-8")
    english = ddtp.read_index(tmp_path / "en", "en")
    assert english["aaa"][1] == "This program converts many image files into other formats."
    assert len(english["aaa"]) == 3 and len(english["bbb"]) == 2
    rows = ddtp.aligned_pairs(english, ddtp.read_index(tmp_path / "de", "de"))
    assert [(i, a, b) for i, a, b in rows] == [
        ("aaa/0", "a tool that converts files", "ein Werkzeug, das Dateien umwandelt"),
        (
            "aaa/1",
            "This program converts many image files into other formats.",
            "Dieses Programm wandelt viele Bilddateien in andere Formate um.",
        ),
        ("aaa/2", "It is written in plain C for speed.", "Es ist in reinem C geschrieben."),
    ]  # bbb: 1 English paragraph vs 2 German ones -> dropped
