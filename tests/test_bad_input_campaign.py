"""The bad-input campaign (tests/bad_input_campaign.py) through the real `mer` entry point: every
case ends in one `error: ...` line that names the key, file or option at fault, exit 2, no
traceback, nothing accepted, and no YAML tag executed."""

from __future__ import annotations

from tests.bad_input_campaign import CASES, counts, run_campaign

EXPECTED_KINDS = {
    "non-finite": 25,
    "name": 14,
    "unknown key": 10,
    "wrong type": 13,
    "range": 16,
    "file": 12,
    "option": 16,
    "folder": 7,
}


def test_the_campaign_covers_every_kind_of_bad_input():
    per_kind: dict[str, int] = {}
    for case in CASES:
        per_kind[case.kind] = per_kind.get(case.kind, 0) + 1
    assert per_kind == EXPECTED_KINDS
    assert len(CASES) == 113


def test_every_bad_input_is_refused_with_a_message_naming_it(tmp_path):
    results = run_campaign(tmp_path)
    wrong = [
        f"{r.verdict} (exit {r.code}): mer {' '.join(r.case.argv)}\n    {r.line}"
        for r in results
        if r.verdict != "refused"
    ]
    assert not wrong, "\n".join(wrong)
    assert counts(results) == {
        **{kind: {"refused": n} for kind, n in EXPECTED_KINDS.items()},
        "total": {"refused": 113},
    }
    # results-folder cases stop before any data is prepared: nothing cached for them
    for i, case in enumerate(CASES):
        if case.kind == "folder":
            assert not list((tmp_path / f"case{i:03d}" / "cache").glob("*/manifest.json")), case
