"""OpenLineage events checked against the official spec and the facet schemas they name, all local.

``SpecValidator`` loads the spec (``OpenLineage.json``), its facet schemas
(``facets/*.json``) and coachflow's own facet schemas (``lineage/facets``) into
one ``referencing`` registry keyed by each document's ``$id``. The registry
has no retriever: a ``$ref`` or ``_schemaURL`` outside those files is reported
as a problem, never fetched and never skipped. An event is validated against
the schema its ``schemaURL`` names; each facet against the definition its
``_schemaURL`` names, which must also be of the facet kind of where it sits
(a run facet under ``run.facets``, an input-dataset facet under
``inputFacets``, ...) and carry the key its schema gives it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable

FACETS_DIR = Path(__file__).parent / "facets"
"""coachflow's own facet schemas (package data)."""
SPEC_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json"
"""The version of the spec the job emits."""
DEFAULT_SPEC_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "openlineage-spec"
"""Where a checkout finds the spec (``../shared`` beside it)."""

# Where a facet sits in an event -> the spec's definition its schema must extend.
_KINDS = {
    "run.facets": "RunFacet",
    "job.facets": "JobFacet",
    "facets": "DatasetFacet",
    "inputFacets": "InputDatasetFacet",
    "outputFacets": "OutputDatasetFacet",
}


class SpecValidator:
    """Validates OpenLineage events with schemas resolved from local files only."""

    def __init__(
        self, spec_dir: Path | str = DEFAULT_SPEC_DIR, extra: Iterable[Path | str] = (FACETS_DIR,)
    ) -> None:
        spec_dir = Path(spec_dir)
        if not (spec_dir / "OpenLineage.json").is_file():
            raise FileNotFoundError(f"no OpenLineage spec at {spec_dir} (OpenLineage.json and facets/)")
        paths = [spec_dir / "OpenLineage.json", *sorted((spec_dir / "facets").glob("*.json"))]
        for directory in extra:
            paths += sorted(Path(directory).glob("*.json"))
        resources = []
        for path in paths:
            body = json.loads(path.read_text())
            Draft202012Validator.check_schema(body)
            resources.append((body["$id"], Resource.from_contents(body)))
        self.registry: Registry = Registry().with_resources(resources).crawl()
        self.format_checker = FormatChecker()
        missing = {"date-time", "uri", "uuid"} - set(self.format_checker.checkers)
        if missing:
            # jsonschema skips a format it has no checker for: say so instead of passing.
            raise RuntimeError(f"jsonschema cannot check the formats {sorted(missing)} "
                               "(rfc3339-validator and rfc3986-validator are needed)")
        self._validators: dict[str, Draft202012Validator] = {}

    def problems(self, event: dict[str, Any]) -> list[str]:
        """What the spec rejects in ``event``, one line each (empty when it conforms)."""
        url = event.get("schemaURL")
        if not isinstance(url, str):
            return ["schemaURL: missing"]
        found = [f"event: {p}" for p in self._check(url, event)]
        for where, key, facet in _facets(event):
            found += [f"{where}.{key}: {p}" for p in self._facet_problems(where, key, facet)]
        return found

    def _facet_problems(self, where: str, key: str, facet: Any) -> list[str]:
        if not isinstance(facet, dict) or not isinstance(facet.get("_schemaURL"), str):
            return ["no _schemaURL"]
        url = facet["_schemaURL"]
        document, _, fragment = url.partition("#")
        if not fragment.startswith("/$defs/"):
            return [f"_schemaURL {url} does not point at a facet definition (#/$defs/...)"]
        found = self._check(url, facet)
        try:
            definition = self.registry.resolver().lookup(url).contents
            keys = set(self.registry.contents(document).get("properties", {}))
        except Unresolvable:
            return found
        kind = _KINDS.get(where) or _KINDS[where.rsplit(".", 1)[-1]]
        bases = {ref.rsplit("/", 1)[-1] for ref in _refs(definition) if ref.startswith(f"{SPEC_URL}#/$defs/")}
        if kind not in bases:
            extends = "/".join(sorted(bases)) or "no facet kind"
            found.append(f"its schema extends {extends}, but {kind} belongs here")
        if keys and key not in keys:
            found.append(f"its schema names this facet {'/'.join(sorted(keys))}")
        return found

    def _check(self, url: str, instance: Any) -> list[str]:
        try:
            validator = self._validator(url)
            return [f"{_path(e)}{e.message}" for e in validator.iter_errors(instance)]
        except Unresolvable as exc:
            return [f"schema not found locally: {exc}"]

    def _validator(self, url: str) -> Draft202012Validator:
        if url not in self._validators:
            self.registry.resolver().lookup(url)  # unknown -> Unresolvable, before any validation
            self._validators[url] = Draft202012Validator(
                {"$ref": url}, registry=self.registry, format_checker=self.format_checker
            )
        return self._validators[url]


def _facets(event: dict[str, Any]) -> Iterator[tuple[str, str, Any]]:
    """(where, key, facet) for every facet of the event."""
    for part in ("run", "job"):
        for key, facet in ((event.get(part) or {}).get("facets") or {}).items():
            yield f"{part}.facets", key, facet
    for side, own in (("inputs", "inputFacets"), ("outputs", "outputFacets")):
        for i, dataset in enumerate(event.get(side) or []):
            for container in ("facets", own):
                for key, facet in ((dataset or {}).get(container) or {}).items():
                    yield f"{side}[{i}].{container}", key, facet


def _refs(schema: Any) -> Iterator[str]:
    """The ``$ref``s of a definition's ``allOf`` (the facet kinds it extends)."""
    for part in schema.get("allOf", []) if isinstance(schema, dict) else []:
        if isinstance(part, dict) and isinstance(part.get("$ref"), str):
            yield part["$ref"]


def _path(error: Any) -> str:
    path = "/".join(str(p) for p in error.absolute_path)
    return f"{path}: " if path else ""


def validate_file(path: Path | str, validator: SpecValidator | None = None) -> list[str]:
    """Problems of every event in a JSON-lines file of OpenLineage events, as ``line N: ...``."""
    validator = validator or SpecValidator()
    found = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError as exc:
            found.append(f"line {number}: not JSON ({exc.msg})")
            continue
        if not isinstance(event, dict):
            found.append(f"line {number}: not a JSON object")
            continue
        found += [f"line {number}: {p}" for p in validator.problems(event)]
    return found
