"""The model card (``README.md``) that ``metanlp push`` uploads with an adapter, built from the adapter folder.

What it states: base model (backbone), task family, label names or language pair, N-way / K-shot, the recipe and
meta-learning algorithm, the metrics of ``metrics.json`` with the baselines (centroid, fine-tuning) next to the
meta-learned init (a translation comparison, ``methods`` of ``metrics.json``: chrF/BLEU of every method and read, as
a table), the metanlp / peft / transformers versions, and licences: the adapter's (``licence`` or
``base_model_licence`` of ``metanlp.json``; an adapter on a Gemma backbone always states the Gemma Terms of Use) and
the training data's (``data_licence``). Cards are ``huggingface_hub.ModelCard`` objects with the hub's YAML header
(``library_name: peft``, ``base_model``, ``license``, ``tags``, ``pipeline_tag``).

Keys of ``metanlp.json`` read here (all optional except ``family`` and ``backbone``): ``labels``, ``source_lang`` /
``target_lang`` or ``language_pair``, ``n_way``, ``k_shot``, ``algorithm``, ``recipe``, ``dataset``, ``licence``,
``base_model_licence``, ``data_licence``, ``metanlp_version``. ``recipe.yaml`` fills ``task.n_way``, ``task.k_shot``,
``meta.algorithm`` and ``task.dataset`` when ``metanlp.json`` lacks them.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import ModelCard, ModelCardData

from metanlp.core.files import read_metadata

__all__ = ["GEMMA_TERMS", "build_model_card"]

GEMMA_TERMS = "Gemma Terms of Use (https://ai.google.dev/gemma/terms)"
#: Licence ids the hub knows; anything else goes in the card as ``license: other`` + ``license_name``.
HUB_LICENCES = {"apache-2.0", "mit", "gemma", "llama3", "llama3.1", "cc-by-4.0", "cc-by-sa-4.0", "cc-by-nc-4.0",
                "cc-by-nc-sa-4.0", "cc0-1.0", "bsd-3-clause", "openrail", "other"}  # fmt: skip
METHOD_NOTES = {
    "prompting": "the pretrained backbone, no training, support pairs in the prompt (in-context examples)",
    "centroid": "frozen backbone, nearest class centroid (no adaptation)",
    "finetune": "LoRA fine-tuned on the support set from the pretrained backbone (transfer baseline)",
    "multitask": "a multi-task transfer adapter (the meta-train tasks as one problem), adapted on the support set",
    "meta": "this adapter's meta-learned init, adapted on the support set",
}
#: Read suffixes of a comparison row (``prompting_bm25``): what the suffix means.
READ_NOTES = {"_bm25": "read with, per sentence, the support pairs most similar to it by BM25 in the prompt"}
PIPELINE_TAGS = {"text_classification": "text-classification", "translation": "translation"}
REPO_ID = re.compile(r"[\w.-]+/[\w.-]+")


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _read_optional(folder: Path, name: str) -> Any:
    path = folder / name
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    try:
        return yaml.safe_load(text) if name.endswith(".yaml") else json.loads(text)
    except (yaml.YAMLError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not valid {'YAML' if name.endswith('.yaml') else 'JSON'} ({e})") from e


def _licences(meta: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """``(card header fields, lines for the Licence section)``."""
    backbone = str(meta.get("backbone", ""))
    stated = str(meta.get("licence") or meta.get("base_model_licence") or "")
    named = {"licence": "Adapter licence", "base_model_licence": "Base model licence", "data_licence": "Data licence"}
    lines = [f"- {what}: {meta[key]}" for key, what in named.items() if meta.get(key)]
    if "gemma" in backbone.lower() or "gemma" in stated.lower():
        if "gemma" not in stated.lower():
            lines.insert(0, f"- The base model {backbone} is released under the {GEMMA_TERMS}; so is this adapter.")
        elif "ai.google.dev" not in stated:
            lines.append(f"- {GEMMA_TERMS}")
        return {"license": "gemma"}, lines
    if not stated:
        return {}, lines or ['- Not recorded: add "licence" and "data_licence" to metanlp.json before sharing.']
    if stated.strip().lower() in HUB_LICENCES:
        return {"license": stated.strip().lower()}, lines
    slug = re.sub(r"[^a-z0-9.]+", "-", stated.lower()).strip("-")[:64] or "custom"
    return {"license": "other", "license_name": slug}, lines


def _base_method(row: str) -> str:
    for suffix in READ_NOTES:
        row = row.removesuffix(suffix)
    return row


def _methods_section(metrics: dict[str, Any], meta: dict[str, Any]) -> str:
    """A ``metrics.json`` with ``methods`` (``{row: {metric: score}}``, a translation comparison) as a table."""
    rows: dict[str, dict[str, Any]] = metrics["methods"]
    prompts = metrics.get("prompts") if isinstance(metrics.get("prompts"), dict) else {}
    names = sorted({m for r in rows.values() for m in r}, key=lambda m: (m != "chrf", m != "bleu", m))
    titles = {"chrf": "chrF", "bleu": "BLEU"}
    head = ["method", *(["prompt"] if prompts else []), *(titles.get(m, m) for m in names)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row, scores in rows.items():
        cells = [f"`{row}`", *([prompts.get(row, "")] if prompts else [])]
        cells += [f"{scores[m]:.1f}" if isinstance(scores.get(m), int | float) else "" for m in names]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    pair = [meta.get(k) for k in ("source_lang", "target_lang") if meta.get(k)]
    k = meta.get("k_shot", metrics.get("support_pairs"))
    parts = [" → ".join(pair), f"K = {k} support pairs" if k is not None else ""]
    parts.append(f"{metrics['eval_pairs']} eval pairs" if "eval_pairs" in metrics else "")
    about = ", ".join(x for x in parts if x)
    used = [m for m in METHOD_NOTES if any(_base_method(r) == m for r in rows)]
    notes = [f"- `{m}`: {METHOD_NOTES[m]}" for m in used]
    notes += [f"- `*{x}`: {note}" for x, note in READ_NOTES.items() if any(r.endswith(x) for r in rows)]
    intro = f"From `metrics.json` ({about}), the same sentences and greedy decoding for every method (sacrebleu):"
    return f"{intro}\n\n" + "\n".join(lines) + "\n\n" + "\n".join(notes)


def _metrics_section(metrics: Any, meta: dict[str, Any] | None = None) -> str:
    if metrics is None:
        return "No `metrics.json` was saved with this adapter."
    methods = metrics.get("methods") if isinstance(metrics, dict) else None
    if isinstance(methods, dict) and methods and all(isinstance(r, dict) for r in methods.values()):
        return _methods_section(metrics, meta or {})
    records = metrics.get("records") if isinstance(metrics, dict) else metrics
    if not (isinstance(records, list) and records and all(isinstance(r, dict) and "mean" in r for r in records)):
        return "From `metrics.json`:\n\n```json\n" + json.dumps(metrics, indent=2)[:4000] + "\n```"
    rows = ["| N-way | K-shot | method | metric | mean ± 95% CI | episodes |", "|---|---|---|---|---|---|"]
    for r in records:
        ci = f" ± {r['ci95']:.4f}" if isinstance(r.get("ci95"), int | float) else ""
        mean = f"{r['mean']:.4f}" if isinstance(r["mean"], int | float) else str(r["mean"])
        cells = [r.get("n_way", ""), r.get("k_shot", ""), r.get("method", ""), r.get("metric", ""), mean + ci]
        rows.append("| " + " | ".join(map(str, [*cells, r.get("episodes", "")])) + " |")
    used = [m for m in METHOD_NOTES if any(r.get("method") == m for r in records)]
    notes = "".join(f"\n- `{m}`: {METHOD_NOTES[m]}" for m in used)
    intro = "From `metrics.json`, over the same few-shot episodes for every method:"
    return f"{intro}\n\n" + "\n".join(rows) + "\n" + notes


def _init_line(meta: dict[str, Any]) -> str:
    """What the init an adapter was adapted from was meta-trained on ("" for a meta-train adapter itself)."""
    data, classes = meta.get("init_data"), meta.get("init_meta_train_classes") or []
    if not data:
        return ""
    return f"{data} ({len(classes)} meta-train classes)" if classes else str(data)


def build_model_card(adapter_dir: str | Path, repo_id: str = "") -> ModelCard:
    """Build the model card of an adapter folder written by :func:`metanlp.core.saving.save_adapter`.

    Args:
        adapter_dir: the adapter folder (``metanlp.json``, ``adapter_config.json``, optional ``recipe.yaml`` and
            ``metrics.json``).
        repo_id: the hub repo it goes to, used in the title and the usage snippets (default: the folder name).

    Returns:
        A ``huggingface_hub.ModelCard``; ``str(card)`` is the ``README.md`` text.

    Raises:
        FileNotFoundError: ``metanlp.json`` is missing.
        ValueError: ``metanlp.json``, ``metrics.json`` or ``recipe.yaml`` is malformed.

    Example:
        >>> import json, tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> meta = {"family": "translation", "backbone": "google/gemma-3-1b-it", "source_lang": "en"}
        >>> _ = (d / "metanlp.json").write_text(json.dumps(meta))
        >>> card = build_model_card(d, "alice/en-de")
        >>> card.data.license, "Gemma Terms of Use" in str(card)
        ('gemma', True)
    """
    folder = Path(adapter_dir)
    meta = read_metadata(folder)
    family, backbone = str(meta.get("family", "")), str(meta.get("backbone", ""))
    recipe = _read_optional(folder, "recipe.yaml") or {}
    task, meta_cfg = recipe.get("task") or {}, recipe.get("meta") or {}
    lora = _read_optional(folder, "adapter_config.json") or {}
    name = repo_id or folder.resolve().name
    n_way, k_shot = meta.get("n_way", task.get("n_way")), meta.get("k_shot", task.get("k_shot"))
    algorithm = meta.get("algorithm", meta_cfg.get("algorithm"))
    dataset = meta.get("dataset", task.get("dataset"))
    labels = [str(x) for x in meta.get("labels") or []]
    pair = meta.get("language_pair") or [meta.get(k) for k in ("source_lang", "target_lang") if meta.get(k)]
    pair = pair.replace("-", " ").split() if isinstance(pair, str) else list(pair)

    header, licence_lines = _licences(meta)
    is_hub_id = REPO_ID.fullmatch(backbone) is not None and not Path(backbone).expanduser().exists()
    data = ModelCardData(
        library_name="peft",
        base_model=backbone if is_hub_id else None,
        pipeline_tag=PIPELINE_TAGS.get(family),
        language=pair if pair and all(re.fullmatch(r"[a-z]{2,3}", p) for p in pair) else None,
        tags=["metanlp", "peft", "lora", "meta-learning", "few-shot", family.replace("_", "-")],
        **header,
    )
    task_lines = [f"- Task family: `{family}`", f"- Base model (backbone): `{backbone}`"]
    if labels:
        more = f", ... ({len(labels) - 50} more)" if len(labels) > 50 else ""
        shown = ", ".join(f"`{x}`" for x in labels[:50]) + more
        task_lines.append(f"- Labels ({len(labels)}): {shown}")
    if pair:
        task_lines.append(f"- Language pair: {' → '.join(map(str, pair))}")
    for label, value in (("N-way", n_way), ("K-shot", k_shot), ("Meta-learning algorithm", algorithm),
                         ("Recipe", meta.get("recipe")), ("Data", dataset),
                         ("Init meta-trained on", _init_line(meta))):  # fmt: skip
        if value is not None and value != "":
            task_lines.append(f"- {label}: {'all classes' if label == 'N-way' and value == 0 else value}")
    if lora:
        targets = lora.get("target_modules")
        lora_line = f"- LoRA: r={lora.get('r')}, alpha={lora.get('lora_alpha')}, target modules {targets}"
        if lora.get("layers_to_transform") is not None:  # adapter.layers: LoRA on some layers only
            lora_line += f" on layers {lora['layers_to_transform']}"
        task_lines.append(lora_line + "; the head is saved through peft's `modules_to_save`")
    n_labels = len(labels) or "NUM_LABELS"
    usage = (
        f'```bash\nmetanlp pull {name} --out adapter      # or: metanlp predict {name} --text "..."\n```\n\n'
        "With metanlp from Python, or with stock peft:\n\n```python\n"
        "from metanlp.core.hub import resolve_adapter\n"
        "from metanlp.families.text_classification.adapter import load_classifier\n"
        f'model, tokenizer, meta = load_classifier(resolve_adapter("{name}"))\n\n'
        "from peft import PeftModel\nfrom metanlp.families.text_classification.adapter import TextClassifier\n"
        "from metanlp.families.text_classification.backbone import load_encoder\n"
        f'encoder, tokenizer = load_encoder("{backbone}")\n'
        f'model = PeftModel.from_pretrained(TextClassifier(encoder, {n_labels}), "{name}")\n```'
    )
    if family != "text_classification":
        usage = f"```bash\nmetanlp pull {name} --out adapter\n```"
    versions = {p: _version(p) for p in ("metanlp", "peft", "transformers", "huggingface_hub")}
    versions["metanlp"] = meta.get("metanlp_version") or versions["metanlp"]
    version_line = ", ".join(f"{p} {v}" for p, v in versions.items())
    body = "\n\n".join([
        f"# {name}",
        f"A LoRA adapter (with its task head) for `{backbone}`, meta-learned and adapted with "
        f"metanlp for few-shot {family.replace('_', ' ')}. The files are plain "
        "peft format plus `metanlp.json` (label map, backbone, task), `recipe.yaml` (the resolved recipe) and "
        "`metrics.json`.",
        "## Task\n\n" + "\n".join(task_lines),
        "## Usage\n\n" + usage,
        "## Evaluation\n\n" + _metrics_section(_read_optional(folder, "metrics.json"), meta),
        "## Licence\n\n" + "\n".join(licence_lines),
        f"## Framework versions\n\n{version_line}",
    ])  # fmt: skip
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}\n")
