"""The triage experiment's runs: per table, the classifier's probabilities (stacking fitted on
tune; tune studies cross-fitted), then per arrival profile and load every rule fitted on tune
shifts and played on the same valid shifts.

Shifts are fixed by (profile, load, split) seeds, not by table, so the tables of one data draw
answer the same arrivals of the same studies with the same reading times.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agents.deferral.methods import out_of_fold_probabilities
from agents.triage.rules import (
    ByProbability,
    Clairvoyant,
    CMu,
    FirstInFirstOut,
    FlagFirst,
    GeneralizedCMu,
    ServerAwareCMu,
    TunedIndex,
    run_shift,
)
from agents.weighting.baselines import Stacking
from mura_env.logits import LogitsTable
from mura_env.logits.study_set import StudySet
from mura_env.triage.metrics import wait_summary
from mura_env.triage.shifts import RoomSetting, TriageShift, draw_shift

#: Seeds of the tune and the valid shifts (plus the cell's position).
TUNE_SEED, VALID_SEED = 1_000, 2_024
#: The rules, in report order; the last is a reference (it knows the labels).
RULES = ("first_in_first_out", "flag_first", "by_probability", "c_mu", "generalized_c_mu",
         "server_aware_c_mu", "tuned_index", "clairvoyant")
#: A shift's hours, for the waits by time of day.
HOUR = 60.0


@dataclass(frozen=True)
class Studies:
    """One split's studies as the room sees them: probability float64 ``[n]``, labels int64
    ``[n]``, body part index int64 ``[n]``."""

    probability: np.ndarray
    labels: np.ndarray
    part_index: np.ndarray

    def shifts(self, setting: RoomSetting, count: int, seed: int) -> list[TriageShift]:
        """``count`` fresh shifts drawn with ``seed`` (the same ones for the same seed)."""
        rng = np.random.default_rng(seed)
        return [draw_shift(self.probability, self.labels, self.part_index, setting, rng)
                for _ in range(count)]


def table_studies(table: LogitsTable) -> dict[str, Studies]:
    """``{"tune", "valid"}``: the studies with the stacking ensemble's probabilities (fitted on
    tune; a tune study's from the fold model that did not see it, patients kept whole)."""
    tune, valid = StudySet.select(table, "tune"), StudySet.select(table, "valid")
    patients = table.select(split="tune").studies["patient_id"].to_numpy()
    tune_p = out_of_fold_probabilities(tune, patients).probabilities
    valid_p = Stacking().fit(tune).predict(valid)[0]
    return {"tune": Studies(tune_p, tune.labels, tune.body_part_index),
            "valid": Studies(np.asarray(valid_p, dtype=np.float64), valid.labels,
                             valid.body_part_index)}


def fitted_rules(tune: Studies, setting: RoomSetting, tune_shifts: int, seed: int) -> dict:
    """Every rule of :data:`RULES`, fitted on tune: the flag threshold on the tune studies, the
    server-aware exponent and the tuned index's powers on ``tune_shifts`` tune shifts drawn with
    ``seed``."""

    def shifts() -> list[TriageShift]:
        return tune.shifts(setting, tune_shifts, seed)

    return {
        "first_in_first_out": FirstInFirstOut(),
        "flag_first": FlagFirst().fit(tune.probability, tune.labels),
        "by_probability": ByProbability(),
        "c_mu": CMu(),
        "generalized_c_mu": GeneralizedCMu(),
        "server_aware_c_mu": ServerAwareCMu().fit(shifts),
        "tuned_index": TunedIndex().fit(shifts),
        "clairvoyant": Clairvoyant(),
    }


def waits_by_hour(played: list[TriageShift], minutes: float) -> list[dict]:
    """Per hour of the shift (by arrival time): the mean wait of the abnormal and of the normal
    studies that arrived in it (NaN for none), over ``played``."""
    arrivals = np.concatenate([s.room.arrivals for s in played])
    waits = np.concatenate([s.room.waits for s in played])
    abnormal = np.concatenate([s.labels for s in played]) == 1
    hour = (arrivals // HOUR).astype(np.int64)
    rows = []
    for h in range(int(np.ceil(minutes / HOUR))):
        row = {"hour": h}
        for name, chosen in (("abnormal", abnormal), ("normal", ~abnormal)):
            some = waits[chosen & (hour == h)]
            row[f"mean_wait_{name}"] = float(some.mean()) if some.size else float("nan")
        rows.append(row)
    return rows


def run_table(table: LogitsTable, index: int, settings: dict[tuple[str, float], RoomSetting],
              n_shifts: int, tune_shifts: int) -> tuple[list[dict], list[dict]]:
    """Table ``index``'s rows: one per (profile, load, rule) with :func:`wait_summary` of its
    valid shifts, the fitted parameters, and ``minutes_saved_abnormal`` (first in, first out's
    mean abnormal wait minus the rule's, QuCAD's measure); and one per (profile, load, rule,
    hour) with :func:`waits_by_hour`."""
    studies = table_studies(table)
    rows, hours = [], []
    for position, ((profile, load), setting) in enumerate(settings.items()):
        rules = fitted_rules(studies["tune"], setting, tune_shifts, TUNE_SEED + position)
        summaries = {}
        for name, rule in rules.items():
            played = [run_shift(s, rule) for s in
                      studies["valid"].shifts(setting, n_shifts, VALID_SEED + position)]
            summaries[name] = wait_summary(played)
            cell = {"table": index, "profile": profile, "load": load, "rule": name}
            hours += [{**cell, **row} for row in waits_by_hour(played, setting.minutes)]
        fifo = summaries["first_in_first_out"]["mean_wait_abnormal"]
        for name, summary in summaries.items():
            rule = rules[name]
            rows.append({"table": index, "profile": profile, "load": load, "rule": name,
                         **summary,
                         "minutes_saved_abnormal": fifo - summary["mean_wait_abnormal"],
                         **{key: getattr(rule, key, np.nan) for key in (
                             "threshold", "exponent", "weight_power", "time_power",
                             "relative_power")}})
    return rows, hours
