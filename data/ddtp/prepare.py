"""Build English -> X sentence pairs from the Debian Description Translation Project (DDTP), at run time.

Source: the ``i18n/Translation-<lang>`` indexes of Debian bookworm ``main`` (apt, deb.debian.org), joined to
``Translation-en`` on ``Description-md5``. A package description is a title line plus paragraphs separated by
`` .`` lines; a translation is aligned title to title and paragraph to paragraph when both have the same number of
paragraphs. Debian package descriptions carry their packages' licences (DFSG-free, many GPL): the output is built
into ``data/ddtp/ddtp_pairs.jsonl`` and ignored by git, never committed (../shared/DATA_SOURCES.md).

apt itself is configured privately (``APT_CONFIG`` pointing at a config in the work folder whose ``Dir::Etc::Parts``
is empty, so the machine image's ``Acquire::Languages "none"`` does not apply, and whose lists live in the work
folder): the system's apt state is not touched. About 30 MB, ~5 s.

Each row: ``{"source_lang": "en", "target_lang": "uk", "source": ..., "target": ..., "corpus": "ddtp", "id": ...}``
(``id`` = ``package/paragraph``). The translation recipes list this file next to ``data/translation/*.jsonl``.

Run: ``python data/ddtp/prepare.py [--workdir /tmp/metanlp-ddtp] [--max-per-language 4000]``
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
SUITE = "bookworm"
#: DDTP language -> metanlp code. Meta-training uses the Latin-script ones; uk and ru are held out in the recipes.
LANGUAGES = {"de": "de", "fr": "fr", "it": "it", "da": "da", "es": "es", "pl": "pl", "cs": "cs", "sk": "sk",
             "pt": "pt", "uk": "uk", "ru": "ru"}  # fmt: skip


def apt_lists(workdir: Path) -> Path:
    """Download the Translation indexes with a private apt config; returns the lists folder.

    Raises:
        RuntimeError: ``apt-get update`` failed (its stderr is in the message).
    """
    lists = workdir / "lists"
    for d in (workdir / "parts", lists / "partial", workdir / "cache" / "archives" / "partial"):
        d.mkdir(parents=True, exist_ok=True)
    langs = " ".join(f'"{x}";' for x in ["en", *LANGUAGES])
    conf = workdir / "apt.conf"
    conf.write_text(
        f'Dir::Etc::Parts "{workdir / "parts"}";\nDir::State::Lists "{lists}";\nDir::Cache "{workdir / "cache"}";\n'
        f'Debug::NoLocking "true";\nAcquire::Languages {{ {langs} }};\n',
        encoding="utf-8",
    )
    proc = subprocess.run(["apt-get", "update"], env={"APT_CONFIG": str(conf), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True)  # fmt: skip
    if proc.returncode:
        raise RuntimeError(f"apt-get update with APT_CONFIG={conf} failed:\n{proc.stderr[-2000:]}")
    return lists


def read_index(path: Path, lang: str) -> dict[str, list[str]]:
    """``Description-md5 -> [title, paragraph, ...]`` of one ``Translation-<lang>`` file (lines joined by spaces)."""
    out: dict[str, list[str]] = {}
    for record in path.read_text(encoding="utf-8", errors="replace").split("\n\n"):
        md5, body = None, []
        field = f"Description-{lang}:"
        in_desc = False
        for line in record.splitlines():
            if line.startswith("Description-md5:"):
                md5 = line.split(":", 1)[1].strip()
            elif line.startswith(field):
                body, in_desc = [line[len(field) :].strip()], True
            elif in_desc and line.startswith(" "):
                body.append(line[1:])
            else:
                in_desc = False
        if md5 and body:
            paragraphs, cur = [body[0]], []
            for line in body[1:]:
                if line.strip() == ".":
                    paragraphs.append(" ".join(cur))
                    cur = []
                else:
                    cur.append(line.strip())
            paragraphs.append(" ".join(cur))
            out[md5] = [" ".join(p.split()) for p in paragraphs if p.strip()]
    return out


def aligned_pairs(english: dict[str, list[str]], other: dict[str, list[str]]) -> list[tuple[str, str, str]]:
    """``(id, english, translation)`` of descriptions with equal paragraph counts; odd length ratios dropped."""
    rows, seen = [], set()
    for md5, tr in other.items():
        en = english.get(md5)
        if not en or len(en) != len(tr):
            continue
        for i, (a, b) in enumerate(zip(en, tr, strict=True)):
            if len(a.split()) < 3 or (a, b) in seen or a == b or not 0.4 <= len(b) / len(a) <= 2.5:
                continue
            seen.add((a, b))
            rows.append((f"{md5}/{i}", a, b))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default="/tmp/metanlp-ddtp", help="apt config and lists")
    ap.add_argument("--max-per-language", type=int, default=4000, help="pairs kept per language (seeded sample)")
    ap.add_argument("--out", default=str(HERE / "ddtp_pairs.jsonl"))
    args = ap.parse_args()
    lists = apt_lists(Path(args.workdir))
    main_index = f"deb.debian.org_debian_dists_{SUITE}_main_i18n_Translation-"
    english = read_index(lists / f"{main_index}en", "en")
    out, counts = Path(args.out), {}
    tmp = out.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for ddtp, code in LANGUAGES.items():
            path = lists / f"{main_index}{ddtp}"
            if not path.is_file():
                raise FileNotFoundError(f"{path}: apt did not fetch Translation-{ddtp}")
            rows = sorted(aligned_pairs(english, read_index(path, ddtp)))
            random.Random(0).shuffle(rows)
            rows = rows[: args.max_per_language]
            counts[code] = len(rows)
            for rid, a, b in rows:
                row = {"source_lang": "en", "target_lang": code, "source": a, "target": b, "corpus": "ddtp", "id": rid}
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(out)
    print(f"ddtp: {sum(counts.values())} pairs -> {out}; per language: {counts}")  # noqa: T201


if __name__ == "__main__":
    main()
