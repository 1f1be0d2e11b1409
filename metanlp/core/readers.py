"""One reader per file kind that users give metanlp: texts to label or translate, one per line or in a column.

Labelled corpora (``text,label``) are read by the text family (:func:`~metanlp.families.text_classification.data.
load_corpus`) and sentence pairs by the translation family (:func:`~metanlp.families.translation.pairs.
read_user_pairs`); everything that is "a list of texts" comes through :func:`read_texts`.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["check_table_file", "read_texts"]

_TABLES = (".csv", ".tsv", ".jsonl", ".json")


def check_table_file(path: Path, key: str, required: tuple[str, ...] = ()) -> None:
    """Check a ``.csv``/``.tsv``/``.jsonl``/``.json`` file before ``datasets`` reads it: UTF-8 (the message names the
    line and byte that is not), and for CSV/TSV a header without duplicated or missing columns and at least one row.

    Args:
        path: the file.
        key: what the file is called in messages (``data.support``, ``--file`` ...).
        required: columns it must have (CSV/TSV; JSON lines are checked after reading).

    Raises:
        ValueError: the first problem, naming ``key``, the file and the fix.
    """
    import csv
    import io

    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ValueError(
            f"{key}={path}: not UTF-8 (byte 0x{raw[e.start]:02x} at line {line}, offset {e.start}); re-save it as "
            f"UTF-8, e.g. `iconv -f latin1 -t utf-8 {path} > fixed{path.suffix}`"
        ) from None
    if not text.strip():
        raise ValueError(f"{key}={path}: the file is empty")
    if path.suffix.lower() not in (".csv", ".tsv"):
        return
    rows = csv.reader(io.StringIO(text), delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
    header = next(rows, [])
    stripped = [h.strip() for h in header]
    dup = sorted({h for h in stripped if stripped.count(h) > 1})
    if dup:
        raise ValueError(f"{key}={path}: the header names column(s) {dup} twice ({header}); keep one of each")
    spaced = [h for h in header if h != h.strip() and h.strip() in required]
    if spaced:
        raise ValueError(f"{key}={path}: header column {spaced[0]!r} has surrounding spaces; rename it to "
                         f"{spaced[0].strip()!r}")  # fmt: skip
    missing = [c for c in required if c not in header]
    if missing:
        raise ValueError(f"{key}={path}: missing column(s) {missing}; the header is {header}, expected "
                         f"{','.join(required)}")  # fmt: skip
    if not any(any(cell.strip() for cell in row) for row in rows):
        raise ValueError(f"{key}={path}: only a header, no rows: add one row per example under {header}")


def read_texts(path: str | Path, key: str = "file", blank_lines: str = "error") -> list[str]:
    """Texts, whitespace-normalised: a ``.csv``/``.tsv``/``.jsonl``/``.json`` file with a ``text`` column (read with
    ``datasets``), or a UTF-8 file with one text per line.

    Args:
        path: the file.
        key: what the file is called in messages (``data.predict``, ``--file``, ``task.unlabelled``).
        blank_lines: ``"error"`` (a blank line inside a line-per-text file is refused, naming the line: outputs are
            written line for line, so a dropped line would misalign them) or ``"skip"`` (unlabelled corpora).
            Blank lines at the end of the file are always ignored.

    Returns:
        The texts, in file order (at least one).

    Raises:
        FileNotFoundError: the file is missing (the message names ``key`` and the path).
        ValueError: not UTF-8, no ``text`` column, an empty text or blank line, or no text at all.

    Example:
        >>> import pathlib, tempfile
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "notes.txt"
        >>> _ = f.write_text("chest pain  on exertion\\nfracture of left femur\\n\\n", encoding="utf-8")
        >>> read_texts(f)
        ['chest pain on exertion', 'fracture of left femur']
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"{key} not found: {p}")
    if p.suffix.lower() in _TABLES:
        import datasets

        check_table_file(p, key, ("text",) if p.suffix.lower() in (".csv", ".tsv") else ())
        datasets.disable_progress_bars()
        kwargs = {"delimiter": "\t"} if p.suffix.lower() == ".tsv" else {}
        builder = "csv" if p.suffix.lower() in (".csv", ".tsv") else "json"
        try:
            ds = datasets.load_dataset(builder, data_files=str(p), split="train", **kwargs)
        except Exception as e:  # noqa: BLE001 - datasets raises many kinds; the message names the file
            raise ValueError(f"{key}={p}: cannot read it as {builder.upper()} (is it UTF-8?): {e}") from e
        if "text" not in ds.column_names:
            raise ValueError(f"{key}={p}: no 'text' column; found {ds.column_names}")
        lines = ["" if t is None else str(t) for t in ds["text"]]
        where = "row"
    else:
        try:
            lines = p.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as e:
            raise ValueError(f"{key}={p}: not UTF-8 text ({e}); re-save it as UTF-8") from e
        where = "line"
    while lines and not lines[-1].strip():
        lines.pop()
    texts = [" ".join(line.split()) for line in lines]
    empty = [i + 1 for i, t in enumerate(texts) if not t]
    if empty and blank_lines == "error":
        raise ValueError(f"{key}={p}: empty text at {where}(s) {empty[:5]}: one text per {where}, none empty")
    texts = [t for t in texts if t]
    if not texts:
        raise ValueError(f"{key}={p}: no text")
    return texts
