"""Training benchmark on Rotten Tomatoes critic snippets (fresh vs rotten).

Modes (each arm runs in its own subprocess so its peak RSS is its own):

  python bench/train.py              usual recipe vs `adapters train`, side by side
  python bench/train.py --quality    LoRA vs full fine-tuning, both through `adapters train`
  python bench/train.py --lr-sweep   LoRA test accuracy per learning rate (--epochs, default 1)
  python bench/train.py --loops      loradock's own loop vs the transformers.Trainer loop, interleaved rounds
  python bench/train.py --recipes    old fixed recipe vs the recipe from the data vs the majority class,
                                     on Rotten Tomatoes, 20 Newsgroups (4 topics) and Reuters R8 (--sizes)
  python bench/train.py --lengths    the recipe at max_length 64, 128, 256 and the length chosen from the data
                                     (recipe.py), 1000 rows of each --datasets, same held-out test rows

Arm (a), the usual recipe: transformers Trainer, padding="max_length",
max_length=256, batch 16, lr 5e-5, LoRA r=8 alpha=32 dropout 0.1 on
query/value. Arm (b): adapters.train.train() with the sentiment preset's
recipe (dynamic padding, length-grouped batches, lr from the preset).
Both arms train on the same subset of the same split for the same epochs on
the same base, and are scored on the same test rows by the same evaluator
(predictions do not depend on padding, so (a) is scored with dynamic padding
to keep the bench short). Run it under the bench lock:

  flock /tmp/loradock-bench.lock python bench/train.py
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.data import newsgroups, reuters_r8, rotten_tomatoes, split, write_jsonl

LABELS = ("negative", "positive")


# -- arms (run in a child process) -------------------------------------------


def _score(model: Any, tokenizer: Any, test_rows: list[dict[str, str]], max_length: int) -> float:
    from loradock.adapters.data import to_labelled
    from loradock.adapters.training.evaluate import evaluate_model
    from loradock.adapters.training.tokenized import tokenize

    test = to_labelled(test_rows, LABELS, "test")
    ids = tokenize(tokenizer, test.texts, test.fingerprint, max_length)
    return evaluate_model(model, ids, test, tokenizer.pad_token_id, "cpu").accuracy


def arm_usual(work: Path, epochs: int, lr: float) -> dict[str, Any]:
    """transformers Trainer + PEFT, every text padded to 256 tokens."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import Trainer, TrainingArguments

    from loradock.adapters.base import load_classifier, load_tokenizer
    from loradock.registry import DEFAULT_BASE

    train_rows = [json.loads(x) for x in (work / "train.jsonl").read_text().splitlines()]
    test_rows = [json.loads(x) for x in (work / "test.jsonl").read_text().splitlines()]
    tokenizer = load_tokenizer(DEFAULT_BASE)
    torch.manual_seed(0)
    model = get_peft_model(
        load_classifier(DEFAULT_BASE, LABELS),
        LoraConfig(task_type=TaskType.SEQ_CLS, r=8, lora_alpha=32, lora_dropout=0.1, target_modules=["query", "value"]),
    )
    ds = Dataset.from_list([{"text": r["text"], "label": LABELS.index(r["label"])} for r in train_rows])
    ds = ds.map(
        lambda b: tokenizer(b["text"], padding="max_length", truncation=True, max_length=256),
        batched=True,
        remove_columns=["text"],
    )
    args = TrainingArguments(
        output_dir=str(work / "trainer"),
        per_device_train_batch_size=16,
        learning_rate=lr,
        num_train_epochs=epochs,
        save_strategy="no",
        report_to=[],
        logging_steps=50,
        seed=0,
        use_cpu=True,
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=ds)
    out = trainer.train()
    return {
        "samples_per_s": out.metrics["train_samples_per_second"],
        "train_time_s": out.metrics["train_runtime"],
        "accuracy": _score(model, tokenizer, test_rows, 256),
        "train_loss": out.metrics["train_loss"],
        "trainable_pct": 100
        * sum(p.numel() for p in model.parameters() if p.requires_grad)
        / sum(p.numel() for p in model.parameters()),
    }


def arm_adapters(work: Path, epochs: int, lr: float | None, full: bool = False, loop: str = "own") -> dict[str, Any]:
    """adapters.train.train() on the same rows, registered in a throwaway home."""
    from loradock.adapters.training.options import TrainOptions
    from loradock.adapters.training.train import train
    from loradock.registry import Registry

    with Registry(work / f"home-{os.getpid()}") as reg:
        result = train(
            reg,
            "sentiment",
            TrainOptions(
                data=str(work / "train.jsonl"),
                eval_data=str(work / "test.jsonl"),
                epochs=epochs,
                lr=lr,
                batch_size=16,
                max_length=256,
                full=full,
                progress=False,
                loop=loop,
                patience=0,
            ),
        )
    return {
        "samples_per_s": result.extra["samples_per_s"],
        "train_time_s": result.extra["train_time_s"],
        "accuracy": result.report.accuracy,
        "train_loss": result.history["epochs"][-1]["train_loss"],
        "trainable_pct": result.extra["trainable_pct"],
        "lr": result.train_args["lr"],
        "per_epoch_accuracy": [e["accuracy"] for e in result.history["epochs"]],
        "wall_time_s": result.extra["wall_time_s"],
    }


def child(arm: str, work: Path, epochs: int, lr: float | None, threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)
    if arm == "usual":
        result = arm_usual(work, epochs, lr or 5e-5)
    else:
        result = arm_adapters(work, epochs, lr, full=arm == "full", loop="trainer" if arm == "trainer" else "own")
    result["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(result), flush=True)


# -- parent --------------------------------------------------------------------

THREADS: list[int] = []  # set from --threads; passed to every arm


def run_arm(arm: str, work: Path, epochs: int, lr: float | None = None) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", arm, "--work", str(work), "--epochs", str(epochs)]
    if THREADS:
        cmd += ["--threads", str(THREADS[0])]
    if lr is not None:
        cmd += ["--lr", repr(lr)]
    started = time.perf_counter()
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        check=False,
        env={"OMP_WAIT_POLICY": "PASSIVE", **os.environ, "HF_HUB_OFFLINE": "1"},
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"arm {arm} failed")
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][-1]
    result = json.loads(line[len("RESULT ") :])
    result["wall_s"] = time.perf_counter() - started
    return result


SMOKE: list[bool] = []  # --smoke: the embedded sentiment sample instead of the wheel (offline, seconds)


def _smoke_rows() -> list[dict[str, str]]:
    from importlib.resources import files

    text = files("loradock.adapters.samples").joinpath("sentiment.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def prepare(work: Path, train_size: int, test_size: int) -> tuple[int, int]:
    train_rows, test_rows = split(_smoke_rows() if SMOKE else rotten_tomatoes())
    train_rows, test_rows = train_rows[:train_size], test_rows[:test_size]
    write_jsonl(train_rows, work / "train.jsonl")
    write_jsonl(test_rows, work / "test.jsonl")
    return len(train_rows), len(test_rows)


def loops(work: Path, args: argparse.Namespace, threads: int) -> None:
    """The Trainer decision: same rows, recipe and epochs through both loops, alternated so load drift hits both."""
    n_train, n_test = prepare(work, args.train_size or 640, args.test_size or 500)
    print(
        f"# own loop vs transformers.Trainer: {n_train} train rows, {n_test} eval rows, {args.epochs} epoch(s), "
        f"{threads} torch threads, CPU, {args.rounds} interleaved rounds",
        flush=True,
    )
    print(
        "| round | loop | samples/s (training only) | train time s | wall s (with eval, checkpoints) | eval accuracy |"
    )
    print("|---|---|---|---|---|---|")
    speeds: dict[str, list[float]] = {"own": [], "trainer": []}
    for i in range(args.rounds):
        for arm in ("own", "trainer") if i % 2 == 0 else ("trainer", "own"):
            r = run_arm("lora" if arm == "own" else "trainer", work, args.epochs, args.lr)
            speeds[arm].append(r["samples_per_s"])
            print(
                f"| {i + 1} | {arm} | {r['samples_per_s']:.1f} | {r['train_time_s']:.1f} | {r['wall_time_s']:.1f} | "
                f"{r['accuracy']:.4f} |",
                flush=True,
            )
    ratio = sum(speeds["trainer"]) / sum(speeds["own"])
    print(f"\nTrainer / own throughput: {ratio:.2f}x (keep the own loop only below 0.90x)")


OLD_RECIPE = {"lr": 1e-3, "epochs": 3}  # before issue 11: every user domain, whatever its data


def _dataset(name: str) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    if name == "rt":
        return split(rotten_tomatoes())
    if name == "ng4":
        return newsgroups()
    if name == "r8":
        return reuters_r8()
    raise SystemExit(f"unknown dataset {name!r}: rt, ng4, r8")


def _recipe_arm(
    work: Path, tag: str, data: Path, test: Path, max_length: int | None, labels: tuple[str, ...], **recipe: Any
) -> dict[str, Any]:
    """`adapters train` on `data` (its own 20% held out for best epoch and gate), scored on the test rows.

    max_length None: the length the recipe chooses from the data.
    """
    from loradock.adapters.training.evaluate import evaluate_version
    from loradock.adapters.training.options import TrainOptions
    from loradock.adapters.training.train import train
    from loradock.registry import Domain, Registry

    with Registry(work / f"home-{tag}") as reg:
        reg.add_domain(Domain("bench", labels))  # every label of the full set: a small sample may miss a rare one
        started = time.perf_counter()
        result = train(reg, "bench", TrainOptions(data=str(data), max_length=max_length, progress=False, **recipe))
        assert result.version is not None
        report = evaluate_version(reg, result.version.ref, str(test), device="cpu")  # at the length it trained with
        return {
            "accuracy": report.accuracy,
            "macro_f1": report.macro_f1,
            "epochs_run": len(result.history["epochs"]),
            "lr": result.train_args["lr"],
            "epochs": result.train_args["epochs"],
            "gate": result.gate["passed"],
            "best_epoch": result.history.get("best_epoch"),
            "wall_s": time.perf_counter() - started,
            "max_length": result.train_args["max_length"],
            "samples_per_s": result.extra["samples_per_s"],
            "length_p95": result.train_args["recipe_rule"].get("length_p95"),
        }


def recipes(work: Path, args: argparse.Namespace, threads: int) -> None:
    """Old recipe vs recipe from the data vs majority class: accuracy and macro-F1 on held-out test rows."""
    import random

    from loradock.adapters.training.recipe import choose
    from loradock.registry.gates import majority_baseline

    print(
        f"# recipe from the data: {args.test_size or 300} test rows per data set, max_length {args.max_length}, "
        f"{threads} torch threads, CPU (shared machine)",
        flush=True,
    )
    print(
        "| data set | rows | classes | majority acc / macro-F1 | old recipe (lr 1e-3 x 3) acc / macro-F1 | "
        "new recipe | new acc / macro-F1 | epochs run (best) | wall s old / new |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.datasets.split(","):
        train_rows, test_rows = _dataset(name)
        test_rows = random.Random(1).sample(test_rows, min(len(test_rows), args.test_size or 300))
        test = write_jsonl(test_rows, work / f"{name}-test.jsonl")
        counts: dict[str, int] = {}
        for r in test_rows:
            counts[r["label"]] = counts.get(r["label"], 0) + 1
        base = majority_baseline(counts)
        labels = tuple(sorted({r["label"] for r in train_rows}))
        classes = len(labels)
        for size in (len(train_rows) if x == "full" else int(x) for x in args.sizes.split(",")):
            rows = random.Random(0).sample(train_rows, min(size, len(train_rows)))
            data = write_jsonl(rows, work / f"{name}-{size}.jsonl")
            new = choose(round(len(rows) * 0.8), classes, 16)
            old = _recipe_arm(work, f"{name}-{size}-old", data, test, args.max_length, labels, **OLD_RECIPE, patience=0)
            if (new.lr, new.epochs) == (OLD_RECIPE["lr"], OLD_RECIPE["epochs"]):
                fresh = old  # the rule picks the old recipe here: one run serves both columns
            else:
                fresh = _recipe_arm(work, f"{name}-{size}-new", data, test, args.max_length, labels)
            print(
                f"| {name} | {len(rows)} | {classes} | {base['accuracy']:.3f} / {base['macro_f1']:.3f} | "
                f"{old['accuracy']:.3f} / {old['macro_f1']:.3f} | lr {fresh['lr']:g} x {fresh['epochs']} | "
                f"{fresh['accuracy']:.3f} / {fresh['macro_f1']:.3f} | {fresh['epochs_run']} ({fresh['best_epoch']}) | "
                f"{old['wall_s']:.0f} / {fresh['wall_s']:.0f} |",
                flush=True,
            )


def _auto_length(work: Path, tag: str, data: Path, labels: tuple[str, ...]) -> tuple[int, int | None]:
    """The max_length (and 95th-percentile token count) train() would choose for `data`, without training."""
    from loradock.adapters.training.options import TrainOptions
    from loradock.adapters.training.prepare import prepare
    from loradock.registry import Domain, Registry

    with Registry(work / f"home-{tag}") as reg:
        reg.add_domain(Domain("bench", labels))
        prep = prepare(reg, "bench", TrainOptions(data=str(data), progress=False))
        return prep.recipe.max_length, prep.args["recipe_rule"].get("length_p95")


def lengths(work: Path, args: argparse.Namespace, threads: int) -> None:
    """The recipe at fixed truncation lengths vs the length chosen from the data, same test rows."""
    import random

    size = args.train_size or 1000
    print(
        f"# text length in the recipe: {size} rows per data set (20% held out for best epoch), "
        f"{args.test_size or 300} test rows, {threads} torch threads, CPU (shared machine)",
        flush=True,
    )
    print("| data set | rows | max_length | accuracy / macro-F1 | wall s | samples/s |")
    print("|---|---|---|---|---|---|")
    for name in args.datasets.split(","):
        train_rows, test_rows = _dataset(name)
        test_rows = random.Random(1).sample(test_rows, min(len(test_rows), args.test_size or 300))
        test = write_jsonl(test_rows, work / f"{name}-test.jsonl")
        labels = tuple(sorted({r["label"] for r in train_rows}))
        rows = random.Random(0).sample(train_rows, min(size, len(train_rows)))
        data = write_jsonl(rows, work / f"{name}-{size}.jsonl")
        auto, p95 = _auto_length(work, f"{name}-probe", data, labels)
        fixed = [int(x) for x in args.max_lengths.split(",")]
        arms: list[int | None] = [*fixed] + ([] if auto in fixed else [None])
        for length in arms:
            r = _recipe_arm(work, f"{name}-{length or 'auto'}", data, test, length, labels)
            shown = f"{r['max_length']} (auto, p95 {p95})" if length is None else str(length)
            if length == auto:
                shown += f" (= auto, p95 {p95})"
            print(
                f"| {name} | {len(rows)} | {shown} | {r['accuracy']:.3f} / {r['macro_f1']:.3f} | {r['wall_s']:.0f} | "
                f"{r['samples_per_s']:.1f} |",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quality", action="store_true", help="LoRA vs full fine-tuning accuracy.")
    parser.add_argument("--loops", action="store_true", help="Own loop vs transformers.Trainer loop, side by side.")
    parser.add_argument("--rounds", type=int, default=2, help="Interleaved rounds for --loops.")
    parser.add_argument("--recipes", action="store_true", help="Old recipe vs recipe from the data vs majority class.")
    parser.add_argument(
        "--lengths", action="store_true", help="The recipe at max_length 64, 128, 256 vs chosen from the data."
    )
    parser.add_argument("--datasets", default="rt,ng4,r8", help="For --recipes and --lengths: rt, ng4, r8.")
    parser.add_argument(
        "--max-lengths",
        default="64,128,256",
        help="For --lengths: fixed lengths, run in this order, "
        "then the length the recipe chooses (unless it is one of them).",
    )
    parser.add_argument(
        "--sizes", default="100,1000", help="For --recipes: rows drawn from each training set (a number, or full)."
    )
    parser.add_argument("--max-length", type=int, default=128, help="For --recipes: truncation (both arms).")
    parser.add_argument("--lr-sweep", default=None, help="Comma-separated LoRA learning rates, one epoch each.")
    parser.add_argument("--train-size", type=int, default=None, help="Training rows (subset of the 10,246).")
    parser.add_argument("--test-size", type=int, default=None, help="Test rows (subset of the 2,562).")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads in every arm (default: torch's choice). On a shared machine 1 is steadier.",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="Seconds, offline: both loops on 24 rows of the embedded sample (checks the bench runs).",
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--work", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.smoke:
        SMOKE.append(True)
        args.loops, args.rounds, args.train_size, args.test_size = True, 1, 24, 16
    if args.child:
        child(args.child, Path(args.work), args.epochs, args.lr, args.threads)
        return

    import torch

    threads = args.threads or torch.get_num_threads()
    if args.threads:
        THREADS.append(args.threads)
        torch.set_num_threads(args.threads)  # --recipes and --lengths train in this process
    with tempfile.TemporaryDirectory(prefix="loradock-bench-") as tmp:
        work = Path(tmp)
        if args.quality:
            n_train, n_test = prepare(work, args.train_size or 3000, args.test_size or 2562)
            print(
                f"# LoRA vs full fine-tuning: {n_train} train rows, {n_test} test rows, {args.epochs} epoch(s), "
                f"{threads} torch threads"
            )
            from loradock.registry import LoraRecipe

            # The recipe default for real data, not the embedded-sample presets' rate.
            lora_lr = args.lr or LoraRecipe().lr
            rows = [
                ("LoRA (adapters train)", run_arm("lora", work, args.epochs, lora_lr)),
                ("full fine-tuning (adapters train --full)", run_arm("full", work, args.epochs)),
            ]
            print("| arm | lr | trainable % | test accuracy | samples/s | peak RSS MB |")
            print("|---|---|---|---|---|---|")
            for name, r in rows:
                print(
                    f"| {name} | {r['lr']:g} | {r['trainable_pct']:.3f} | {r['accuracy']:.4f} | "
                    f"{r['samples_per_s']:.1f} | {r['max_rss_mb']:.0f} |"
                )
            lora, full = rows[0][1], rows[1][1]
            print(
                f"\nLoRA / full accuracy: {lora['accuracy'] / full['accuracy']:.4f} "
                f"({100 * lora['accuracy'] / full['accuracy']:.1f}% of full) with {lora['trainable_pct']:.3f}% "
                "of the parameters trainable"
            )
            print("per-epoch test accuracy: LoRA", lora["per_epoch_accuracy"], "full", full["per_epoch_accuracy"])
            return
        if args.recipes:
            recipes(work, args, threads)
            return
        if args.lengths:
            lengths(work, args, threads)
            return
        if args.loops:
            loops(work, args, threads)
            return
        if args.lr_sweep:
            n_train, n_test = prepare(work, args.train_size or 2000, args.test_size or 1000)
            print(
                f"# LoRA learning rate, {args.epochs} epoch(s): {n_train} train rows, {n_test} test rows, "
                f"{threads} torch threads",
                flush=True,
            )
            print("| lr | test accuracy | final train loss | test accuracy per epoch |")
            print("|---|---|---|---|")
            for lr in (float(x) for x in args.lr_sweep.split(",")):
                r = run_arm("lora", work, args.epochs, lr)
                per_epoch = " ".join(f"{a:.3f}" for a in r["per_epoch_accuracy"])
                print(f"| {lr:g} | {r['accuracy']:.4f} | {r['train_loss']:.4f} | {per_epoch} |", flush=True)
            return
        n_train, n_test = prepare(work, args.train_size or 640, args.test_size or 1000)
        print(
            f"# Usual recipe vs adapters train: SUBSET of {n_train} train rows (of 10,246) and {n_test} test rows "
            f"(of 2,562), {args.epochs} epoch(s), {threads} torch threads, CPU"
        )
        usual = run_arm("usual", work, args.epochs)
        ours = run_arm("lora", work, args.epochs)
        print("| arm | lr | samples/s | train time s | test accuracy | peak RSS MB |")
        print("|---|---|---|---|---|---|")
        for name, r, lr in (("(a) Trainer, pad to 256", usual, 5e-5), ("(b) adapters train", ours, ours["lr"])):
            print(
                f"| {name} | {lr:g} | {r['samples_per_s']:.1f} | {r['train_time_s']:.1f} | {r['accuracy']:.4f} | "
                f"{r['max_rss_mb']:.0f} |"
            )
        print(
            f"\nthroughput ratio (b)/(a): {ours['samples_per_s'] / usual['samples_per_s']:.1f}x "
            f"(target >= 4x); accuracy (b) - (a): {100 * (ours['accuracy'] - usual['accuracy']):+.1f} points "
            "(target >= -0.5)"
        )


if __name__ == "__main__":
    main()
