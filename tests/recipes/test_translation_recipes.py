"""Translation recipes on a tiny random Gemma-3: meta-train -> new pair adapter -> stock peft load -> translate CLI,
and the bad inputs (unknown code, too few pairs, misaligned file, swapped direction)."""

from __future__ import annotations

import json

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file

from metanlp.cli import main as cli_main
from metanlp.core.comparison import LETTERS
from metanlp.core.plotting import plot_curves
from metanlp.core.recipe_loading import load_recipe
from metanlp.families.translation.backbone import tiny_causal_lm
from metanlp.families.translation.recipes import meta_train as translation_meta_train
from metanlp.families.translation.recipes import new_language_pair

LANGS = {"de": "Hund Katze Haus Baum", "fr": "chien chat maison arbre", "zu": "inja ikati indlu isihlahla"}


def _corpus(tmp_path):
    rows = []
    for lang, words in LANGS.items():
        for i in range(8):
            w = words.split()
            rows.append({"source_lang": "en", "target_lang": lang, "source": f"the dog number {i} sees a house",
                         "target": f"{w[i % 4]} {i} {w[(i + 1) % 4]}"})  # fmt: skip
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


_SETS = [
    "adapter.r=2",
    "adapter.target_modules=[q_proj,v_proj]",
    "task.family=translation",
    "task.k_shot=2",
    "task.q_query=2",
    "meta.inner_steps=1",
    "meta.inner_lr=0.1",
    "meta.outer_steps=2",
    "meta.save_every=0",
    "meta.eval_every=0",
    "translation.val_languages=[]",
    "translation.test_languages=[zu]",
    "translation.max_new_tokens=4",
    "run.progress=false",
]


def _cfg(tmp_path, *extra):
    base = ["model.name=tiny-random-gemma3", *_SETS, f"translation.pairs=[{_corpus(tmp_path)}]"]
    return load_recipe(None, base + list(extra))


def test_meta_train_then_new_pair_then_translate(tmp_path, capsys):
    cfg = _cfg(tmp_path, f"run.output_dir={tmp_path / 'meta'}", "translation.multitask_baseline=true")
    summary = translation_meta_train.run(cfg)
    assert summary["meta_train"]["steps"] == 2
    # (b) at equal compute: outer_steps * meta_batch * (inner_steps + 1) = 2 * 2 * 2 passes
    assert summary["multitask"]["passes"] == 8
    meta_dir, multitask_dir = tmp_path / "meta" / "adapter", tmp_path / "meta" / "multitask_adapter"
    assert json.loads((multitask_dir / "metanlp.json").read_text())["algorithm"] == "multitask"
    meta_lora = load_file(meta_dir / "adapter_model.safetensors")
    multitask_lora = load_file(multitask_dir / "adapter_model.safetensors")
    assert meta_lora.keys() == multitask_lora.keys()
    assert any(not torch.equal(meta_lora[k], multitask_lora[k]) for k in meta_lora)
    meta = json.loads((meta_dir / "metanlp.json").read_text())
    assert meta["family"] == "translation" and "Gemma" not in meta["base_model_licence"]
    assert not any("zu" in p for p in meta["meta_train_pairs"])
    assert meta["vocab_pruning"]["kept"]

    support = tmp_path / "support.tsv"
    support.write_text("".join(f"the dog number {i}\tinja {i}\n" for i in range(3)), encoding="utf-8")
    predict = tmp_path / "sentences.txt"
    predict.write_text("the dog number 7\nthe dog number 8\n", encoding="utf-8")
    out = tmp_path / "pair"
    sets = [f"adapter.init={meta_dir}", f"adapter.multitask_init={multitask_dir}", f"data.support={support}",
            f"data.predict={predict}", f"data.eval={support}", "translation.source_lang=en",
            "translation.target_lang=zu", f"run.output_dir={out}"]  # fmt: skip
    capsys.readouterr()
    sets += ["model.name=tiny-random-gemma3", *_SETS, f"translation.pairs=[{_corpus(tmp_path)}]"]
    assert cli_main(["adapt", "new_language_pair", *[a for x in sets for a in ("--set", x)]]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    rows = [r + read for r in ("prompting", "finetune", "multitask", "meta") for read in ("", "_bm25")]
    assert metrics["support_pairs"] == 3 and list(metrics["methods"]) == rows
    assert all(set(metrics["methods"][r]) == {"chrf", "bleu"} for r in rows)
    assert all(f"| {LETTERS[r.removesuffix('_bm25')]} {r} | {metrics['prompts'][r]} | "
               f"{metrics['methods'][r]['chrf']:.1f} |" in printed for r in rows)  # fmt: skip
    assert metrics["prompts"]["meta_bm25"] == "3 pairs by BM25" and metrics["prompts"]["meta"] == "zero-shot"
    adapter = out / "adapter"
    info = json.loads((adapter / "metanlp.json").read_text())
    assert (info["source_lang"], info["target_lang"]) == ("en", "zu")
    assert list(info["comparison"]["methods"]) == rows and info["comparison"]["k_shot"] == 3
    assert len(info["translations"]) == 2
    assert (out / "translations.tsv").read_text().count("\n") == 2

    # stock peft on the *unpruned* tiny backbone: the LoRA weights fit, and they are the adapted ones
    base, _ = tiny_causal_lm(info["tiny_tokenizer_texts"], seed=0)
    stock = PeftModel.from_pretrained(base, str(adapter))
    lora = {k: v for k, v in stock.named_parameters() if "lora_B" in k}
    assert lora and any(float(v.abs().sum()) > 0 for v in lora.values())

    capsys.readouterr()
    assert cli_main(["translate", str(adapter), "--text", "the dog number 7", "--text", "the dog number 8"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [t["translation"] for t in info["translations"]]
    with pytest.raises(SystemExit) as err:
        cli_main(["translate", str(adapter), "--source-lang", "zu", "--target-lang", "en", "--text", "inja"])
    assert err.value.code == 2
    assert "translates en->zu, but zu->en was asked (source and target swapped?)" in capsys.readouterr().err

    swapped = _cfg(tmp_path, f"adapter.init={adapter}", f"data.support={support}", "translation.source_lang=zu",
                   "translation.target_lang=en", f"run.output_dir={tmp_path / 'swapped'}")  # fmt: skip
    with pytest.raises(ValueError, match="swapped source and target"):
        new_language_pair.run(swapped)
    assert not (tmp_path / "swapped").exists()


def test_new_pair_rejects_bad_input_before_writing(tmp_path):
    good = tmp_path / "good.tsv"
    good.write_text("a b\tc d\ne f\tg h\n", encoding="utf-8")
    bad = tmp_path / "bad.tsv"
    bad.write_text("a b\tc d\ne f\n", encoding="utf-8")
    out = tmp_path / "out"
    cases = [
        (["translation.source_lang=en", "translation.target_lang=qq", f"data.support={good}"],
         "unknown language code 'qq'"),
        (["translation.source_lang=en", "translation.target_lang=zu", f"data.support={good}", "task.k_shot=3"],
         "2 sentence pairs, fewer than task.k_shot=3"),
        (["translation.source_lang=en", "translation.target_lang=zu", f"data.support={bad}"],
         "bad.tsv:2: expected 2 tab-separated fields"),
        (["translation.target_lang=zu", f"data.support={good}"], "set translation.source_lang"),
        # the shipped example is named for en-zu: another target language must not silently score it
        (["translation.source_lang=en", "translation.target_lang=xh", f"data.support={good}",
          "data.eval=data/examples/new_language_pair/eval.en-zu.tsv"],
         r"data.eval=data/examples/new_language_pair/eval.en-zu.tsv is named for en-zu, but this recipe translates "
         r"en->xh"),
    ]  # fmt: skip
    for extra, msg in cases:
        with pytest.raises(ValueError, match=msg):
            new_language_pair.run(_cfg(tmp_path, f"run.output_dir={out}", *extra))
        assert not out.exists()


def test_tiny_causal_lm_is_seeded():
    a, _ = tiny_causal_lm(["x y z"], seed=3)
    b, _ = tiny_causal_lm(["x y z"], seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_translation_meta_validation_logs_chrf_and_plots(tmp_path):
    out = tmp_path / "meta"
    cfg = _cfg(tmp_path, f"run.output_dir={out}", "translation.val_languages=[fr]", "meta.eval_every=1",
               "meta.val_episodes=1")  # fmt: skip
    translation_meta_train.run(cfg)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [sorted(e) for e in log] == [["query_loss", "step", "val_bleu", "val_chrf", "val_ci95"]] * 2
    assert all(0 <= e["val_chrf"] <= 100 for e in log)  # a NaN fails this
    png = plot_curves(out)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_top_layer_lora_meta_train_then_new_pair_use_the_prefix_cache(tmp_path):
    """adapter.layers=[-1]: meta-training (+ multi-task baseline) and adaptation run with the frozen-prefix cache; the
    adapters record lora_layers, and adapting from them under another adapter.layers is a clear error."""
    cfg = _cfg(tmp_path, f"run.output_dir={tmp_path / 'meta'}", "translation.multitask_baseline=true",
               "adapter.layers=[-1]")  # fmt: skip
    translation_meta_train.run(cfg)
    meta_dir, multitask_dir = tmp_path / "meta" / "adapter", tmp_path / "meta" / "multitask_adapter"
    for folder in (meta_dir, multitask_dir):
        assert json.loads((folder / "metanlp.json").read_text())["lora_layers"] == [1]
        assert all(".layers.1." in k for k in load_file(folder / "adapter_model.safetensors"))
    support = tmp_path / "support.tsv"
    support.write_text("".join(f"the dog number {i}\tinja {i}\n" for i in range(3)), encoding="utf-8")
    sets = [f"adapter.init={meta_dir}", f"adapter.multitask_init={multitask_dir}", f"data.support={support}",
            f"data.eval={support}", "translation.source_lang=en", "translation.target_lang=zu"]  # fmt: skip
    metrics = new_language_pair.run(_cfg(tmp_path, *sets, "adapter.layers=[-1]", f"run.output_dir={tmp_path / 'p'}"))
    assert list(metrics["methods"]) == [r + read for r in ("prompting", "finetune", "multitask", "meta")
                                        for read in ("", "_bm25")]  # fmt: skip
    assert json.loads((tmp_path / "p" / "adapter" / "metanlp.json").read_text())["lora_layers"] == [1]
    with pytest.raises(ValueError, match=r"has LoRA on layers \[1\], but adapter.layers gives \[0, 1\]"):
        new_language_pair.run(_cfg(tmp_path, *sets, f"run.output_dir={tmp_path / 'q'}"))
