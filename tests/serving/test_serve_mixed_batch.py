"""Mixed-domain batches: each row through its own LoRA and its own head, exactly as plain PEFT."""

from __future__ import annotations

import asyncio

import pytest
import torch

from loradock.registry import DEFAULT_BASE, PRESETS
from tests.serve_support import TEXTS, base_fingerprint, register, register_presets, serve_config

pytestmark = pytest.mark.slow


_REFERENCE: dict = {}


def peft_logits(registry, domain: str, text: str) -> torch.Tensor:
    """The text alone through plain `PeftModel.from_pretrained` for the domain's version."""
    from peft import PeftModel

    from loradock.adapters.base import load_classifier, load_tokenizer

    key = (str(registry.home), domain)
    if key not in _REFERENCE:
        _REFERENCE[key] = PeftModel.from_pretrained(
            load_classifier(DEFAULT_BASE, list(PRESETS[domain].labels)), str(registry.path(f"{domain}@production"))
        ).eval()
    model = _REFERENCE[key]
    tok = load_tokenizer(DEFAULT_BASE)
    with torch.no_grad():
        return model(**tok(text, return_tensors="pt", truncation=True, max_length=128)).logits[0]


def test_mixed_batch_rows_match_plain_peft(registry, make_peft_folder) -> None:
    from loradock.serving.backends.torch_backend import MultiLoraModel
    from loradock.serving.weights import read_adapter

    # Different ranks too: the stack pads to the largest one.
    register_presets(registry, make_peft_folder, ranks={"education": 4, "sentiment": 16})
    model = MultiLoraModel(DEFAULT_BASE)
    weights = {
        d: model.prepare(read_adapter(registry.resolve(f"{d}@production"), registry.path(f"{d}@production")))
        for d in ("medical", "education", "sentiment")
    }
    domains = ["medical", "education", "sentiment", "medical", "education", "sentiment", "medical"]
    rows = model.encode(TEXTS)
    out = model.run(rows, [weights[d] for d in domains])
    assert [o.shape[0] for o in out] == [len(PRESETS[d].labels) for d in domains]
    for domain, text, logits in zip(domains, TEXTS, out):
        expected = peft_logits(registry, domain, text)
        assert (logits - expected).abs().max().item() <= 1e-5, (domain, text)
    # The adapters really differ: the same text through two domains gives different heads.
    assert not torch.allclose(out[0][:2], model.run(rows[:1], [weights["sentiment"]])[0])


def test_engine_batches_domains_together_and_names_versions(registry, make_peft_folder) -> None:
    from loradock.serving.engine import ServingEngine

    versions = register_presets(registry, make_peft_folder)
    engine = ServingEngine(serve_config(max_wait_ms=50.0), registry)
    engine.start()
    try:

        async def many():
            jobs = []
            for i, text in enumerate(TEXTS * 2):
                domain = ("medical", "education", "sentiment")[i % 3]
                entry = engine.route(domain)
                jobs.append((domain, text, entry, engine.predict(entry, [text])))
            results = await asyncio.gather(*(j[3] for j in jobs))
            for _, _, entry, _ in jobs:
                engine.cache.release(entry)
            return [(d, t, r[0]) for (d, t, _, _), r in zip(jobs, results)]

        results = asyncio.run(many())
    finally:
        engine.close()
    assert engine.batcher.batches < len(results)  # rows of several domains shared forward passes
    for domain, text, prediction in results:
        assert prediction.version.sha256 == versions[domain].sha256
        assert (prediction.logits - peft_logits(registry, domain, text)).abs().max().item() <= 1e-5


def test_adapter_from_another_base_is_refused(registry, make_peft_folder) -> None:
    from loradock.serving.engine import ServingEngine
    from loradock.serving.errors import AdapterLoadError

    register(registry, make_peft_folder, "medical", seed=1, fingerprint="sha256:" + "0" * 64)
    assert base_fingerprint() != "sha256:" + "0" * 64
    with pytest.raises(AdapterLoadError, match=r"medical@1 was trained on base .*start a server on that base"):
        ServingEngine(serve_config(domains=("medical@production",)), registry)
