"""Regenerate the configuration reference in docs/operations.md from coachflow.config.Settings.

Run it after adding or changing a setting: ``.venv/bin/python scripts/update_config_reference.py``.
"""

from coachflow.config import REFERENCE_DOC, with_reference_table

REFERENCE_DOC.write_text(with_reference_table(REFERENCE_DOC.read_text()))
print(f"updated {REFERENCE_DOC}")
