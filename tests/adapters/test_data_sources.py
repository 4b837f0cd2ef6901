"""Data sources: embedded samples, local files, hf: datasets, and the checks against a domain."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from loradock.adapters import data as datamod
from loradock.adapters.errors import DataError
from loradock.registry import PRESETS

SENTIMENT = ("negative", "positive")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_embedded_sample_covers_every_label_of_its_preset(name: str) -> None:
    labelled = datamod.load(f"embedded:{name}", PRESETS[name].labels)
    counts = labelled.counts()
    assert set(counts) == set(PRESETS[name].labels)
    assert all(40 <= n <= 60 for n in counts.values()), counts
    assert len(set(labelled.texts)) == len(labelled.texts)  # no duplicates


def test_jsonl_csv_and_parquet_with_custom_columns(tmp_path: Path) -> None:
    rows = [{"body": f"text {i}", "tag": SENTIMENT[i % 2]} for i in range(6)]
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    csv_path = tmp_path / "d.csv"
    csv_path.write_text("body,tag\n" + "".join(f"{r['body']},{r['tag']}\n" for r in rows))
    import pandas as pd

    parquet = tmp_path / "d.parquet"
    pd.DataFrame(rows).to_parquet(parquet)
    loaded = [
        datamod.load(str(p), SENTIMENT, text_column="body", label_column="tag") for p in (jsonl, csv_path, parquet)
    ]
    assert {x.fingerprint for x in loaded} == {loaded[0].fingerprint}
    assert loaded[0].labels == (0, 1, 0, 1, 0, 1)
    assert loaded[0].texts[0] == "text 0"


def test_integer_labels_are_indices_into_the_domain_labels(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": 1}\n{"text": "b", "label": "0"}\n')
    assert datamod.load(str(path), SENTIMENT).labels == (1, 0)


def test_missing_column_names_the_column_and_the_option(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"body": "a", "label": "positive"}\n')
    with pytest.raises(DataError, match=r"no column 'text'.*--text-column"):
        datamod.load(str(path), SENTIMENT)
    with pytest.raises(DataError, match=r"no column 'y'.*--label-column"):
        datamod.load(str(path), SENTIMENT, text_column="body", label_column="y")


def test_unknown_labels_are_named(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": "positive"}\n{"text": "b", "label": "meh"}\n{"text": "c", "label": 7}\n')
    with pytest.raises(DataError, match=r"'7'.*'meh'.*negative, positive"):
        datamod.load(str(path), SENTIMENT)


def test_empty_and_missing_sources_are_clear_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DataError, match="holds no rows"):
        datamod.load(str(empty), SENTIMENT)
    with pytest.raises(DataError, match="does not exist"):
        datamod.load(str(tmp_path / "nope.csv"), SENTIMENT)
    odd = tmp_path / "d.txt"
    odd.write_text("x")
    with pytest.raises(DataError, match="Unsupported data file"):
        datamod.load(str(odd), SENTIMENT)
    with pytest.raises(DataError, match="No embedded sample 'legal'"):
        datamod.load("embedded:legal", SENTIMENT)


def test_parse_hf_spec() -> None:
    assert datamod.parse_hf("hf:imdb") == ("imdb", None, None)
    assert datamod.parse_hf("hf:glue:sst2@abc123") == ("glue", "sst2", "abc123")
    with pytest.raises(DataError, match="names no dataset"):
        datamod.parse_hf("hf:")


def test_hf_source_reads_the_split_and_class_label_names(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    seen = {}

    def fake_load(name, config, split, revision):
        seen.update(name=name, config=config, split=split, revision=revision)
        features = datasets.Features(
            {"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])}
        )
        return datasets.Dataset.from_dict({"sentence": ["bad", "good"], "label": [0, 1]}, features=features)

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    with pytest.raises(DataError, match="'neg'"):  # ClassLabel names are checked by name
        datamod.load("hf:glue:sst2@v1", SENTIMENT, text_column="sentence", split="validation")
    assert seen == {"name": "glue", "config": "sst2", "split": "validation", "revision": "v1"}
    rows = datamod.read_rows("hf:glue:sst2@v1", "validation")
    assert rows[1] == {"sentence": "good", "label": "pos"}


def test_hf_source_offline_failure_is_a_data_error() -> None:
    with pytest.raises(DataError, match="Cannot load dataset 'hf:surely-not-a-dataset-xyz'"):
        datamod.load("hf:surely-not-a-dataset-xyz", SENTIMENT)


def test_split_eval_is_stratified_deterministic_and_disjoint() -> None:
    full = datamod.load("embedded:medical", PRESETS["medical"].labels)
    train, held = datamod.split_eval(full, 0.2, seed=1)
    again, _ = datamod.split_eval(full, 0.2, seed=1)
    other, _ = datamod.split_eval(full, 0.2, seed=2)
    assert train.fingerprint == again.fingerprint != other.fingerprint
    assert len(train) + len(held) == len(full)
    assert not set(train.texts) & set(held.texts)
    assert set(Counter(held.labels).values()) == {9}  # 20% of 45 per label


def test_single_class_training_set_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": "positive"}\n{"text": "b", "label": "positive"}\n')
    with pytest.raises(DataError, match="only label 'positive'"):
        datamod.check_trainable(datamod.load(str(path), SENTIMENT))


def test_fingerprint_changes_with_a_label() -> None:
    a = datamod.LabelledData("x", ("t1", "t2"), (0, 1), SENTIMENT)
    b = datamod.LabelledData("y", ("t1", "t2"), (0, 0), SENTIMENT)
    assert a.fingerprint != b.fingerprint
    assert a.fingerprint == datamod.LabelledData("z", ("t1", "t2"), (0, 1), SENTIMENT).fingerprint
