"""The sentences that say what a result table's intervals, comparisons and labels mean: written
once here and shown by summary.md and the report alike (numbers via mer.experiment.formatting).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from mer.experiment import formatting as fmt

READING = (
    "How to read a difference: a variant is better than the reference only where its ΔUF1 "
    'interval lies wholly above 0 and the paired test says "detectable difference". An '
    "interval that holds 0 means these subjects cannot tell the two variants apart: the true "
    "difference could as well be negative as positive, however large the point estimate looks."
)


def method_lines(table: pd.DataFrame) -> list[str]:
    """How the intervals and the paired comparisons were computed, with the run's settings."""
    opts = table.attrs.get("uncertainty") or {}
    if not opts or "uf1_low" not in table:
        return []
    pct = f"{100 * float(opts['level']):g} %"
    split = "inner-validation" if "state" in table else "test"
    lines = [
        f"Intervals: {pct} subject-bootstrap intervals of the pooled scores ({opts['method']} "
        f"percentile, {opts['n_boot']:,} resamples, seed {opts['seed']}): each resample draws "
        f"the {split} subjects with replacement and keeps all clips of a drawn subject together "
        "(LOSO's unit is the person). With several seeds the score is the mean over seeds of "
        "the pooled score and each resample applies the same subjects to every seed (the "
        "training noise of each seed's fold models is part of what is resampled); ± is the "
        "sample std over seeds."
    ]
    ref = table.attrs.get("reference")
    family = table.attrs.get("comparison_family") or []
    if ref and family:
        lines.append(
            f"Paired comparisons: each label-free variant − `{ref}` (the reference) on the clips "
            "and seeds both predicted: a paired subject-bootstrap interval of the difference, "
            "and a permutation test that swaps the two variants' predictions of whole subjects "
            f"(exact over all swaps up to 16 subjects, else {opts['n_perm']:,} random swaps). "
            f"Multiple comparisons: Holm's step-down adjustment over the {len(family)} "
            f"comparison(s) with `{ref}`, per metric, family-wise α = {opts['alpha']:g}. "
            '"detectable difference" = the interval excludes 0 and the Holm-adjusted p < α; '
            "the interval itself is not adjusted. Oracle rows are not compared (their inputs "
            "or epochs saw the test subject)."
        )
    if table.attrs.get("reference_note"):
        lines.append(str(table.attrs["reference_note"]))
    return lines


def reading_line(table: pd.DataFrame) -> str | None:
    """The plain-language line on reading a difference (tables with comparisons only)."""
    return READING if table.attrs.get("comparison_family") else None


def comparison_sentences(table: pd.DataFrame) -> list[str]:
    """One sentence per compared variant (`comparison_sentence`)."""
    ref = table.attrs.get("reference")
    if not ref or "uf1_diff" not in table:
        return []
    out = []
    for _, r in table.iterrows():
        if fmt.is_missing(r.get("uf1_diff")):
            continue
        out.append(comparison_sentence(r, str(ref)))
    return out


def comparison_sentence(r: Any, ref: str) -> str:
    """A compared row as one sentence, e.g. `regions_fixed − regions_all (95 % intervals): UF1
    +0.033 [-0.363, +0.462], no detectable difference (Holm p = 1.0); UAR ...; accuracy ...;
    48 clips compared, exact permutation (64 subject swaps); McNemar 5 vs 6 ...`."""
    pct = f"{100 * float(r.get('ci_level') or 0.95):g} %"

    def one(m: str, label: str) -> str:
        diff = fmt.difference(r.get(f"{m}_diff"), r.get(f"{m}_diff_low"), r.get(f"{m}_diff_high"))
        return f"{label} {diff}, {fmt.verdict(r.get(f'{m}_detectable'), r.get(f'{m}_p_holm'))}"

    scores = "; ".join(
        one(m, label) for m, label in (("uf1", "UF1"), ("uar", "UAR"), ("acc", "accuracy"))
    )
    test = r.get("comparison_test") or "permutation test"
    text = (
        f"{fmt.shown_name(r)} − {ref} ({pct} intervals): {scores}; "
        f"{fmt.count(r.get('n_compared'))} clips compared, {test}"
    )
    if not fmt.is_missing(r.get("mcnemar_p")):
        text += (
            f"; McNemar {fmt.count(r.get('mcnemar_ref_only'))} vs "
            f"{fmt.count(r.get('mcnemar_other_only'))} discordant clips, "
            f"p = {fmt.format_p(float(r['mcnemar_p']))} (treats clips as independent)"
        )
    note = r.get("comparison_note")
    return text + (f"; {note}" if isinstance(note, str) and note else "") + "."


def label_lines(table: pd.DataFrame) -> list[str]:
    """What the partial and subject-dependent labels mean, naming the rows that carry them."""
    out = []
    if "partial" in table and table["partial"].astype(bool).any():
        rows = table[table["partial"].astype(bool)]
        named = ", ".join(
            f"{v} ({int(t)} of {int(n)})"
            for v, t, n in zip(rows["variant"], rows["subjects_tested"], rows["subjects_total"])
        )
        out.append(
            f"[partial: k of N subjects]: {named}: protocol.folds restricts the run to some "
            "folds, so its numbers cover only the subjects tested, not the dataset; no paper "
            "numbers."
        )
    if "subject_dependent" in table and table["subject_dependent"].astype(bool).any():
        named = ", ".join(table.loc[table["subject_dependent"].astype(bool), "variant"])
        out.append(
            f"[subject-dependent]: {named}: without a subject CSV every clip is its own "
            "'subject', so a fold's training clips can show the test clip's person: "
            "leave-one-clip-out, not subject independent; no paper numbers."
        )
    notes = [
        f"{v}: {n}"
        for v, n in zip(table["variant"], table.get("ci_note", pd.Series(dtype=object)))
        if isinstance(n, str) and n
    ]
    if notes:
        out.append("Intervals restricted: " + "; ".join(notes) + ".")
    return out
