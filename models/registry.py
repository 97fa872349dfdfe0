"""The model registry: which artifacts exist, their hashes, data and metrics.

``models/registry.json`` lists every committed model. The job loads the model
named in configuration only if its SHA-256 matches the registry entry, so a
swapped or corrupted file never scores a conversation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from models.dataset import file_sha256

if TYPE_CHECKING:
    from operators.scoring import Scorer

MODELS_DIR = Path(__file__).parent
REGISTRY = MODELS_DIR / "registry.json"


class ModelIntegrityError(RuntimeError):
    """The model file is not registered or its hash does not match its entry."""


def entries(registry: Path = REGISTRY) -> list[dict]:
    if not registry.is_file():
        return []
    return json.loads(registry.read_text())["models"]


def register(entry: dict, registry: Path = REGISTRY) -> None:
    """Add or replace the entry with the same name and version."""
    kept = [
        e for e in entries(registry)
        if (e["name"], e["version"]) != (entry["name"], entry["version"])
    ]
    kept.append(entry)
    kept.sort(key=lambda e: (e["name"], e["version"]))
    registry.write_text(json.dumps({"models": kept}, indent=2, sort_keys=True) + "\n")


def verify(path: Path | str, registry: Path = REGISTRY) -> dict:
    """The registry entry of ``path``; raise if it is missing or the hash differs."""
    path = Path(path).resolve()
    matches = [e for e in entries(registry) if (MODELS_DIR / e["path"]).resolve() == path]
    if not matches:
        raise ModelIntegrityError(f"{path} is not in the model registry {registry}")
    entry = matches[-1]
    actual = file_sha256(path)
    if actual != entry["sha256"]:
        raise ModelIntegrityError(
            f"{path} has sha256 {actual}, but registry entry {entry['name']} {entry['version']} "
            f"says {entry['sha256']}; refusing to load it"
        )
    return entry


def load_scorer(path: Path | str, registry: Path = REGISTRY, threads: int = 1) -> Scorer:
    """Verify ``path`` against the registry and build its ``Scorer`` (with its ``registry_entry``)."""
    from models.baseline import KIND as BASELINE_KIND
    from models.baseline import BaselineModel
    from models.scorer import KIND as ONNX_KIND
    from models.scorer import OnnxScorer
    from operators.scoring import TemplateScorer

    entry = verify(path, registry)
    scorer: Scorer
    if entry["kind"] == BASELINE_KIND:
        scorer = TemplateScorer(BaselineModel.load(path))
    elif entry["kind"] == ONNX_KIND:
        scorer = OnnxScorer(path, threads=threads)
    else:
        raise ModelIntegrityError(f"unknown model kind {entry['kind']!r} for {path}")
    scorer.registry_entry = entry  # what was verified: lineage names it without hashing the file again
    return scorer
