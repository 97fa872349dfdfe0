"""First and last names, for finding a person named without a cue ("Katrina Miller", "Holmes, Sherlock").

The lists are Faker's (MIT): the given names and surnames of its English, Irish, Indian, Spanish,
Mexican, French, German, Italian, Dutch, Polish and Brazilian person providers, about 20,000
names. They are read from Faker's source files with ``ast`` rather than imported: importing
``faker`` builds its generator (0.7 s on this project's machine) and the job needs only the lists.
Names that are everyday English words ("Will", "May", "Grace", "Park", "Brown") are left out,
so a word is taken for a name only where it can be nothing else or is capitalised beside one.
"""

from __future__ import annotations

import ast
import importlib.util
from functools import lru_cache
from pathlib import Path

_LOCALES = (
    "en_US", "en_GB", "en_IE", "en_NZ", "en_IN", "es_ES", "es_MX", "fr_FR", "de_DE", "it_IT", "nl_NL",
    "pl_PL", "pt_BR",
)
_FIRST = ("first_names", "first_names_male", "first_names_female", "first_names_nonbinary")
_LAST = ("last_names",)

#: Names that are also everyday English words: a word among them is no evidence of a person.
COMMON = frozenset("""
a al an and are art as at august april amber angel autumn baby banks bay bell berry bill black bloom
blue bond brook brooks brown buck bud burns bush but by cash chance chase cherry christian clay cliff cole
cook cooper crystal daisy dale dawn day de del della destiny di do doc don dot du duke earl east eve faith
fall field fields fisher flower ford forest fox frank free gay gene glen gold golden grace gray green grey
guy hall happy harmony hart hay heath heather hill hills holly honey hope hunt hunter iris ivy jack jade jay
jean jewel job joy judge julian june just justice king kit la lake lamb lane le lee liberty lily little
long love lucky major man march mark marsh mason may melody mercy miles mill mills moon moss munch my
new nick noble norm north oak ocean of or page park parks pat patience pearl penny pepper per pierce
pink post potter price prince queen rain ray reed rich river robin rock rocky rose ross ruby rush
sage saint san sandy santa scout see shadow short silver sky skip smart snow so sol son south spring
star sterling stone storm strong summer sunny sweet tan taylor the then to todd true van victory violet
von wade walker ward warren water waters west white will win winter wolf wood woods word worth york young
else kick floor lot till theres om edit jet peer ina hardy grant max valentine mercedes jesus
""".split())


def _literal_names(node: ast.expr) -> list[str]:
    """The strings of a tuple, list, set or dict literal, or of ``OrderedDict(((name, weight), ...))``."""
    if isinstance(node, ast.Call) and node.args:
        node = node.args[0]
    try:
        value = ast.literal_eval(node)
    except ValueError:
        return []  # built from other lists (``first_names_male + first_names_female``): read those
    if isinstance(value, dict):
        value = list(value)
    out = []
    for item in value:
        name = item[0] if isinstance(item, tuple) else item
        if isinstance(name, str):
            out.append(name)
    return out


def _provider_lists(source: str) -> dict[str, list[str]]:
    lists: dict[str, list[str]] = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name in _FIRST or name in _LAST:
                lists.setdefault(name, []).extend(_literal_names(node.value))
    return lists


def _faker_person_dir() -> Path:
    spec = importlib.util.find_spec("faker")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("faker is not installed: the strict masking of names needs its name lists")
    return Path(next(iter(spec.submodule_search_locations))) / "providers" / "person"


@lru_cache(maxsize=1)
def names() -> tuple[frozenset[str], frozenset[str]]:
    """(given names, surnames), lower-cased, everyday words left out."""
    first: set[str] = set()
    last: set[str] = set()
    root = _faker_person_dir()
    for locale in _LOCALES:
        lists = _provider_lists((root / locale / "__init__.py").read_text(encoding="utf-8"))
        for key, values in lists.items():
            (first if key in _FIRST else last).update(v.lower() for v in values if " " not in v)
    if len(first) < 1000 or len(last) < 1000:  # noqa: PLR2004 - a Faker that moved its lists must fail loudly
        raise RuntimeError(f"faker's name lists look wrong: {len(first)} given names, {len(last)} surnames")
    keep = lambda name: len(name) > 1 and name not in COMMON  # noqa: E731
    return frozenset(filter(keep, first)), frozenset(filter(keep, last))
