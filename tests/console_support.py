"""Helpers for the console tests: a registry of synthetic versions with real plots, and headless Chromium."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from loradock.registry import Domain, Registry, VersionInfo

from .synthetic_adapters import write_adapter

XSS_LABEL = "<script>window.__xss=1</script>"
XSS_DESCRIPTION = '<img src=x onerror="window.__xss=2"> a domain whose text holds HTML'
LABELS = ("billing", "outage", XSS_LABEL)
CHROMIUM = os.environ.get("LORADOCK_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("LORADOCK_CHROMEDRIVER", "/usr/bin/chromedriver")
# Set to a folder (e.g. docs/screenshots) to keep the browser tests' screenshots there.
SCREENSHOTS_ENV = "LORADOCK_SCREENSHOTS"


def _metrics(i: int) -> dict[str, Any]:
    """Metrics that improve from version to version, with a per-class table and a confusion matrix."""
    matrix = [[8 + i, 2 - min(i, 2), 0], [3 - i, 7 + i, 0], [1, 1, 8]]
    per_class = {}
    for k, label in enumerate(LABELS):
        row, col = matrix[k][k], sum(r[k] for r in matrix)
        per_class[label] = {
            "precision": row / col,
            "recall": row / sum(matrix[k]),
            "f1": 2 * row / (col + sum(matrix[k])),
            "support": sum(matrix[k]),
        }
    total = sum(map(sum, matrix))
    return {
        "accuracy": sum(matrix[k][k] for k in range(3)) / total,
        "macro_f1": 0.6 + 0.1 * i,
        "eval_loss": 0.9 - 0.2 * i,
        "train_loss": 1.0 - 0.25 * i,
        "per_class": per_class,
        "confusion_matrix": matrix,
    }


def _plots(folder: Path, i: int, metrics: dict[str, Any]) -> dict[str, Path]:
    from loradock.adapters.training import plots

    folder.mkdir(parents=True, exist_ok=True)
    losses = [1.2 - 0.1 * s * (1 + i) / 4 for s in range(8)]
    return {
        "loss": plots.loss_curve(
            losses, 4, folder / "loss.png", [0.9 - 0.2 * i, 0.8 - 0.2 * i], title=f"support@{i + 1}: loss"
        ),
        "confusion": plots.confusion_heatmap(
            metrics["confusion_matrix"], list(LABELS), folder / "confusion.png", title=f"support@{i + 1}: confusion"
        ),
    }


def build_registry(home: Path, versions: int = 3) -> Registry:
    """`support` (labels include a <script> label) with `versions` versions, plots, aliases and a Hub-pulled one."""
    registry = Registry(home)
    registry.add_domain(Domain(name="support", labels=LABELS, description=XSS_DESCRIPTION))
    for i in range(versions):
        metrics = _metrics(i)
        provenance = (
            {
                "source": "hub",
                "hub_repo": "acme/support-lora",
                "hub_revision": "v1",
                "remote_ref": "v1",
                "commit_sha": "0" * 40,
            }
            if i == 0
            else {"source": "adapters train", "run": f"run-{i}"}
        )
        folder = write_adapter(home.parent / f"adapter-{i}", labels=len(LABELS), seed=i, r=4 + 4 * i)
        version = registry.register(
            "support",
            folder,
            VersionInfo(
                base_model="tiny-bert",
                metrics=metrics,
                train_args={"lr": 1e-3 * (i + 1), "epochs": 3 + i},
                parent=f"support@{i}" if i else None,
                provenance=provenance,
                description=f"round {i + 1}",
                gate={"passed": True, "reasons": [], "min_accuracy": 0.5},
            ),
        )
        for name, path in _plots(home.parent / f"plots-{i}", i, metrics).items():
            registry.add_artifact(version.ref, "plot", name, {path.name: path})
    registry.set_alias("support", "staging", 1)
    registry.set_alias("support", "production", 1)
    registry.set_alias("support", "production", min(2, versions))
    return registry


# -- the browser ------------------------------------------------------------------


def chromium_or_skip() -> None:
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.skip(
            f"headless Chromium not installed ({CHROMIUM}, {CHROMEDRIVER}): apt-get install -y chromium chromium-driver"
        )
    pytest.importorskip("selenium", reason="selenium not installed: pip install selenium")


def open_browser(profile: Path) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1000,700",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    # A 1000x700 viewport whatever the window chrome takes, so screenshots are that size.
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": 1000, "height": 700, "deviceScaleFactor": 1, "mobile": False}
    )
    return driver


def console_errors(driver: Any) -> list[str]:
    """Console messages at error level since the last call (CSP violations and JS errors included)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]


def canvas_ink(driver: Any, element_id: str) -> int:
    """How many pixels of a canvas are neither blank nor white."""
    return driver.execute_script(
        """
        const c = document.getElementById(arguments[0]);
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) { if (d[i + 3] && (d[i] < 240 || d[i + 1] < 240 || d[i + 2] < 240)) n++; }
        return n;""",
        element_id,
    )


def images_loaded(driver: Any, selector: str = "img.plot") -> list[int]:
    """naturalWidth of each matching image (0 means it did not load)."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0])).map(i => i.complete ? i.naturalWidth : 0);",
        selector,
    )


def screenshot(driver: Any, name: str, fallback: Path, scroll_to: str | None = None) -> Path:
    """A 1000x700 screenshot, palette-quantised to stay small; kept in $LORADOCK_SCREENSHOTS if set."""
    from PIL import Image

    if scroll_to:
        driver.execute_script(
            "document.getElementById(arguments[0]).scrollIntoView(); window.scrollBy(0, -12);", scroll_to
        )

    folder = Path(os.environ.get(SCREENSHOTS_ENV) or fallback)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    driver.save_screenshot(str(path))
    with Image.open(path) as image:
        image = image.convert("RGB")
        image.thumbnail((1000, 700))
        small = image.quantize(colors=64, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)
    return path
