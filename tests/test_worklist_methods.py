"""Classical worklist methods: capacities kept, no look-ahead, the references bound the
online methods, the myopic threshold fills its share on tune, pacing pays off when the
valuable studies come late, and decisions route as ``MuraWorklist-v0`` does."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from env_fixtures import studies_frame

from agents.deferral.methods import out_of_fold_probabilities
from agents.weighting.baselines import Stacking
from agents.worklist.methods import (
    PRIOR_STUDIES,
    BudgetPaced,
    EnsembleAlone,
    FirstComeFirstServed,
    MyopicThreshold,
    OptimalOnline,
    OracleAssignment,
    PartSkillGreedy,
    WorklistData,
    WorklistMethod,
    assign_shift,
    check_capacities,
    estimated_gains,
    fit_worklist_methods,
    online_values,
    reader_skill,
    simulate,
    sorted_quantiles,
    top_threshold,
    true_gains,
    usage_thresholds,
)
from mura_env.constants import BODY_PARTS
from mura_env.logits import LogitsTable
from mura_env.readers import SimulatedReader
from mura_env.worklist.problem import ENSEMBLE, ShiftState, WorklistProblem

READERS = ("radiologist_1", "radiologist_2", "radiologist_3")
READ_COST = 0.02


def shift_table(n_tune: int = 700, n_valid: int = 700, seed: int = 0) -> LogitsTable:
    """``n_tune`` tune and ``n_valid`` valid studies, 3 members whose abnormal logit is a
    label signal (stronger for later body parts) plus noise, and the three shipped
    radiologist profiles as simulated readers (independent errors)."""
    rng = np.random.default_rng(seed)
    n = n_tune + n_valid
    part = np.arange(n) % len(BODY_PARTS)
    labels = rng.integers(0, 2, n)
    signal = (2 * labels - 1) * (0.2 + 0.2 * part)
    abnormal = signal[:, None] + rng.normal(0.0, 1.0, (n, 3))
    logits = np.stack([np.zeros((n, 3)), abnormal], axis=-1).astype(np.float32)
    frame = studies_frame([BODY_PARTS[b] for b in part], labels.tolist(),
                          ["tune"] * n_tune + ["valid"] * n_valid)
    table = LogitsTable.from_arrays(frame, ["a", "b", "c"], logits)
    for reader in READERS:
        table = table.with_simulated_reader(SimulatedReader.profile(reader, seed=1, sharing=0.0))
    return table


@pytest.fixture(scope="module")
def table() -> LogitsTable:
    return shift_table()


@pytest.fixture(scope="module")
def data(table: LogitsTable) -> tuple[WorklistData, WorklistData]:
    return WorklistData.from_table(table, "tune"), WorklistData.from_table(table, "valid")


@pytest.fixture(scope="module")
def problem(table: LogitsTable) -> WorklistProblem:
    """The env's problem on valid: 3 readers with 10 reads each per shift of 100."""
    return WorklistProblem(logits=table, split="valid", shift_size=100, read_cost=READ_COST)


@pytest.fixture(scope="module")
def shifts(problem: WorklistProblem) -> np.ndarray:
    """int64 ``[40, 100]``: valid shifts drawn by the env's sampler."""
    return problem.new_shifts(40, np.random.default_rng(0))[0]


@pytest.fixture(scope="module")
def methods(data, problem: WorklistProblem) -> dict[str, WorklistMethod]:
    tune, _ = data
    fitted = fit_worklist_methods(tune, READ_COST, problem.capacities, shift_size=100)
    return {m.name: m for m in fitted}


@pytest.fixture(scope="module")
def runs(methods, data, shifts, problem) -> dict[str, dict]:
    """Every method simulated on the valid shifts (the full-tune stacking's probabilities)."""
    _, valid = data
    p = methods["ensemble_alone"].probabilities(valid)
    return {name: simulate(m, valid, shifts, problem.capacities, p)
            for name, m in methods.items()}


def test_worklist_data_holds_every_readers_reads(table: LogitsTable, data) -> None:
    tune, _ = data
    rows = (table.studies["split"] == "tune").to_numpy()
    assert tune.readers == READERS and tune.n_readers == 3
    assert tune.reads.dtype == np.int8 and tune.reads.shape == (rows.sum(), 3)
    for r, reader in enumerate(READERS):
        np.testing.assert_array_equal(tune.reads[:, r], table.reads(reader)[rows])
    np.testing.assert_array_equal(tune.patient_ids, table.studies.loc[rows, "patient_id"])
    np.testing.assert_array_equal(tune.reader_correct(),
                                  tune.reads == tune.studies.labels[:, None])
    two = WorklistData.from_table(table, "valid", ["radiologist_3", "radiologist_1"])
    assert two.readers == ("radiologist_3", "radiologist_1")
    np.testing.assert_array_equal(two.reads[:, 0], table.select(split="valid")
                                  .reads("radiologist_3"))
    with pytest.raises(KeyError):
        WorklistData.from_table(table, "tune", ["nobody"])


def test_skill_and_gains_by_hand(data) -> None:
    tune, _ = data
    skill = reader_skill(tune)
    correct = tune.reader_correct()
    parts = tune.studies.body_part_index
    for r in range(3):
        overall = correct[:, r].mean()
        for b in range(7):
            rows = parts == b
            expected = (correct[rows, r].sum() + PRIOR_STUDIES * overall) / (
                rows.sum() + PRIOR_STUDIES)
            assert skill[r, b] == pytest.approx(expected)
    # a part without tune studies falls back to the reader's overall accuracy
    no_wrist = WorklistData(tune.studies.rows(parts != 6), tune.reads[parts != 6])
    np.testing.assert_allclose(reader_skill(no_wrist)[:, 6],
                               no_wrist.reader_correct().mean(axis=0))
    p = np.array([0.9, 0.3, 0.5])
    gains = estimated_gains(p, np.array([0, 1, 6]), skill, 0.05)
    assert gains.shape == (3, 3)
    assert gains[1, 2] == pytest.approx(skill[2, 1] - 0.7 - 0.05)
    assert gains[2, 0] == pytest.approx(skill[0, 6] - 0.5 - 0.05)
    truth = true_gains(tune, np.full(tune.studies.n_studies, 0.9), 0.1)
    ensemble_right = tune.studies.labels == 1
    np.testing.assert_allclose(truth, correct.astype(float) - ensemble_right[:, None] - 0.1)


def test_small_helpers_by_hand() -> None:
    values = np.array([0.3, -0.1, 0.5, 0.3, 0.0])
    assert [(values > top_threshold(values, k)).sum() for k in range(6)] == [0, 1, 1, 3, 4, 5]
    assert top_threshold(values, 0) == np.inf and top_threshold(values, 5) == -np.inf
    assert top_threshold(values, 1) == pytest.approx(0.4)
    ordered = np.sort(np.random.default_rng(0).normal(size=50))
    q = np.array([0.0, 0.13, 0.5, 0.97, 1.0, 1.2, -0.1])
    np.testing.assert_allclose(sorted_quantiles(ordered, q), np.quantile(ordered, np.clip(q, 0, 1)))
    # one reader: its threshold is the (1 - share) quantile of its gains
    gains = np.random.default_rng(1).normal(size=(200, 1))
    threshold = usage_thresholds(gains, np.array([0.1]))
    assert (gains[:, 0] > threshold[0]).sum() == 20
    np.testing.assert_array_equal(check_capacities([3, 0.0, 2], 3), [3, 0, 2])
    for bad in ([1, 2], [1, -1, 2], [1.5, 1, 1]):
        with pytest.raises(ValueError, match="capacities"):
            check_capacities(bad, 3)


def test_assign_shift_finds_the_best_assignment_by_brute_force() -> None:
    rng = np.random.default_rng(3)
    capacities = np.array([1, 2])
    for _ in range(20):
        gains = rng.normal(0.0, 1.0, (6, 2))
        who = assign_shift(gains, capacities)
        assert (np.bincount(who[who >= 0], minlength=2) <= capacities).all()
        assert (gains[who >= 0, who[who >= 0]] > 0).all()  # never reads at a loss
        best = 0.0
        for choice in itertools.product((-1, 0, 1), repeat=6):
            c = np.array(choice)
            if (np.bincount(c[c >= 0], minlength=2) <= capacities).all():
                best = max(best, gains[c >= 0, c[c >= 0]].sum())
        assert gains[who >= 0, who[who >= 0]].sum() == pytest.approx(best)
    # ties go to reading nothing
    np.testing.assert_array_equal(assign_shift(np.zeros((4, 2)), capacities), [-1] * 4)
    np.testing.assert_array_equal(assign_shift(np.ones((3, 2)), np.array([0, 0])), [-1] * 3)


def test_online_rules_by_hand(methods, data) -> None:
    """Readers 0 and 1, one read each; the hand-set gains make each rule's choice visible."""
    gains = np.array([[0.3, 0.5],    # everyone wants it; reader 1 is the better
                      [0.2, 0.6],    # reader 1 is best but full after the first study
                      [-0.1, -0.2],  # no positive gain
                      [0.4, 0.1]])
    capacities = np.array([1, 1])
    fcfs = FirstComeFirstServed()
    fcfs.order = np.array([1, 0])  # reader 1 first
    np.testing.assert_array_equal(fcfs.decide_shift(gains, capacities), [1, 0, -1, -1])
    np.testing.assert_array_equal(EnsembleAlone().decide_shift(gains, capacities), [-1] * 4)
    # greedy: the best reader if its gain is positive; when it is full, the ensemble answers
    np.testing.assert_array_equal(PartSkillGreedy().decide_shift(gains, capacities),
                                  [1, -1, -1, 0])
    myopic = MyopicThreshold()
    myopic.thresholds = np.array([0.25, 0.55])  # reader 1 only above 0.55: the second study
    np.testing.assert_array_equal(myopic.decide_shift(gains, capacities), [0, 1, -1, -1])
    myopic.thresholds = np.array([-0.5, 0.0])  # negative thresholds read at a loss
    np.testing.assert_array_equal(myopic.decide_shift(gains[[2]], capacities), [0])
    paced = BudgetPaced()
    paced.sorted_tune_gains = np.linspace(-1.0, 1.0, 201)[:, None].repeat(2, axis=1)
    # 1 read over 4 studies: the 0.75 quantile, 0.5, must be beaten; then 1 over 3 (0.333...)
    np.testing.assert_allclose(paced.levels(np.array([[1, 1]]), 4), [[0.5, 0.5]])
    np.testing.assert_array_equal(paced.decide_shift(gains, capacities), [-1, 1, -1, 0])
    accuracy = data[0].reader_correct().mean(axis=0)  # readers by tune accuracy, best first
    order = methods["first_come_first_served"].order
    assert sorted(order.tolist()) == [0, 1, 2] and (np.diff(accuracy[order]) <= 0).all()


def test_no_method_exceeds_a_capacity(methods, data, shifts) -> None:
    _, valid = data
    p = methods["ensemble_alone"].probabilities(valid)
    for capacities in ([10, 10, 10], [0, 3, 25], [0, 0, 0], [100, 1, 0]):
        for method in methods.values():
            out = simulate(method, valid, shifts[:10], capacities, p)
            who = out["answered_by"]
            assert who.shape == (10, 100) and who.dtype == np.int64
            assert ((who >= ENSEMBLE) & (who < 3)).all()
            assert (out["reads_used"] <= np.array(capacities)).all(), (method.name, capacities)
            np.testing.assert_array_equal(
                out["reads_used"], np.stack([(who == r).sum(axis=1) for r in range(3)], 1))


def test_online_methods_never_look_ahead(methods, data, shifts) -> None:
    _, valid = data
    online = [m for m in methods.values() if m.online]
    assert {m.name for m in online} == {"ensemble_alone", "first_come_first_served",
                                        "myopic_threshold", "budget_paced",
                                        "part_skill_greedy", "dp"}
    assert not methods["hindsight"].online and not methods["oracle"].online
    rng = np.random.default_rng(4)
    gains = methods["budget_paced"].estimated_gains(
        valid, methods["budget_paced"].probabilities(valid))[shifts[:8]]
    capacities = np.array([10, 10, 10])
    for method in online:
        before = method.decide_shifts(gains, capacities)
        for t in (0, 17, 50, 98):
            changed = gains.copy()
            changed[:, t + 1:] = rng.normal(0.2, 0.3, changed[:, t + 1:].shape)
            after = method.decide_shifts(changed, capacities)
            np.testing.assert_array_equal(after[:, : t + 1], before[:, : t + 1])
    # the whole-shift reference does look ahead: a valuable late study changes early reads
    hindsight = methods["hindsight"]
    changed = gains.copy()
    changed[:, -30:] = 5.0
    assert not np.array_equal(hindsight.decide_shifts(changed, capacities)[:, :70],
                              hindsight.decide_shifts(gains, capacities)[:, :70])


def test_hindsight_gains_at_least_every_online_method_per_shift(runs, methods) -> None:
    best = runs["hindsight"]["estimated_gain"]
    assert (best > 0).all()
    for name, out in runs.items():
        if methods[name].online:
            assert (best >= out["estimated_gain"] - 1e-9).all(), name
    assert (runs["ensemble_alone"]["estimated_gain"] == 0).all()


def test_oracle_accuracy_at_least_every_methods(runs, methods, data, shifts) -> None:
    oracle = runs["oracle"]
    for name, out in runs.items():
        assert (oracle["correct"].sum(axis=1) >= out["correct"].sum(axis=1)).all(), name
        assert oracle["accuracy"] >= out["accuracy"]
    assert oracle["accuracy"] > runs["hindsight"]["accuracy"]
    # it reads only where the reader is right and the ensemble wrong
    _, valid = data
    p = methods["oracle"].probabilities(valid)[shifts]
    read = oracle["answered_by"] >= 0
    reader_right = valid.reader_correct()[shifts][read, oracle["answered_by"][read]]
    ensemble_right = (p > 0.5) == valid.studies.labels[shifts]
    assert reader_right.all() and not ensemble_right[read].any()
    assert methods["oracle"].sees_truth and methods["oracle"].kind == "reference"


def test_methods_share_one_cross_fitted_ensemble(methods, data) -> None:
    tune, valid = data
    assert len({id(m.ensemble) for m in methods.values()}) == 1
    assert len({id(m.out_of_fold) for m in methods.values()}) == 1
    oof = out_of_fold_probabilities(tune.studies, tune.groups())
    method = methods["myopic_threshold"]
    np.testing.assert_array_equal(method.out_of_fold.probabilities, oof.probabilities)
    np.testing.assert_allclose(method.tune_gains, estimated_gains(
        oof.probabilities, tune.studies.body_part_index, reader_skill(tune), READ_COST))
    np.testing.assert_array_equal(method.probabilities(valid),
                                  Stacking().fit(tune.studies).predict(valid.studies)[0])
    assert method.kind == "baseline" and all(m.fit_time >= 0 for m in methods.values())


def test_myopic_threshold_fills_its_capacity_share_on_tune(methods, data, table) -> None:
    tune, _ = data
    method = methods["myopic_threshold"]
    gains = method.tune_gains
    # without a capacity limit, each reader gets its share (10%) of the tune studies
    qualify = gains > method.thresholds
    chosen = np.where(qualify.any(axis=1), np.where(qualify, gains, -np.inf).argmax(axis=1), -1)
    n = len(gains)
    for r in range(3):
        assert abs((chosen == r).sum() - 0.1 * n) <= 1
    # on tune shifts (split mix) each reader's average use is near its 10 reads; a shift
    # that would need more is capped, so the average sits a little under the capacity
    tune_problem = WorklistProblem(logits=table, split="tune", shift_size=100,
                                   scenario="split")
    rows = tune_problem.new_shifts(200, np.random.default_rng(1))[0]
    out = simulate(method, tune, rows, [10, 10, 10], method.out_of_fold.probabilities)
    use = out["reads_used"].mean(axis=0)
    assert ((use >= 8.5) & (use <= 10.0)).all(), use


def test_simulate_scores_the_answers_that_count(runs, methods, data, shifts) -> None:
    _, valid = data
    out = runs["budget_paced"]
    p = methods["budget_paced"].probabilities(valid)
    who = out["answered_by"]
    read = who >= 0
    expected = np.where(read, valid.reads[shifts, np.maximum(who, 0)], (p > 0.5)[shifts])
    np.testing.assert_array_equal(out["prediction"], expected)
    assert out["prediction"].dtype == np.int8
    np.testing.assert_array_equal(out["correct"], expected == valid.studies.labels[shifts])
    assert out["accuracy"] == pytest.approx(out["correct"].mean())
    assert out["read_rate"] == pytest.approx(read.mean())
    np.testing.assert_allclose(out["reward"],
                               out["correct"].sum(axis=1) - READ_COST * read.sum(axis=1))
    assert -1 < out["kappa"] <= 1
    # every classical method beats reading at random (first come, first served) here
    for name in ("myopic_threshold", "budget_paced", "part_skill_greedy", "hindsight"):
        assert runs[name]["accuracy"] > runs["first_come_first_served"]["accuracy"], name


def test_decisions_route_as_the_env_does(methods, data, problem, shifts) -> None:
    """Replaying each method's decisions through the env's step rule (score 1 for the chosen
    reader, -1 for the others) reads the same studies, spends the same capacity and gives the
    same reads."""
    _, valid = data
    p = methods["ensemble_alone"].probabilities(valid)
    rows = shifts[:6]
    k = problem.n_models
    for name in ("first_come_first_served", "budget_paced", "hindsight"):
        out = simulate(methods[name], valid, rows, problem.capacities, p)
        state = ShiftState.start(rows.copy(), problem.capacities,
                                 problem.studies.body_part_index)
        for t in range(rows.shape[1]):
            who = out["answered_by"][:, t]
            actions = np.zeros((len(rows), k + 3), dtype=np.float32)
            actions[:, k:] = -1.0
            actions[who >= 0, k + who[who >= 0]] = 1.0
            step = problem.answer(state, actions)
            np.testing.assert_array_equal(step["answered_by"], who)
            read = who >= 0
            np.testing.assert_array_equal(step["prediction"][read], out["prediction"][read, t])
        np.testing.assert_array_equal(state.capacity_left,
                                      problem.capacities - out["reads_used"])


def pacing_table(n_tune: int = 400, n_shifts: int = 2, size: int = 100) -> LogitsTable:
    """One reader (``hand``) who is always right; all studies WRIST, labels balanced.
    Confident studies: every member's abnormal logit is +3 towards the label; unsure
    studies: -0.5 *against* it, so the stacking ensemble is unsure (p near 0.5) and wrong.
    Tune alternates the two kinds; each valid shift of ``size`` studies holds ``size / 2``
    confident studies first and ``size / 2`` unsure ones after."""
    rng = np.random.default_rng(0)
    late = np.tile(np.arange(size) >= size // 2, n_shifts)
    unsure = np.concatenate([np.arange(n_tune) % 2 == 1, late])
    n = len(unsure)
    labels = (np.arange(n) // 2) % 2
    towards = np.where(unsure, -0.5, 3.0) * (2 * labels - 1)
    abnormal = towards[:, None] + rng.normal(0.0, 0.05, (n, 3))
    logits = np.stack([np.zeros((n, 3)), abnormal], axis=-1).astype(np.float32)
    frame = studies_frame(["WRIST"] * n, labels.tolist(),
                          ["tune"] * n_tune + ["valid"] * (n - n_tune))
    frame["reader_hand"] = labels
    return LogitsTable.from_arrays(frame, ["a", "b", "c"], logits)


def test_budget_paced_beats_first_come_first_served_when_the_valuable_studies_come_late(
        ) -> None:
    """Two shifts of 100 studies, one reader with 10 reads each: 50 confident studies (the
    ensemble right) then 50 unsure ones (the ensemble wrong, the reader right).
    First come, first served spends the 10 reads on the first 10 studies, where the
    ensemble was already right: it gains nothing (accuracy 0.50, the ensemble's). Budget
    paced waits: while 10 reads are left over 50 to 100 studies its level is at least the
    0.8 quantile of the tune gains (half of tune is unsure, gains 0.38 to 0.43), which a
    confident study's gain (about 0.1) never beats; once the unsure studies come it reads
    them, surely spending all 10 reads before the end (the level drops to any positive gain
    once the reads left cover the studies left). Every read fixes an error, so the margin is
    10 studies per shift: accuracy 0.60 against 0.50, a margin of 0.10 (asserted >= 0.09)."""
    table = pacing_table()
    tune, valid = (WorklistData.from_table(table, split) for split in ("tune", "valid"))
    problem = WorklistProblem(logits=table, split="valid", shift_size=100, sampling="sweep")
    rows = problem.new_shifts(2, np.random.default_rng(0))[0]
    np.testing.assert_array_equal(rows, np.arange(200).reshape(2, 100))  # in table order
    capacities = problem.capacities
    assert capacities.tolist() == [10]
    methods = {m.name: m for m in fit_worklist_methods(tune, 0.0, capacities)}
    p = methods["budget_paced"].probabilities(valid)
    late = np.tile(np.arange(100) >= 50, 2)
    ensemble_right = (p > 0.5) == valid.studies.labels
    assert ensemble_right[~late].all() and not ensemble_right[late].any()
    fcfs = simulate(methods["first_come_first_served"], valid, rows, capacities, p)
    paced = simulate(methods["budget_paced"], valid, rows, capacities, p)
    np.testing.assert_array_equal(fcfs["answered_by"][:, :10], 0)
    assert (fcfs["answered_by"][:, 10:] == ENSEMBLE).all()
    assert (paced["answered_by"][:, :50] == ENSEMBLE).all()
    assert paced["reads_used"].tolist() == [[10], [10]]
    assert fcfs["accuracy"] == pytest.approx(0.5)
    assert paced["accuracy"] - fcfs["accuracy"] >= 0.09
    # the oracle cannot do better than 10 fixes per shift either
    oracle = simulate(methods["oracle"], valid, rows, capacities, p)
    assert oracle["accuracy"] == pytest.approx(paced["accuracy"])
    assert isinstance(methods["oracle"], OracleAssignment)


def _bare_dp(tune_gains: np.ndarray, capacities: tuple[int, ...], size: int) -> OptimalOnline:
    """An :class:`OptimalOnline` fitted on ``tune_gains`` alone (no table needed)."""
    method = OptimalOnline()
    method.tune_gains = np.asarray(tune_gains, dtype=np.float64)
    method.capacities, method.shift_size, method.read_cost = np.array(capacities), size, 0.0
    method._fit_rule(None)
    return method


def _shift_gain(gains: np.ndarray, who: np.ndarray) -> float:
    read = who >= 0
    return float(np.where(read, gains[np.arange(len(who)), np.maximum(who, 0)], 0.0).sum())


@pytest.mark.parametrize(("kinds", "size", "capacities"), [
    (np.array([[0.30], [0.10]]), 3, (1,)),  # one reader, one read, three studies
    (np.array([[0.30, -0.05], [0.10, 0.25]]), 2, (1, 1)),  # two readers, a read each
])
def test_dp_is_the_best_online_policy_by_exhaustive_search(kinds: np.ndarray, size: int,
                                                            capacities: tuple[int, ...]) -> None:
    # two kinds of study, equally likely
    sequences = list(itertools.product(range(2), repeat=size))
    # every deterministic online policy: an action (the ensemble or a reader) for each history
    # of kinds seen so far, the current one included
    histories = [h for t in range(1, size + 1) for h in itertools.product(range(2), repeat=t)]
    best = -np.inf
    choices = (ENSEMBLE, *range(len(capacities)))
    for actions in itertools.product(choices, repeat=len(histories)):
        policy = dict(zip(histories, actions, strict=True))
        total = 0.0
        for seq in sequences:
            left, gain = list(capacities), 0.0
            for t in range(size):
                act = policy[seq[: t + 1]]
                if act >= 0 and left[act] > 0:  # a full reader: the ensemble answers
                    left[act] -= 1
                    gain += kinds[seq[t], act]
            total += gain
        best = max(best, total / len(sequences))
    values = online_values(kinds, np.array(capacities), size)
    assert values[size][capacities] == pytest.approx(best, abs=1e-12)
    # and the method's own decisions reach it
    dp = _bare_dp(kinds, capacities, size)
    shifts = kinds[np.array(sequences)]  # [2 ** size, size, R]
    who = dp.decide_shifts(shifts, capacities)
    mean = np.mean([_shift_gain(g, w) for g, w in zip(shifts, who, strict=True)])
    assert mean == pytest.approx(best, abs=1e-12)


def test_dp_beats_budget_paced_in_expectation_and_keeps_capacities() -> None:
    rng = np.random.default_rng(3)
    tune_gains = rng.normal(-0.05, 0.2, size=(40, 2))
    size, capacities = 5, (1, 2)
    dp = _bare_dp(tune_gains, capacities, size)
    paced = BudgetPaced()
    paced.tune_gains, paced.capacities, paced.shift_size = tune_gains, np.array(capacities), size
    paced._fit_rule(None)
    shifts = tune_gains[rng.integers(0, 40, size=(4000, size))]  # i.i.d. from tune's gains
    mine, theirs = (m.decide_shifts(shifts, capacities) for m in (dp, paced))
    for who in (mine, theirs):
        for r, cap in enumerate(capacities):
            assert ((who == r).sum(axis=1) <= cap).all()
    dp_gain = np.mean([_shift_gain(g, w) for g, w in zip(shifts, mine, strict=True)])
    paced_gain = np.mean([_shift_gain(g, w) for g, w in zip(shifts, theirs, strict=True)])
    assert dp_gain > paced_gain
    expected = online_values(tune_gains, np.array(capacities), size)[size][capacities]
    assert dp_gain == pytest.approx(expected, abs=0.02)  # Monte Carlo over 4,000 shifts
