"""adapters predict reads texts from arguments, stdin ('-') and --file (lines or a CSV column), in batches,
and says which path ran; with an ONNX export it runs without importing torch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from loradock.adapters import predict as predict_module
from loradock.adapters.predict import Prediction, PredictRun, read_texts
from loradock.cli.main import cli
from tests.export_support import exported  # noqa: F401  (a fixture)


@pytest.fixture
def seen(monkeypatch) -> list[dict]:
    """Replace the model with a recorder: these tests are about where texts come from."""
    calls: list[dict] = []

    def fake(registry, ref, texts, **kwargs):
        calls.append({"ref": ref, "texts": list(texts), **kwargs})
        return PredictRun(
            ref, "onnxruntime", "onnx/fp32-opset17", [Prediction(t, "positive", 0.9, [0.0, 1.0]) for t in texts]
        )

    monkeypatch.setattr(predict_module, "predict_version", fake)
    return calls


def run(args: list[str], stdin: str | None = None):
    return CliRunner().invoke(cli, ["predict", *args], input=stdin, catch_exceptions=False)


def test_stdin_and_arguments_keep_their_order(seen) -> None:
    result = run(["sentiment@1", "first", "-", "last", "--json"], stdin="from stdin\n\n  \nsecond line\n")
    assert result.exit_code == 0, result.output
    assert seen[0]["texts"] == ["first", "from stdin", "second line", "last"]
    assert [p["text"] for p in json.loads(result.stdout)] == seen[0]["texts"]
    assert "predicted 4 with onnxruntime (onnx/fp32-opset17 of sentiment@1)" in result.stderr


def test_file_lines_and_csv_column_in_batches(seen, tmp_path) -> None:
    lines = tmp_path / "texts.txt"
    lines.write_text("one\ntwo, with a comma\n\nthree\n")
    assert run(["sentiment@1", "--file", str(lines), "--batch-size", "2"]).exit_code == 0
    assert seen[-1]["texts"] == ["one", "two, with a comma", "three"] and seen[-1]["batch_size"] == 2
    table = tmp_path / "reviews.csv"
    table.write_text('id,body\n1,"Loved it, truly"\n2,"Line one\nline two"\n3,\n')
    assert run(["sentiment@1", "--file", str(table), "--column", "body"]).exit_code == 0
    assert seen[-1]["texts"] == ["Loved it, truly", "Line one\nline two"]


def test_bad_inputs_are_clear(seen, tmp_path) -> None:
    table = tmp_path / "reviews.csv"
    table.write_text("id,body\n1,hi\n")
    missing = run(["sentiment@1", "--file", str(table)])
    assert missing.exit_code == 5 and "no column 'text'" in missing.output and "--column" in missing.output
    empty = run(["sentiment@1", "-"], stdin="\n\n")
    assert empty.exit_code == 2 and "at least one text" in empty.output
    assert not seen


def test_read_texts_refuses_non_utf8(tmp_path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8"):
        read_texts(path)


@pytest.mark.slow
def test_onnx_path_matches_peft_and_never_imports_torch(exported, tmp_path) -> None:
    texts = ["A warm, funny film.", "Dull and far too long, I left early.", "ok"]
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n")
    code = (
        "import sys, json; from loradock.cli.main import cli\n"
        f"try:\n    cli(['predict', {exported.version.ref!r}, '--file', {str(tmp_path / 'in.txt')!r}, '--json'])\n"
        "except SystemExit as e:\n    assert e.code == 0, e.code\n"
        "print('TORCH', 'torch' in sys.modules, 'transformers' in sys.modules, file=sys.stderr)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={"ADAPTERS_HOME": str(exported.home), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    assert "TORCH False False" in out.stderr and "with onnxruntime (onnx/fp32-opset17" in out.stderr
    onnx = json.loads(out.stdout)
    peft = CliRunner().invoke(
        cli,
        ["predict", exported.version.ref, *texts, "--backend", "torch", "--json"],
        env={"ADAPTERS_HOME": str(exported.home)},
        catch_exceptions=False,
    )
    assert "with torch (PEFT adapter" in peft.stderr
    torch_rows = json.loads(peft.stdout)
    assert [p["label"] for p in onnx] == [p["label"] for p in torch_rows]
    assert all(abs(a - b) < 1e-4 for x, y in zip(onnx, torch_rows) for a, b in zip(x["logits"], y["logits"]))


def test_a_length_chosen_from_short_training_texts_does_not_cut_predictions_short() -> None:
    from types import SimpleNamespace

    from loradock.adapters.predict import DEFAULT_MAX_LENGTH, version_max_length

    auto = SimpleNamespace(train_args={"max_length": 32, "recipe_rule": {"max_length": 32, "length_p95": 20}})
    asked = SimpleNamespace(train_args={"max_length": 32, "recipe_rule": {"max_length": None}})
    assert version_max_length(None, auto) == DEFAULT_MAX_LENGTH
    assert version_max_length(None, asked) == 32


# -- issue 22, item 5: a character budget before tokenizing -------------------------------------


def test_long_texts_are_cut_before_the_tokenizer_sees_them() -> None:
    import torch

    from loradock.adapters.predict import MAX_CHARS, torch_logits

    lengths: list[int] = []

    class RecordingTokenizer:
        def __call__(self, texts, **kwargs):
            lengths.extend(len(t) for t in texts)
            return {"input_ids": torch.zeros((len(texts), 4), dtype=torch.long)}

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, input_ids):
            return type("Out", (), {"logits": torch.zeros((input_ids.shape[0], 2))})()

    torch_logits(Model(), RecordingTokenizer(), ["short", "x" * 1_000_000])
    assert lengths == [5, MAX_CHARS]


def test_a_long_stdin_line_is_cut_and_the_cli_says_so(seen) -> None:
    from loradock.adapters.predict import MAX_CHARS

    result = run(["sentiment@1", "-"], stdin="fine\n" + "y" * 2_000_000 + "\nlast\n")
    assert result.exit_code == 0, result.output
    texts = seen[-1]["texts"]
    assert [t[:4] for t in texts] == ["fine", "yyyy", "last"]
    assert len(texts[1]) <= MAX_CHARS + 1  # kept short while reading; cut to MAX_CHARS at the tokenizer
    assert f"1 text(s) longer than {MAX_CHARS} characters" in result.stderr


def test_a_huge_line_in_a_file_is_never_held_whole(tmp_path) -> None:
    import tracemalloc

    path = tmp_path / "huge.txt"
    with path.open("w") as fh:
        fh.write("first\n")
        for _ in range(32):
            fh.write("z" * (1 << 20))  # one 32 MiB line
        fh.write("\nlast\n")
    tracemalloc.start()
    texts = read_texts(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert [t[:4] for t in texts] == ["firs", "zzzz", "last"]
    assert peak < 8 * (1 << 20), f"peak {peak / (1 << 20):.1f} MiB while reading"


def test_the_server_and_predict_share_one_budget() -> None:
    from loradock.adapters.predict import MAX_CHARS
    from loradock.serving.config import ServeConfig

    assert ServeConfig().max_chars == MAX_CHARS
