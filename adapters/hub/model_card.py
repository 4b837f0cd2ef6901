"""The Hub model card (README.md) of a pushed adapter version, and reading one back.

The YAML front matter is what the Hub indexes (base model, `library_name: peft`,
`base_model_relation: adapter`, pipeline tag, tags, license, `model-index`); the
body tells a reader what the adapter is for, how it was trained and how to load it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from loradock.registry import GENERATION, AdapterVersion

DEFAULT_LICENSE = "apache-2.0"  # the license of the embedded default base

# Scalar metrics that go into `model-index`: registry key -> (metric type, display name, config).
_INDEXED_METRICS = {
    "accuracy": ("accuracy", "Accuracy", None),
    "macro_f1": ("f1", "Macro F1", "macro"),
    "eval_loss": ("loss", "Eval loss", None),
    "perplexity": ("perplexity", "Perplexity", None),
}


def card_data(version: AdapterVersion, repo_id: str, license: str = DEFAULT_LICENSE) -> ModelCardData:
    """The front matter for `version` pushed to `repo_id`."""
    dataset = str(version.data.get("source") or version.domain)
    results = [
        EvalResult(
            task_type=version.task,
            task_name=version.task.replace("-", " ").title(),
            dataset_type=dataset,
            dataset_name=dataset,
            dataset_split="eval",
            metric_type=kind,
            metric_name=name,
            metric_config=config,
            metric_value=float(version.metrics[key]),
        )
        for key, (kind, name, config) in _INDEXED_METRICS.items()
        if isinstance(version.metrics.get(key), (int, float))
    ]
    tags = ["lora", "peft", "loradock", version.domain, version.task, *version.tags]
    return ModelCardData(
        base_model=version.base_model,
        library_name="peft",
        base_model_relation="adapter",
        pipeline_tag=version.task,
        license=license,
        tags=list(dict.fromkeys(tags)),
        model_name=repo_id.split("/")[-1],
        eval_results=results or None,
    )


def render_card(
    version: AdapterVersion, repo_id: str, plots: list[str] | None = None, license: str = DEFAULT_LICENSE
) -> str:
    """README.md text: YAML front matter plus a body for people."""
    data = card_data(version, repo_id, license)
    body = "\n".join(_body(version, repo_id, plots or []))
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}\n"))


def _body(version: AdapterVersion, repo_id: str, plots: list[str]) -> list[str]:
    tag = f"v{version.number}"
    labels = list(version.labels)
    peft = version.peft_config
    lines = [
        f"# {repo_id.split('/')[-1]}: LoRA adapter for `{version.domain}` ({tag})",
        "",
        version.description or _summary(version),
        "",
        "## What it is for",
        "",
        f"- Task: {version.task}, domain `{version.domain}`",
        *([f"- Labels (in order): {', '.join(f'`{label}`' for label in labels)}"] if labels else []),
        (
            f"- Base model: [`{version.base_model}`](https://huggingface.co/{version.base_model})"
            + (f" at revision `{version.base_revision}`" if version.base_revision else "")
        ),
        *([f"- Base note: {version.provenance['base_note']}"] if version.provenance.get("base_note") else []),
        f"- Base weights fingerprint: `{version.base_fingerprint or 'not recorded'}`",
        f"- Content sha256 of the adapter files: `{version.sha256}`",
        "",
        "## How it was trained",
        "",
        (
            f"- LoRA: r={peft.get('r')}, alpha={peft.get('alpha')}, dropout={peft.get('dropout')}, "
            f"target modules {peft.get('target_modules')}, {peft.get('parameters') or '?'} adapter parameters"
        ),
    ]
    if version.data:
        lines.append("- Data: " + ", ".join(f"{k}={v}" for k, v in version.data.items()))
    if version.train_args:
        lines.append("- Hyperparameters: " + ", ".join(f"{k}={v}" for k, v in sorted(version.train_args.items())))
    scalars = {k: v for k, v in version.metrics.items() if isinstance(v, (int, float))}
    if scalars:
        lines += ["", "## Results", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in scalars.items()]
    per_class = version.metrics.get("per_class")
    if isinstance(per_class, dict) and per_class:
        lines += ["", "| label | precision | recall | f1 | support |", "|---|---|---|---|---|"]
        for label, m in per_class.items():
            lines.append(
                f"| {label} | " + " | ".join(_cell(m.get(k)) for k in ("precision", "recall", "f1", "support")) + " |"
            )
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p.rsplit('/', 1)[-1].rsplit('.', 1)[0]}]({p})" for p in plots]
    lines += [
        "",
        "## How to load it",
        "",
        "With PEFT:",
        "",
        "```python",
        *_peft_snippet(version, repo_id, tag),
        "```",
        "",
        "With loradock (keeps versions, aliases, metadata and hashes):",
        "",
        "```bash",
        f"adapters pull {repo_id}@{tag}",
        f"adapters show {version.domain}@latest",
        "```",
        "",
        (
            f"`loradock.json` holds the full registry record and the sha256 of every file in this repo; "
            f"tag `{tag}` is version {version.number}, and branches named after aliases (e.g. `production`) follow them."
        ),
    ]
    return lines


def _cell(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value if value is not None else "-")


@dataclass(frozen=True)
class CardSummary:
    """What a model card says that a pull can use when no loradock.json exists."""

    tags: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    license: str | None = None
    base_model: str | None = None
    pipeline_tag: str | None = None
    description: str = ""


def read_card(text: str) -> CardSummary:
    """Tags, metrics (from `model-index`), license and a one-line description from README.md text."""
    card = ModelCard(text, ignore_metadata_errors=True)
    data = card.data
    metrics: dict[str, float] = {}
    for result in getattr(data, "eval_results", None) or []:
        key = next(
            (
                k
                for k, (kind, _, cfg) in _INDEXED_METRICS.items()
                if kind == result.metric_type and cfg == result.metric_config
            ),
            result.metric_type,
        )
        if isinstance(result.metric_value, (int, float)):
            metrics[key] = float(result.metric_value)
    base = getattr(data, "base_model", None)
    return CardSummary(
        tags=list(getattr(data, "tags", None) or []),
        metrics=metrics,
        license=getattr(data, "license", None),
        base_model=str(base[0] if isinstance(base, list) else base) if base else None,
        pipeline_tag=getattr(data, "pipeline_tag", None),
        description=_first_paragraph(card.text),
    )


def _first_paragraph(body: str) -> str:
    for block in body.strip().split("\n\n"):
        block = block.strip()
        if block and not block.startswith(("#", "<!--", "```", "|", "!")):
            return " ".join(block.split())[:300]
    return ""


def _summary(version: AdapterVersion) -> str:
    if version.task == GENERATION:
        return f"A LoRA adapter that generates `{version.domain}` answers (trained on completion tokens only)."
    return f"A LoRA adapter that classifies `{version.domain}` texts into {len(version.labels)} labels."


def _peft_snippet(version: AdapterVersion, repo_id: str, tag: str) -> list[str]:
    """Plain PEFT + transformers lines that load the adapter as its task's model class."""
    load = f'model = PeftModel.from_pretrained(base, "{repo_id}", revision="{tag}").eval()'
    tokenizer = f'tokenizer = AutoTokenizer.from_pretrained("{version.base_model}")'
    if version.task == GENERATION:
        return [
            "from peft import PeftModel",
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "",
            f'base = AutoModelForCausalLM.from_pretrained("{version.base_model}")',
            load,
            tokenizer,
        ]
    labels = list(version.labels)
    return [
        "from peft import PeftModel",
        "from transformers import AutoModelForSequenceClassification, AutoTokenizer",
        "",
        f'base = AutoModelForSequenceClassification.from_pretrained("{version.base_model}", num_labels={len(labels)},',
        f"    id2label={dict(enumerate(labels))!r}, ignore_mismatched_sizes=True)  # a head the base carries is replaced",
        load,
        tokenizer,
    ]
