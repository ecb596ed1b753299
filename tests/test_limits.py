"""The run's limits: one table in pipeline/limits.py, the same one in the README."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from pipeline.limits import FLAGS, Limits

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_limit_has_a_flag_and_the_readme_states_its_default():
    fields = {f.name: f.default for f in dataclasses.fields(Limits)}
    assert set(FLAGS) == set(fields)
    rows = {}
    for line in README.read_text().splitlines():
        m = re.match(r"\| `(--max-[a-z-]+)[^`]*`[^|]*\| (\d+)", line)
        if m:
            rows[m.group(1)] = float(m.group(2))
    for name, default in fields.items():
        flag = FLAGS[name][0]
        assert flag in rows, f"README's limits table has no row for {flag}"
        assert rows[flag] == default, f"README says {flag} defaults to {rows[flag]:g}, the code {default:g}"


def test_raised_keeps_what_is_not_given():
    limits = Limits().raised(max_beam=5000, max_params=None)
    assert limits.max_beam == 5000 and limits.max_params == Limits().max_params
