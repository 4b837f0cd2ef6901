"""Fuzz `Registry.register` with random safetensors headers and bodies (issue 10): every outcome is a
stored version or a RegistryError, never another exception, and a refusal stores nothing."""

from __future__ import annotations

import json
import shutil
import struct
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loradock.registry import Registry
from loradock.registry.errors import RegistryError

_PREFIX = "base_model.model.bert.encoder.layer.0.attention.self."
_NAMES = [f"{_PREFIX}{m}.lora_{ab}.weight" for m in ("query", "value") for ab in "AB"] + [
    "base_model.model.classifier.weight",
    "base_model.model.classifier.bias",
    "__metadata__",
    "x",
]
_DTYPES = ["F32", "F16", "BF16", "F64", "I64", "I8", "U8", "BOOL", "F8_E4M3", "C64", "", "f32"]

json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), st.text(max_size=8)
)
json_any = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
dim = st.one_of(st.integers(0, 12), st.integers(-3, -1), st.integers(2**31, 2**65), st.sampled_from(["4", 4.0, None]))
entry = st.fixed_dictionaries(
    {
        "dtype": st.sampled_from(_DTYPES),
        "shape": st.one_of(st.lists(dim, max_size=3), json_any),
        "data_offsets": st.one_of(st.tuples(st.integers(-2, 300), st.integers(-2, 300)).map(list), json_any),
    }
)
header = st.one_of(
    st.dictionaries(st.sampled_from(_NAMES), st.one_of(entry, json_any), max_size=6),
    json_any,
)
config_targets = st.one_of(
    st.just(["query", "value"]),
    st.just(["query", "value"]),
    st.just(["query", "value"]),
    st.sampled_from(["(unclosed", ".*", "[z-a]", "query|value"]),
    json_any,
)


def _valid() -> tuple[dict, bytes]:
    """The header and body of a real (tiny) adapter, to mutate one field at a time."""
    from tests.synthetic_adapters import write_adapter

    with tempfile.TemporaryDirectory() as tmp:
        data = (write_adapter(Path(tmp) / "a", r=2, hidden=4, layers=1) / "adapter_model.safetensors").read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + length]), data[8 + length :]


_VALID_HEADER, _VALID_BODY = _valid()
mutated = st.tuples(
    st.sampled_from(sorted(_VALID_HEADER)),
    st.sampled_from(["dtype", "shape", "data_offsets", None]),
    st.one_of(entry, json_any, dim),
)


def _mutate(key: str, field: str | None, value: object) -> dict:
    header = json.loads(json.dumps(_VALID_HEADER))
    if field is None or not isinstance(header[key], dict):
        header[key] = value
    elif isinstance(value, dict) and field in value:
        header[key][field] = value[field]
    else:
        header[key][field] = value
    return header


def _snapshot(reg: Registry) -> tuple[str, list[str]]:
    return "\n".join(reg.conn.iterdump()), sorted(p.as_posix() for p in (reg.home / "blobs").rglob("*"))


def test_register_over_random_safetensors_headers(tmp_path):
    reg = Registry(tmp_path / "home")
    outcomes = {"stored": 0, "refused": 0}

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
    @given(
        random_header=header,
        mutation=st.one_of(st.none(), mutated),
        body=st.one_of(st.just(None), st.just(None), st.binary(max_size=300)),
        length_delta=st.sampled_from([0, 0, 0, 1, -1, 10**6]),
        targets=config_targets,
        r=st.one_of(st.just(2), st.just(2), st.just(2), json_leaf),
    )
    def run(random_header, mutation, body, length_delta, targets, r):
        folder = Path(tempfile.mkdtemp(dir=tmp_path, prefix="adapter-"))
        try:
            head = _mutate(*mutation) if mutation is not None else random_header
            raw = json.dumps(head).encode()
            payload = _VALID_BODY if body is None else body
            (folder / "adapter_model.safetensors").write_bytes(
                struct.pack("<Q", max(0, len(raw) + length_delta)) + raw + payload
            )
            (folder / "adapter_config.json").write_text(
                json.dumps(
                    {"peft_type": "LORA", "task_type": "SEQ_CLS", "r": r, "lora_alpha": 8, "target_modules": targets}
                )
            )
            before = _snapshot(reg)
            try:
                reg.register("sentiment", folder)
                outcomes["stored"] += 1
            except RegistryError:
                outcomes["refused"] += 1
                assert _snapshot(reg) == before  # refused: nothing stored, nothing indexed
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    try:
        run()
    finally:
        reg.close()
    assert outcomes["refused"] > 0
