"""What each console page shows, shaped from the registry's public API (no tables, no torch).

Every function returns plain dicts and lists; templates only lay them out,
and Jinja2 escapes every value on the way out.
"""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

from loradock.registry import AdapterVersion, Artifact, Registry

# Scalar metrics worth plotting across versions, in display order.
CHART_METRICS = ("accuracy", "macro_f1", "eval_loss", "train_loss")
# Artifact kinds made *from* a version (lineage), as opposed to its training outputs.
DERIVED_KINDS = ("merged", "onnx")
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")


def is_image(name: str) -> bool:
    return name.lower().endswith(_IMAGE_SUFFIXES)


def gate_of(version: AdapterVersion) -> dict[str, Any] | None:
    """The version's quality-gate result, wherever training recorded it; None if there is none.

    Read defensively: the gate may be a record field, or sit in `extra`/`metrics`,
    as a dict ({"passed": bool, ...} or {"status": "failed", ...}), a bool or a word.
    """
    raw = getattr(version, "gate", None)
    for holder in (version.extra, version.metrics):
        if raw is None and isinstance(holder, dict):
            raw = holder.get("gate")
    if raw is None or raw == {} or raw == "":
        return None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return {"status": raw, "detail": ""}
    if isinstance(raw, bool):
        return {"status": "passed" if raw else "failed", "detail": ""}
    if isinstance(raw, dict):
        status = raw.get("status")
        if status is None and "passed" in raw:
            status = "passed" if raw["passed"] else "failed"
        reasons = raw.get("reasons")
        if isinstance(reasons, list) and reasons:
            return {"status": str(status or "recorded"), "detail": "; ".join(map(str, reasons))}
        detail = (
            raw.get("reason")
            or raw.get("message")
            or ", ".join(
                f"{k} {v}" for k, v in raw.items() if k not in ("status", "passed") and not isinstance(v, (dict, list))
            )
        )
        return {"status": str(status or "recorded"), "detail": str(detail)}
    return {"status": str(raw), "detail": ""}


def scalar_metrics(version: AdapterVersion) -> dict[str, float]:
    """The version's numeric top-level metrics (per-class tables and matrices left out)."""
    return {k: v for k, v in version.metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def overview(registry: Registry) -> list[dict[str, Any]]:
    """One row per domain: labels, version count, aliases, newest version's metrics and gate."""
    rows = []
    for domain in registry.domains():
        versions = registry.versions(domain.name)
        newest = versions[0] if versions else None
        rows.append(
            {
                "name": domain.name,
                "description": domain.description,
                "labels": list(domain.labels),
                "preset": domain.preset,
                "count": len(versions),
                "aliases": [(a["name"], a["number"]) for a in registry.aliases(domain.name)],
                "newest": newest.ref if newest else None,
                "metrics": scalar_metrics(newest) if newest else {},
                "gate": gate_of(newest) if newest else None,
            }
        )
    return rows


def alias_timeline(registry: Registry, domain: str) -> list[dict[str, Any]]:
    """Every alias move of a domain, newest first (from the event log, removed aliases included)."""
    names = {a["name"] for a in registry.aliases(domain)}
    names |= {
        e.name
        for e in registry.events(0, limit=1_000_000)
        if e.domain == domain and e.action.startswith("alias.") and e.name
    }
    moves = [e for name in sorted(names) for e in registry.alias_history(domain, name)]
    moves.sort(key=lambda e: e.id, reverse=True)
    return [{"at": e.at, "alias": e.name, "action": e.action, "old": e.old, "new": e.new} for e in moves]


def move_notice(registry: Registry, domain: str, event_id: str | None) -> str | None:
    """The notice after an alias move, read from the event log by the move's id: a made-up query
    string (`?moved=production&to=99`) shows nothing, an old id shows what really happened then."""
    if not event_id or not event_id.isdigit() or len(event_id) > 18:
        return None
    wanted = int(event_id)
    found = registry.events(wanted - 1, limit=1)
    event = found[0] if found and found[0].id == wanted else None
    if event is None or event.domain != domain or event.action != "alias.set" or not event.name:
        return None
    current = next((a["number"] for a in registry.aliases(domain) if a["name"] == event.name), None)
    if str(current) == str(event.new):
        return f"{domain}@{event.name} now points to {domain}@{event.new}."
    return f"{domain}@{event.name} was moved to {domain}@{event.new} at {event.at}; it has moved since."


def domain_page(registry: Registry, name: str) -> dict[str, Any]:
    """A domain, its versions (newest first), the chart series and the alias timeline."""
    domain = registry.domain(name)
    versions = registry.versions(name)
    rows = [
        {
            "ref": v.ref,
            "number": v.number,
            "created_at": v.created_at,
            "aliases": list(v.aliases),
            "metrics": scalar_metrics(v),
            "gate": gate_of(v),
            "sha256": v.sha256,
            "size": v.size_bytes,
            "rank": v.peft_config.get("r"),
            "source": v.provenance.get("source", ""),
            "description": v.description,
        }
        for v in versions
    ]
    ordered = sorted(versions, key=lambda v: v.number)
    series = {
        m: [
            [v.number, v.metrics[m]]
            for v in ordered
            if isinstance(v.metrics.get(m), (int, float)) and not isinstance(v.metrics.get(m), bool)
        ]
        for m in CHART_METRICS
    }
    return {
        "domain": domain,
        "versions": rows,
        "aliases": registry.aliases(name),
        "chart": {"x_label": "version", "series": {k: v for k, v in series.items() if v}},
        "timeline": alias_timeline(registry, name),
    }


def artifact_view(artifact: Artifact) -> dict[str, Any]:
    return {
        "id": artifact.id,
        "kind": artifact.kind,
        "name": artifact.name,
        "created_at": artifact.created_at,
        "meta": artifact.meta,
        "files": [
            {"name": n, "sha256": f["sha256"], "size": f.get("size"), "image": is_image(n)}
            for n, f in sorted(artifact.files.items())
        ],
    }


def _children(registry: Registry, version: AdapterVersion) -> list[str]:
    return sorted(
        (v.ref for v in registry.versions(version.domain) if v.parent in (version.ref, str(version.number))),
        key=lambda r: int(r.split("@")[1]),
    )


def snippets(version: AdapterVersion) -> dict[str, str]:
    """Copyable ways to use the version outside the console."""
    python = (
        "from peft import PeftModel\n"
        "from transformers import AutoModelForSequenceClassification\n"
        "from loradock.registry import Registry\n\n"
        f"folder = Registry().path({version.ref!r})  # hash-checked copy\n"
        f"base = AutoModelForSequenceClassification.from_pretrained({version.base_model!r}, "
        f"num_labels={len(version.labels)})\n"
        "model = PeftModel.from_pretrained(base, str(folder))"
    )
    return {"shell": f"adapters path {version.ref}", "python": python}


def version_page(registry: Registry, ref: str) -> dict[str, Any]:
    """Everything recorded about a version, its artifacts, lineage and snippets."""
    version = registry.resolve(ref)
    artifacts = [artifact_view(a) for a in registry.artifacts(version.ref)]
    record = {f.name: getattr(version, f.name) for f in fields(version)}
    return {
        "version": version,
        "record": record,
        "metrics": scalar_metrics(version),
        "per_class": per_class_rows(version),
        "confusion": confusion(version),
        "gate": gate_of(version),
        "plots": [(a, f) for a in artifacts if a["kind"] == "plot" for f in a["files"] if f["image"]],
        "artifacts": artifacts,
        "files": [{"name": n, "sha256": f["sha256"], "size": f.get("size")} for n, f in sorted(version.files.items())],
        "lineage": {
            "parent": version.parent,
            "children": _children(registry, version),
            "provenance": version.provenance,
            "derived": [a for a in artifacts if a["kind"] in DERIVED_KINDS],
        },
        "snippets": snippets(version),
    }


def per_class_rows(version: AdapterVersion) -> list[dict[str, Any]]:
    per_class = version.metrics.get("per_class")
    if not isinstance(per_class, dict):
        return []
    return [{"label": label, **(stats if isinstance(stats, dict) else {})} for label, stats in per_class.items()]


def confusion(version: AdapterVersion) -> dict[str, Any] | None:
    """The confusion matrix with a 0-9 shade per cell (row-normalised), or None."""
    matrix = version.metrics.get("confusion_matrix")
    if not isinstance(matrix, list) or not matrix or not all(isinstance(r, list) for r in matrix):
        return None
    labels = list(version.labels) if len(version.labels) == len(matrix) else [str(i) for i in range(len(matrix))]
    rows = []
    for label, row in zip(labels, matrix):
        total = sum(x for x in row if isinstance(x, (int, float))) or 1
        rows.append({"label": label, "cells": [{"value": x, "shade": min(9, int(10 * x / total))} for x in row]})
    return {"labels": labels, "rows": rows}


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys; lists stay whole (shown as JSON)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key in sorted(value):
            out.update(flatten(value[key], f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def _config_of(version: AdapterVersion) -> dict[str, Any]:
    return flatten(
        {
            "base_model": version.base_model,
            "base_revision": version.base_revision,
            "base_fingerprint": version.base_fingerprint,
            "labels": version.labels,
            "sha256": version.sha256,
            "peft": version.peft_config,
            "train_args": version.train_args,
            "data": version.data,
            "provenance": version.provenance,
            "parent": version.parent,
            "description": version.description,
        }
    )


def _diff(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    keys = sorted(set(a) | set(b))
    return [{"key": k, "a": a.get(k), "b": b.get(k), "same": a.get(k) == b.get(k)} for k in keys]


def _delta(a: Any, b: Any) -> float | None:
    numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b))
    return b - a if numeric else None


def _trend(name: str, delta: float | None) -> str:
    """'better', 'worse' or '' for B against A (lower is better for losses)."""
    if not delta:
        return ""
    lower_is_better = "loss" in name
    return "better" if (delta < 0) == lower_is_better else "worse"


def compare(registry: Registry, ref_a: str, ref_b: str) -> dict[str, Any]:
    """Two versions side by side: config, metrics and per-class differences, both confusion matrices."""
    a, b = registry.resolve(ref_a), registry.resolve(ref_b)
    metrics = []
    for row in _diff(scalar_metrics(a), scalar_metrics(b)):
        delta = _delta(row["a"], row["b"])
        metrics.append({**row, "delta": delta, "trend": _trend(row["key"], delta)})
    pc_a = {r["label"]: r for r in per_class_rows(a)}
    pc_b = {r["label"]: r for r in per_class_rows(b)}
    per_class = []
    for label in list(dict.fromkeys([*pc_a, *pc_b])):
        ra, rb = pc_a.get(label, {}), pc_b.get(label, {})
        per_class.append(
            {
                "label": label,
                "stats": [
                    {
                        "name": s,
                        "a": ra.get(s),
                        "b": rb.get(s),
                        "delta": _delta(ra.get(s), rb.get(s)),
                        "trend": _trend(s, _delta(ra.get(s), rb.get(s))) if s != "support" else "",
                    }
                    for s in ("precision", "recall", "f1", "support")
                ],
            }
        )
    plots = {}
    for side, v in (("a", a), ("b", b)):
        found = [
            (art, f)
            for art in map(artifact_view, registry.artifacts(v.ref, "plot"))
            for f in art["files"]
            if f["image"] and art["name"] == "confusion"
        ]
        plots[side] = found[0] if found else None
    config = _diff(_config_of(a), _config_of(b))
    return {
        "a": a,
        "b": b,
        "config": config,
        "changed": sum(not r["same"] for r in config),
        "metrics": metrics,
        "per_class": per_class,
        "confusion": {"a": confusion(a), "b": confusion(b)},
        "confusion_plots": plots,
    }


def all_refs(registry: Registry) -> list[str]:
    """Every live version ref, for the compare pickers."""
    return [v.ref for v in sorted(registry.versions(), key=lambda v: (v.domain, v.number))]
