"""Issue 24 item 3: generation data in TRL's formats, completion-only loss masks, and the errors before training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loradock.adapters.errors import DataError
from loradock.adapters.generation import data as g
from tests.generation_support import build_tiny_tokenizer, write_messages, write_prompt_completion


@pytest.fixture(scope="module")
def tok():
    return build_tiny_tokenizer()


def _trained(tok, encoded: g.Encoded) -> str:
    return tok.decode([label for label in encoded.labels if label != g.IGNORE_INDEX])


def _jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def test_prompt_completion_jsonl_trains_on_the_completion_and_eos_only(tmp_path, tok):
    data = g.load(write_prompt_completion(tmp_path / "pc.jsonl", n=4))
    assert (data.format, len(data)) == (g.PROMPT_COMPLETION, 4)
    encoded = g.encode(tok, data.examples[0])
    assert tok.decode(encoded.input_ids) == "what is zero plus zero ? the answer is zero . <|im_end|>"
    assert _trained(tok, encoded) == "the answer is zero . <|im_end|>"
    assert encoded.prompt_tokens == 6 and encoded.labels[:6] == [g.IGNORE_INDEX] * 6
    assert encoded.labels[6:] == encoded.input_ids[6:]


def test_messages_jsonl_goes_through_the_chat_template_and_trains_on_assistant_turns_only(tmp_path, tok):
    data = g.load(write_messages(tmp_path / "chat.jsonl", n=3))
    assert data.format == g.MESSAGES
    encoded = g.encode(tok, data.examples[0])
    rendered = tok.apply_chat_template(
        [{"role": r, "content": c} for r, c in data.examples[0].messages], tokenize=False
    )
    assert encoded.input_ids == tok(rendered, add_special_tokens=False)["input_ids"]
    assert _trained(tok, encoded) == "the answer is zero . <|im_end|>"  # its end-of-turn token included


def test_every_assistant_turn_of_a_multi_turn_conversation_is_trained_and_nothing_else(tmp_path, tok):
    turns = [
        {"role": "user", "content": "what is one plus one ?"},
        {"role": "assistant", "content": "two"},
        {"role": "user", "content": "what is two plus two ?"},
        {"role": "assistant", "content": "four"},
    ]
    encoded = g.encode(tok, g.load(_jsonl(tmp_path / "multi.jsonl", [{"messages": turns}])).examples[0])
    assert _trained(tok, encoded) == "two <|im_end|> four <|im_end|>"
    assert encoded.prompt_tokens == len(
        tok("<|im_start|> user what is one plus one ? <|im_end|> <|im_start|> assistant")["input_ids"]
    )


def test_csv_with_named_columns(tmp_path, tok):
    path = tmp_path / "qa.csv"
    path.write_text('question,answer\n"what is one plus two ?","three"\n"what is two plus two ?",four\n')
    data = g.load(path, prompt_column="question", completion_column="answer")
    assert [(e.line, e.prompt, e.completion) for e in data.examples] == [
        (2, "what is one plus two ?", "three"),
        (3, "what is two plus two ?", "four"),
    ]
    assert _trained(tok, g.encode(tok, data.examples[0])) == "three <|im_end|>"
    with pytest.raises(DataError, match=r"no column 'prompt' \(columns: question, answer\).*--prompt-column"):
        g.load(path)


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"prompt": "what is one ?"}, "line 2: missing key 'completion'"),
        ({"prompt": 5, "completion": "five"}, "line 2: 'prompt' must be a string, got int 5"),
        ({"prompt": "what ?", "completion": "  "}, "line 2: empty completion"),
        ("{not json", "line 2: not valid JSON"),
        ([1, 2], "line 2: expected a JSON object, got list"),
        ({"text": "hello"}, "line 2: no 'messages' and no 'prompt'/'completion' keys (keys: text)"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "line 2: a messages row in a file of prompt-completion"),
    ],
)
def test_a_bad_prompt_completion_row_is_reported_by_line_number(tmp_path, row, reason):
    path = _jsonl(tmp_path / "bad.jsonl", [{"prompt": "what is one ?", "completion": "one"}, row])
    with pytest.raises(DataError) as err:
        g.load(path)
    assert reason in str(err.value) and "1 bad row(s)" in str(err.value)


@pytest.mark.parametrize(
    ("messages", "reason"),
    [
        ([{"role": "bot", "content": "hi"}], "message 1 has unknown role 'bot' (use system, user, assistant)"),
        ([{"role": "user", "content": "hi"}], "no assistant message"),
        ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}], "message 2 (assistant) has empty"),
        ([{"role": "user", "content": 3}, {"role": "assistant", "content": "x"}], "message 1 (user) content must be"),
        ([{"role": "user"}], "message 1 must be an object with 'role' and 'content'"),
        ("hello", "'messages' must be a non-empty list"),
    ],
)
def test_a_bad_messages_row_is_reported_by_line_number(tmp_path, messages, reason):
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "one"}]}
    path = _jsonl(tmp_path / "bad.jsonl", [good, "", {"messages": messages}])  # line 2 blank: skipped
    with pytest.raises(DataError) as err:
        g.load(path)
    assert f"line 3: {reason}" in str(err.value)


def test_many_bad_rows_are_listed_together_and_counted(tmp_path):
    path = _jsonl(tmp_path / "bad.jsonl", [{"prompt": "x"}] * 15)
    with pytest.raises(DataError) as err:
        g.load(path)
    message = str(err.value)
    assert "15 bad row(s)" in message and "line 10: missing key" in message and "and 5 more" in message


def test_a_missing_file_and_an_unknown_suffix_say_what_to_pass(tmp_path):
    with pytest.raises(DataError, match="No data file"):
        g.load(tmp_path / "none.jsonl")
    with pytest.raises(DataError, match=r"must be a \.jsonl file"):
        g.load(tmp_path / "data.parquet")


def test_an_empty_loss_mask_on_every_row_stops_before_training(tmp_path):
    # A template that writes no assistant turns: nothing would be trained on.
    silent = build_tiny_tokenizer(
        "{% for m in messages %}{% if m['role'] != 'assistant' %}{{ m['content'] }}{% endif %}{% endfor %}"
    )
    data = g.load(write_messages(tmp_path / "chat.jsonl", n=3))
    encoded = g.encode_all(silent, data)
    with pytest.raises(DataError, match="loss mask is empty for every row of .*chat template writes the assistant"):
        g.check_trainable(encoded, 64, data.source)


def test_completions_all_cut_off_by_max_length_name_it_the_shortest_prompt_and_the_next_step(tmp_path, tok):
    rows = [{"prompt": "a long prompt " * n + "?", "completion": "one"} for n in (3, 4, 5)]
    data = g.load(_jsonl(tmp_path / "long.jsonl", rows))
    encoded = g.encode_all(tok, data)
    with pytest.raises(DataError) as err:
        g.check_trainable(encoded, 8, data.source)
    message = str(err.value)
    assert "cut off by --max-length 8" in message and "the shortest prompt is 10 tokens" in message
    assert "Pass --max-length 32" in message
    kept = g.check_trainable(encoded, 12, data.source)  # the 10-token prompt keeps its completion
    assert len(kept) == 1 and kept[0].trained_tokens == 2 and len(kept[0].input_ids) == 12


def test_messages_need_a_chat_template(tmp_path):
    plain = build_tiny_tokenizer(chat_template=None)
    data = g.load(write_messages(tmp_path / "chat.jsonl", n=1))
    with pytest.raises(DataError, match="has no chat template; .*prompt/completion rows"):
        g.encode(plain, data.examples[0])


def test_collate_pads_right_with_masked_labels(tok):
    batch = g.collate([{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [5], "labels": [5]}], 1)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [5, 1, 1]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [5, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


def test_split_holds_out_a_seeded_share_and_the_fingerprint_ignores_line_numbers(tmp_path):
    data = g.load(write_prompt_completion(tmp_path / "pc.jsonl", n=10))
    train, held = g.split_eval(data, 0.2, seed=0)
    assert (len(train), len(held)) == (8, 2)
    assert g.split_eval(data, 0.2, seed=0)[1].examples == held.examples
    blank_first = tmp_path / "shifted.jsonl"
    blank_first.write_text("\n" + (tmp_path / "pc.jsonl").read_text())
    assert g.load(blank_first).fingerprint == data.fingerprint
    with pytest.raises(DataError, match="at least 2"):
        g.split_eval(data.subset([0], "one"), 0.2, seed=0)
