"""One reader per file kind that users give metanlp: texts to label or translate, one per line or in a column.

Labelled corpora (``text,label``) are read by the text family (:func:`~metanlp.families.text_classification.data.
load_corpus`) and sentence pairs by the translation family (:func:`~metanlp.families.translation.pairs.
read_user_pairs`); everything that is "a list of texts" comes through :func:`read_texts`.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["read_texts"]

_TABLES = (".csv", ".tsv", ".jsonl", ".json")


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
