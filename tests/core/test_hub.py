"""metanlp.core.hub and ``metanlp push`` / ``pull``: the stock huggingface_hub client against the local Hub-API server.

The adapter is a tiny random BERT (saved as a local backbone folder, so ``load_classifier`` and
``PeftModel.from_pretrained`` can rebuild it by name) with random LoRA matrices and head, so that a lost or altered
weight changes the logits.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi

from metanlp.core.config import AdapterConfig
from metanlp.core.errors import HubError
from metanlp.core.hub import pull_adapter, push_adapter, resolve_adapter
from metanlp.core.model_card import build_model_card
from metanlp.core.recipe_loading import load_recipe, recipe_to_yaml
from metanlp.core.saving import save_adapter
from metanlp.families.text_classification.adapter import attach_lora, lora_parameters, set_head
from metanlp.families.text_classification.backbone import tiny_encoder

ALICE, BOB = "hf_alice_token", "hf_bob_token"
LABELS = ["billing", "card_lost", "travel_alert"]
TEXTS = ["my card was declined at the shop", "I am travelling to Peru next week", "what is my balance", "lost it"]
RECORDS = [
    {"method": m, "metric": "accuracy", "mean": acc, "ci95": 0.05, "episodes": 20, "n_way": 3, "k_shot": 5}
    for m, acc in (("centroid", 0.61), ("finetune", 0.64), ("meta", 0.72))
]
ROOT = Path(__file__).resolve().parents[2]

# Runs in a fresh interpreter: HF_ENDPOINT / HF_HOME / HF_TOKEN come from the environment, as for a user.
FRESH_PROCESS = """
import json, sys
import torch
from peft import PeftModel
from metanlp.families.text_classification.adapter import TextClassifier
from metanlp.families.text_classification.backbone import load_encoder
from metanlp.core.hub import pull_adapter, resolve_adapter
from metanlp.families.text_classification.adapter import load_classifier

repo, out, result = sys.argv[1:4]
texts = json.loads(sys.argv[4])
pulled = pull_adapter(repo, out_dir=out)
cached = resolve_adapter(repo)

def logits(model, tokenizer):
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    return model(enc["input_ids"], enc["attention_mask"])

with torch.no_grad():
    model, tokenizer, meta = load_classifier(pulled)
    found = {"load_classifier": logits(model, tokenizer)}
    for name, source in (("peft_snapshot", str(cached)), ("peft_repo_id", repo)):
        encoder, tokenizer = load_encoder(meta["backbone"])
        base = TextClassifier(encoder, len(meta["labels"]))
        found[name] = logits(PeftModel.from_pretrained(base, source).eval(), tokenizer)
torch.save({**found, "cached": str(cached)}, result)
"""


@pytest.fixture(scope="module")
def adapter(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.Tensor]:
    """``(adapter folder, reference logits (len(TEXTS), len(LABELS)))`` of a tiny classifier with random weights."""
    root = tmp_path_factory.mktemp("tiny")
    encoder, tokenizer = tiny_encoder(seed=3)
    backbone = root / "backbone"
    encoder.backbone.save_pretrained(backbone)
    tokenizer.save_pretrained(backbone)
    cfg = AdapterConfig(r=4, alpha=8, target_modules=["query", "value"])
    model = attach_lora(encoder, cfg, num_labels=len(LABELS), base_name=str(backbone))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in lora_parameters(model).values():
            p.copy_(0.2 * torch.randn(p.shape, generator=g))
    set_head(model, torch.randn(len(LABELS), encoder.hidden_size, generator=g), torch.randn(len(LABELS), generator=g))
    model.eval()
    meta = {"family": "text_classification", "backbone": str(backbone), "hidden_size": encoder.hidden_size,
            "labels": LABELS, "n_way": 3, "k_shot": 5, "licence": "apache-2.0",
            "data_licence": "CC-BY-3.0 (CLINC150)"}  # fmt: skip
    folder = save_adapter(model, root / "adapter", meta, recipe_to_yaml(load_recipe(None)), RECORDS)
    enc = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        reference = model(enc["input_ids"], enc["attention_mask"])
    return folder, reference


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def commits(hub, repo: str) -> int:  # noqa: ANN001
    return sum(r.startswith(f"POST /api/models/{repo}/commit/") for r in hub.state.requests)


def test_push_then_pull_in_fresh_process_gives_same_files_and_logits(local_hub, adapter, tmp_path) -> None:  # noqa: ANN001
    folder, reference = adapter
    commit = push_adapter(folder, "alice/tiny-intents", private=True, endpoint=local_hub.url, token=ALICE)
    assert commit.commit_url.startswith(f"{local_hub.url}/alice/tiny-intents/commit/")
    assert commits(local_hub, "alice/tiny-intents") == 1

    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(HF_ENDPOINT=local_hub.url, HF_TOKEN=ALICE, HF_HOME=str(tmp_path / "hf_home"), HF_HUB_OFFLINE="0",
               HF_HUB_DISABLE_PROGRESS_BARS="1", PYTHONPATH=str(ROOT))  # fmt: skip
    out, result = tmp_path / "pulled", tmp_path / "logits.pt"
    args = [sys.executable, "-c", FRESH_PROCESS, "alice/tiny-intents", str(out), str(result), json.dumps(TEXTS)]
    proc = subprocess.run(args, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert ALICE not in proc.stdout + proc.stderr

    found = torch.load(result)
    for name in ("load_classifier", "peft_snapshot", "peft_repo_id"):
        assert torch.equal(found[name], reference), name
    source = files_of(folder)
    expected_card = str(build_model_card(folder, "alice/tiny-intents")).encode()
    for pulled in (out, Path(found["cached"])):
        got = files_of(pulled)
        got.pop(".gitattributes")
        assert got.pop("README.md") == expected_card
        source_without_card = {k: v for k, v in source.items() if k != "README.md"}  # peft's own card is replaced
        assert got == source_without_card
    assert Path(found["cached"]).is_relative_to(tmp_path / "hf_home")


def test_model_card_states_task_metrics_and_licences(adapter, tmp_path) -> None:  # noqa: ANN001
    folder, _ = adapter
    card = build_model_card(folder, "alice/tiny-intents")
    text = str(card)
    assert card.data.license == "apache-2.0" and card.data.library_name == "peft"
    assert card.data.pipeline_tag == "text-classification"
    assert "CC-BY-3.0 (CLINC150)" in text and "`travel_alert`" in text and "Labels (3)" in text
    assert "- N-way: 3" in text and "- K-shot: 5" in text and "fomaml" in text
    for method, acc in (("centroid", "0.6100"), ("finetune", "0.6400"), ("meta", "0.7200")):
        assert f"| 3 | 5 | {method} | accuracy | {acc} ± 0.0500 | 20 |" in text
    assert 'PeftModel.from_pretrained(TextClassifier(encoder, 3), "alice/tiny-intents")' in text

    gemma = tmp_path / "gemma"
    gemma.mkdir()
    meta = {"family": "translation", "backbone": "google/gemma-3-270m", "language_pair": "en-gd",
            "base_model_licence": "Gemma Terms of Use", "data_licence": "CC-BY-SA-4.0 (Tatoeba)"}  # fmt: skip
    (gemma / "metanlp.json").write_text(json.dumps(meta))
    card = build_model_card(gemma, "alice/en-gd")
    assert (card.data.license, card.data.base_model) == ("gemma", "google/gemma-3-270m")
    assert card.data.language == ["en", "gd"] and card.data.pipeline_tag == "translation"
    assert "Base model licence: Gemma Terms of Use" in str(card) and "https://ai.google.dev/gemma/terms" in str(card)
    assert "CC-BY-SA-4.0 (Tatoeba)" in str(card) and "en → gd" in str(card)
    meta.pop("base_model_licence")  # a Gemma adapter states the Gemma Terms of Use even when metanlp.json does not
    (gemma / "metanlp.json").write_text(json.dumps(meta))
    card = build_model_card(gemma, "alice/en-gd")
    assert card.data.license == "gemma" and "Gemma Terms of Use" in str(card)


def test_wrong_token_is_rejected_and_never_shown(local_hub, adapter, tmp_path) -> None:  # noqa: ANN001
    folder, _ = adapter
    secret = "hf_this_is_not_a_valid_token"
    with pytest.raises(HubError, match="rejected the token \\(401") as e:
        push_adapter(folder, "alice/x", endpoint=local_hub.url, token=secret)
    assert secret not in str(e.value) and local_hub.url in str(e.value)
    assert local_hub.state.repos == {}
    push_adapter(folder, "alice/x", endpoint=local_hub.url, token=ALICE)
    with pytest.raises(HubError, match="401") as e:
        pull_adapter("alice/x", out_dir=tmp_path / "out", endpoint=local_hub.url, token=secret, cache_dir=tmp_path)
    assert secret not in str(e.value) and not (tmp_path / "out").exists()


def test_private_repo_is_hidden_from_other_users(local_hub, adapter, tmp_path) -> None:  # noqa: ANN001
    folder, _ = adapter
    push_adapter(folder, "alice/secret", private=True, endpoint=local_hub.url, token=ALICE)
    with pytest.raises(HubError, match="'alice/secret' not found, or it is private"):
        pull_adapter("alice/secret", endpoint=local_hub.url, token=BOB, cache_dir=tmp_path)
    with pytest.raises(HubError, match="403 Forbidden"):  # bob cannot write to alice's namespace either
        push_adapter(folder, "alice/secret-2", endpoint=local_hub.url, token=BOB)
    path = pull_adapter("alice/secret", endpoint=local_hub.url, token=ALICE, cache_dir=tmp_path)
    assert (path / "adapter_model.safetensors").read_bytes() == (folder / "adapter_model.safetensors").read_bytes()


def test_unreachable_hub_is_one_clear_error_naming_it(adapter, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{s.getsockname()[1]}"
    folder, _ = adapter
    with pytest.raises(HubError, match=f"cannot reach the hub at {endpoint}"):
        push_adapter(folder, "alice/x", endpoint=endpoint, token=ALICE)
    with pytest.raises(HubError, match=f"cannot reach the hub at {endpoint}"):
        pull_adapter("alice/x", out_dir=tmp_path / "out", endpoint=endpoint, token=ALICE, cache_dir=tmp_path)


def test_missing_revision_and_non_adapter_repo(local_hub, adapter, tmp_path) -> None:  # noqa: ANN001
    folder, _ = adapter
    push_adapter(folder, "alice/branchy", revision="k5", endpoint=local_hub.url, token=ALICE)
    kw = {"endpoint": local_hub.url, "token": ALICE, "cache_dir": tmp_path}
    with pytest.raises(HubError, match="has no revision 'k1'"):
        pull_adapter("alice/branchy", revision="k1", **kw)
    with pytest.raises(HubError, match="alice/branchy@main .* is not a metanlp adapter: no metanlp.json"):
        pull_adapter("alice/branchy", **kw)  # the push went to branch k5 only
    assert (pull_adapter("alice/branchy", revision="k5", **kw) / "metanlp.json").is_file()


def test_repo_with_other_content_needs_force(local_hub, adapter) -> None:  # noqa: ANN001
    folder, _ = adapter
    api = HfApi(endpoint=local_hub.url, token=ALICE)
    api.create_repo("alice/someone-elses")
    api.upload_file(path_or_fileobj=b"not an adapter", path_in_repo="weights.bin", repo_id="alice/someone-elses")
    before = api.repo_info("alice/someone-elses").sha
    with pytest.raises(HubError, match=r"already holds files that metanlp did not push \(weights.bin\).*--force"):
        push_adapter(folder, "alice/someone-elses", endpoint=local_hub.url, token=ALICE)
    assert api.repo_info("alice/someone-elses").sha == before

    push_adapter(folder, "alice/someone-elses", endpoint=local_hub.url, token=ALICE, force=True)
    files = {s.rfilename for s in api.repo_info("alice/someone-elses").siblings}
    assert "weights.bin" not in files and {"metanlp.json", "adapter_model.safetensors", "README.md"} <= files
    push_adapter(folder, "alice/someone-elses", endpoint=local_hub.url, token=ALICE)  # an earlier metanlp push: fine


def test_interrupted_push_leaves_the_repo_as_it_was(local_hub, adapter) -> None:  # noqa: ANN001
    folder, _ = adapter
    local_hub.state.fail_next_commit = True
    with pytest.raises(HubError, match="connection broke.*either its previous content or the whole adapter"):
        push_adapter(folder, "alice/flaky", endpoint=local_hub.url, token=ALICE)
    repo = local_hub.state.repos["alice/flaky"]
    assert set(repo.resolve("main").files) == {".gitattributes"} and len(repo.commits) == 1
    push_adapter(folder, "alice/flaky", endpoint=local_hub.url, token=ALICE)
    assert "metanlp.json" in repo.resolve("main").files


def test_corrupted_download_is_rejected_and_not_kept(local_hub, adapter, tmp_path) -> None:  # noqa: ANN001
    folder, _ = adapter
    push_adapter(folder, "alice/bitrot", endpoint=local_hub.url, token=ALICE)
    kw = {"endpoint": local_hub.url, "token": ALICE, "cache_dir": tmp_path / "cache"}
    local_hub.state.corrupt_downloads = True
    with pytest.raises(HubError, match="does not match the hub: .* wrong checksum"):
        pull_adapter("alice/bitrot", out_dir=tmp_path / "out", **kw)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))
    with pytest.raises(HubError, match="does not match the hub"):
        pull_adapter("alice/bitrot", **kw)
    local_hub.state.corrupt_downloads = False
    path = pull_adapter("alice/bitrot", **kw)  # the bad cached files were dropped, so they are fetched again
    assert (path / "adapter_model.safetensors").read_bytes() == (folder / "adapter_model.safetensors").read_bytes()


def test_resolve_adapter_local_folder_repo_id_and_offline_cache(local_hub, adapter, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    folder, _ = adapter
    assert resolve_adapter(folder) == folder
    with pytest.raises(FileNotFoundError, match="no such adapter folder"):
        resolve_adapter(tmp_path / "runs" / "missing" / "adapter")
    push_adapter(folder, "alice/resolved", endpoint=local_hub.url, token=ALICE)
    path = resolve_adapter("alice/resolved", endpoint=local_hub.url, token=ALICE, cache_dir=tmp_path)
    assert (path / "metanlp.json").read_bytes() == (folder / "metanlp.json").read_bytes()
    with pytest.raises(HubError, match="alice/nope is not a local folder, and pulling it from the hub failed"):
        resolve_adapter("alice/nope", endpoint=local_hub.url, token=ALICE, cache_dir=tmp_path)
    local_hub.stop()
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert resolve_adapter("alice/resolved", endpoint=local_hub.url, cache_dir=tmp_path) == path


def test_cli_push_and_pull_round_trip(local_hub, adapter, tmp_path, monkeypatch, capsys) -> None:  # noqa: ANN001
    import huggingface_hub.constants

    from metanlp.cli import main

    folder, _ = adapter
    monkeypatch.setenv("HF_TOKEN", ALICE)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    assert main(["push", str(folder), "cli-adapter", "--endpoint", local_hub.url, "--revision", "v1"]) == 0
    assert capsys.readouterr().out.startswith(f"{local_hub.url}/alice/cli-adapter/commit/")
    out = tmp_path / "pulled"
    assert main(["pull", "alice/cli-adapter", "--revision", "v1", "--out", str(out), "--endpoint", local_hub.url]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert (out / "adapter_model.safetensors").read_bytes() == (folder / "adapter_model.safetensors").read_bytes()

    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    (tmp_path / "file.txt").write_text("keep me too")
    outs = [["--out", str(tmp_path / "notes")], ["--out", str(tmp_path / "file.txt")], []]
    for argv in (["pull", "alice/none", *out] for out in outs):
        with pytest.raises(SystemExit) as e:
            main([*argv, "--endpoint", local_hub.url])
        assert e.value.code == 2
        assert capsys.readouterr().err.startswith("metanlp: error: ")
    assert (tmp_path / "notes" / "todo.txt").read_text() == "keep me"
    assert (tmp_path / "file.txt").read_text() == "keep me too"


def test_hub_client_and_cli_start_without_torch():
    """push/pull/--help must not pay for torch + transformers (the package exports are imported lazily)."""
    import subprocess
    import sys

    code = ("import sys, metanlp, metanlp.core.hub, metanlp.cli; "
            "print(sorted({'torch', 'transformers'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    import metanlp

    # the literal __all__ (for static tools) and the lazy-import table name the same public API, and each resolves
    assert sorted(metanlp.__all__) == sorted(metanlp._EXPORTS)
    assert all(getattr(metanlp, name) is not None for name in metanlp.__all__)


@pytest.mark.parametrize("delay_s", [0.5, 1.5, 3.0])
def test_sigkill_of_push_leaves_the_old_revision_or_the_whole_new_one(local_hub, adapter, delay_s) -> None:  # noqa: ANN001
    """A real ``metanlp push`` process killed at several moments: the repo's main branch is the previous push or
    the complete new one (every file of an adapter and the model card), never a partial upload."""
    import os
    import signal
    import subprocess
    import sys
    import time

    folder, _ = adapter
    push_adapter(folder, "alice/killed", endpoint=local_hub.url, token=ALICE)
    repo = local_hub.state.repos["alice/killed"]
    old = dict(repo.resolve("main").files)
    (folder / "metrics.json").write_text(json.dumps({"pushed_at": delay_s}), encoding="utf-8")  # new content
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"} | {"HF_TOKEN": ALICE}
    proc = subprocess.Popen([sys.executable, "-m", "metanlp", "push", str(folder), "alice/killed",
                             "--endpoint", local_hub.url], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    time.sleep(delay_s)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    now = dict(repo.resolve("main").files)
    assert now == old or ({"metanlp.json", "adapter_model.safetensors", "adapter_config.json", "README.md",
                           "metrics.json"} <= set(now) and now["metrics.json"] != old.get("metrics.json"))  # fmt: skip
