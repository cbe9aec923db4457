"""The reading room of ``mura_env.triage`` against queueing theory (Erlang C, Cobham's priority
queue, Little's law), its bookkeeping, and the scheduling rules of ``agents.triage.rules``."""

from __future__ import annotations

import numpy as np
import pytest

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
from mura_env.constants import BODY_PARTS
from mura_env.evaluation.statistics import t_interval
from mura_env.triage.arrivals import poisson_arrivals, relative_rates
from mura_env.triage.metrics import wait_summary
from mura_env.triage.read_times import draw_read_minutes
from mura_env.triage.room import ReadingRoom
from mura_env.triage.shifts import READ_MINUTES, RoomSetting, TriageShift, draw_shift
from mura_env.triage.theory import erlang_c, mmc_mean_wait, priority_mean_waits

MEAN_MINUTES = 4.0  # every reader's mean reading time in the queueing checks


def test_the_formulas_match_cases_worked_by_hand() -> None:
    assert erlang_c(1, 0.5) == pytest.approx(0.5)  # M/M/1: an arrival waits with prob. rho
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)  # M/M/2: 2 rho^2 / (1 + rho), rho = 1/2
    assert mmc_mean_wait(0.5, 1.0, 1) == pytest.approx(1.0)  # rho / (mu - lambda)
    one_class = priority_mean_waits([0.6], 0.25, 3)
    assert one_class[0] == pytest.approx(mmc_mean_wait(0.6, 0.25, 3))
    # M/M/1, two classes: W0 = rho / mu, W_k = W0 / ((1 - s_{k-1}) (1 - s_k))
    high, low = priority_mean_waits([0.2, 0.4], 1.0, 1)
    assert high == pytest.approx(0.6 / (1 - 0.2)) and low == pytest.approx(0.6 / (0.8 * 0.4))
    with pytest.raises(ValueError, match="unstable"):
        mmc_mean_wait(1.0, 0.25, 3)


def shift_of(arrivals: np.ndarray, read: np.ndarray, probability: np.ndarray,
             labels: np.ndarray, mean: np.ndarray, urgency: float = 10.0) -> TriageShift:
    """A shift built by hand (every arrival its own study, body part 0)."""
    n = arrivals.size
    room = ReadingRoom(arrivals, read, np.where(labels == 1, urgency, 1.0))
    return TriageShift(room, np.arange(n), probability, labels, np.zeros(n, dtype=np.int64),
                       mean, urgency)


def exponential_shift(rng: np.random.Generator, rate: float, minutes: float, readers: int,
                      flag_share: float = 0.0) -> TriageShift:
    """Poisson arrivals, exponential reading times of mean MEAN_MINUTES for every reader, and a
    flag (probability 1, abnormal) on a random ``flag_share`` of the studies."""
    arrivals = poisson_arrivals(rate, minutes, "steady", rng)
    n = arrivals.size
    mean = np.full((n, readers), MEAN_MINUTES)
    read = draw_read_minutes(mean, "exponential", 1.0, rng)
    flags = (rng.random(n) < flag_share).astype(np.int64)
    return shift_of(arrivals, read, flags.astype(np.float64), flags, mean)


def steady_mean_waits(rule: object, rate: float, readers: int, shifts: int, seed: int,
                      flag_share: float = 0.0) -> dict[int, np.ndarray]:
    """Per flag value (0, 1), each shift's mean wait of the studies that arrived between minute
    300 and minute 1,200 of a 1,500-minute shift (a warm start and a tail that arrivals still
    press on cut off)."""
    rng = np.random.default_rng(seed)
    means: dict[int, list[float]] = {0: [], 1: []}
    for _ in range(shifts):
        room = run_shift(exponential_shift(rng, rate, 1500.0, readers, flag_share), rule).room
        kept = (room.arrivals >= 300) & (room.arrivals < 1200)
        for flag in (0, 1):
            chosen = kept & (room.weights == (10.0 if flag else 1.0))
            if chosen.any():
                means[flag].append(float(room.waits[chosen].mean()))
    return {flag: np.asarray(values) for flag, values in means.items()}


def test_first_in_first_out_with_three_readers_gives_erlang_c_wait() -> None:
    rate = 0.8 * 3 / MEAN_MINUTES  # load 0.8
    waits = steady_mean_waits(FirstInFirstOut(), rate, 3, shifts=80, seed=0)[0]
    low, high = t_interval(waits)
    theory = mmc_mean_wait(rate, 1 / MEAN_MINUTES, 3)
    assert low <= theory <= high, (theory, low, high)
    assert high - low < 0.25 * theory  # an interval narrow enough to mean something


def test_flag_first_with_two_classes_gives_cobhams_waits() -> None:
    rate, share = 0.75 * 2 / MEAN_MINUTES, 0.3  # two readers, load 0.75, 30% flagged
    waits = steady_mean_waits(FlagFirst(threshold=0.5), rate, 2, shifts=120, seed=1,
                              flag_share=share)
    flagged, unflagged = priority_mean_waits([share * rate, (1 - share) * rate],
                                             1 / MEAN_MINUTES, 2)
    for got, theory in ((waits[1], flagged), (waits[0], unflagged)):
        low, high = t_interval(got)
        assert low <= theory <= high, (theory, low, high)
    assert flagged < 0.3 * unflagged  # the flag buys the flagged studies most of the wait


def lognormal_room(seed: int, readers: int = 3) -> TriageShift:
    """A busy surge shift: readers of different speeds per study, lognormal reading times,
    probabilities with labels drawn from them."""
    rng = np.random.default_rng(seed)
    arrivals = poisson_arrivals(0.9 * readers / 4.0, 480.0, "surge", rng)
    n = arrivals.size
    mean = rng.uniform(2.0, 6.0, size=(n, readers))
    probability = rng.random(n)
    labels = (rng.random(n) < probability).astype(np.int64)
    return shift_of(arrivals, draw_read_minutes(mean, "lognormal", 0.6, rng), probability,
                    labels, mean)


@pytest.mark.parametrize("rule", [FirstInFirstOut(), FlagFirst(), ByProbability(), CMu(),
                                  ServerAwareCMu(1.5), Clairvoyant()])
def test_every_study_is_read_once_and_littles_law_holds(rule) -> None:
    room = run_shift(lognormal_room(2), rule).room
    assert room.done and room.next_decision() is None
    assert np.isfinite(room.start).all() and (room.start >= room.arrivals).all()
    assert set(np.unique(room.reader)) <= set(range(room.n_readers))
    for r in range(room.n_readers):  # one read at a time per reader, never interrupted
        mine = np.flatnonzero(room.reader == r)
        order = mine[np.argsort(room.start[mine])]
        ends = room.start[order] + room.read_minutes[order, r]
        assert (room.start[order][1:] >= ends[:-1] - 1e-9).all()
    # Little's law over the shift: the worklist's area is the sum of the waits
    assert room.queue_area == pytest.approx(room.waits.sum(), rel=1e-9)
    assert room.cost == pytest.approx((room.weights * room.waits).sum(), rel=1e-9)


def test_the_room_refuses_a_busy_reader_and_a_position_without_a_study() -> None:
    room = ReadingRoom(np.array([0.0, 0.0]), np.array([[5.0], [5.0]]))
    reader = room.next_decision()
    assert reader == 0 and room.queue == [0, 1]
    with pytest.raises(ValueError, match="position"):
        room.assign(0, 2)
    room.assign(0, 1)  # the second study first
    with pytest.raises(ValueError, match="free reader"):
        room.assign(0, 0)
    assert room.next_decision() == 0 and room.now == 5.0
    room.assign(0, 0)
    assert room.next_decision() is None
    assert room.waits.tolist() == [5.0, 0.0]
    with pytest.raises(ValueError, match="non-decreasing"):
        ReadingRoom(np.array([1.0, 0.5]), np.ones((2, 1)))


def test_c_mu_beats_first_in_first_out_and_the_labels_beat_c_mu_on_one_reader() -> None:
    costs = {name: [] for name in ("fifo", "c_mu", "clairvoyant")}
    for seed in range(10):  # the same shifts for every rule
        for name, rule in (("fifo", FirstInFirstOut()), ("c_mu", CMu()),
                           ("clairvoyant", Clairvoyant())):
            costs[name].append(run_shift(lognormal_room(seed, readers=1), rule).room.cost)
    mean = {name: float(np.mean(values)) for name, values in costs.items()}
    assert mean["clairvoyant"] < mean["c_mu"] < 0.8 * mean["fifo"]


def test_the_server_aware_rule_sends_studies_to_their_fast_reader() -> None:
    shares = {}
    for exponent in (0.0, 3.0):
        fast = []
        for seed in range(5):
            shift = run_shift(lognormal_room(seed), ServerAwareCMu(exponent))
            fastest = shift.mean_minutes.argmin(axis=1)
            fast.append(float((shift.room.reader == fastest).mean()))
        shares[exponent] = np.mean(fast)
    assert shares[3.0] > shares[0.0] + 0.05


def test_the_flag_threshold_is_fitted_where_sensitivity_plus_specificity_peaks() -> None:
    probability = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9])
    labels = np.array([0, 0, 0, 1, 0, 1, 1, 1])
    rule = FlagFirst().fit(probability, labels)
    assert rule.threshold == 0.3  # flags 0.4 and above: sensitivity 1, specificity 3/4


def test_arrivals_follow_the_profile_and_reading_times_their_mean() -> None:
    rng = np.random.default_rng(3)
    times = np.concatenate([poisson_arrivals(2.0, 480.0, "surge", rng) for _ in range(50)])
    assert times.min() >= 0 and times.max() < 480
    counts = np.histogram(times, bins=8, range=(0, 480))[0] / 50
    expected = 2.0 * 60 * relative_rates("surge")
    assert np.allclose(counts, expected, rtol=0.05)
    minutes = draw_read_minutes(np.full(200_000, 3.0), "lognormal", 0.5, rng)
    assert minutes.mean() == pytest.approx(3.0, rel=0.01)
    assert minutes.std() / minutes.mean() == pytest.approx(0.5, rel=0.03)
    with pytest.raises(ValueError, match="profile"):
        poisson_arrivals(1.0, 60.0, "night", rng)


def table_studies(n: int = 400, seed: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stand-in studies: (probability, label, body part index), the labels drawn from the
    probabilities."""
    rng = np.random.default_rng(seed)
    probability = rng.random(n)
    return probability, (rng.random(n) < probability).astype(np.int64), rng.integers(0, 7, n)


def test_a_drawn_shift_has_the_load_reading_times_and_studies_of_its_setting() -> None:
    probability, labels, parts = table_studies()
    setting = RoomSetting(minutes=600.0, load=0.8, read_shape="exponential")
    mean_by_part = np.array([[READ_MINUTES[r][p] for r in setting.readers] for p in BODY_PARTS])
    mix = np.bincount(parts, minlength=7) / len(parts)
    rate = 0.8 * (1.0 / (mix @ mean_by_part)).sum()
    assert setting.arrival_rate(parts) == pytest.approx(rate)
    shifts = [draw_shift(probability, labels, parts, setting, np.random.default_rng(s))
              for s in range(30)]
    counts = np.array([s.room.arrivals.size for s in shifts])
    assert counts.mean() == pytest.approx(rate * 600.0, rel=0.05)
    for shift in shifts:
        np.testing.assert_array_equal(shift.probability, probability[shift.studies])
        np.testing.assert_array_equal(shift.labels, labels[shift.studies])
        np.testing.assert_array_equal(shift.mean_minutes, mean_by_part[parts[shift.studies]])
        np.testing.assert_array_equal(shift.room.weights, np.where(shift.labels == 1, 10.0, 1.0))
    again = draw_shift(probability, labels, parts, setting, np.random.default_rng(0))
    np.testing.assert_array_equal(again.room.read_minutes, shifts[0].room.read_minutes)
    with pytest.raises(ValueError, match="readers"):
        RoomSetting(readers=("radiologist_9",))


def test_the_fitted_exponent_costs_least_on_its_tune_shifts_and_the_summary_reads_them() -> None:
    probability, labels, parts = table_studies()
    setting = RoomSetting(minutes=240.0, profile="surge")

    def tune_shifts() -> list[TriageShift]:
        return [draw_shift(probability, labels, parts, setting, np.random.default_rng(s))
                for s in range(6)]

    rule = ServerAwareCMu().fit(tune_shifts, exponents=(0.0, 1.0, 3.0))
    costs = {e: np.mean([run_shift(s, ServerAwareCMu(e)).room.cost for s in tune_shifts()])
             for e in (0.0, 1.0, 3.0)}
    assert costs[rule.exponent] == min(costs.values())
    played = [run_shift(s, rule) for s in tune_shifts()]
    summary = wait_summary(played)
    waits = np.concatenate([s.room.waits for s in played])
    abnormal = np.concatenate([s.labels for s in played]) == 1
    assert summary["mean_wait_abnormal"] == pytest.approx(waits[abnormal].mean())
    assert summary["p90_wait_normal"] == pytest.approx(np.quantile(waits[~abnormal], 0.9))
    assert summary["cost_per_shift"] == pytest.approx(np.mean([s.room.cost for s in played]))
    missed = abnormal & (np.concatenate([s.probability for s in played]) <= 0.5)
    assert summary["missed_abnormal_share"] == pytest.approx(missed.sum() / abnormal.sum())
    with pytest.raises(ValueError, match="started"):
        wait_summary(tune_shifts())


def test_the_tuned_index_holds_c_mu_and_the_server_aware_rule_and_fits_by_least_cost() -> None:
    shift = lognormal_room(4)
    waiting = np.arange(len(shift.probability))
    for reader in range(3):
        np.testing.assert_allclose(TunedIndex(1, 1, 0).index(shift, waiting, reader),
                                   CMu().index(shift, waiting, reader))
        np.testing.assert_allclose(TunedIndex(1, 1, 2).index(shift, waiting, reader),
                                   ServerAwareCMu(2).index(shift, waiting, reader))
    probability, labels, parts = table_studies()
    setting = RoomSetting(minutes=180.0, profile="surge")

    def tune_shifts() -> list[TriageShift]:
        return [draw_shift(probability, labels, parts, setting, np.random.default_rng(s))
                for s in range(4)]

    grid = {"weight_powers": (1.0, 2.0), "time_powers": (1.0,), "relative_powers": (0.0, 2.0)}
    rule = TunedIndex().fit(tune_shifts, **grid)
    costs = {(a, c): np.mean([run_shift(s, TunedIndex(a, 1.0, c)).room.cost
                              for s in tune_shifts()])
             for a in (1.0, 2.0) for c in (0.0, 2.0)}
    assert costs[(rule.weight_power, rule.relative_power)] == min(costs.values())


def test_a_study_past_its_deadline_costs_its_late_weight_per_minute() -> None:
    # one reader, two studies at minute 0 reading 5 minutes each; the second is due at minute 2
    room = ReadingRoom(np.zeros(2), np.full((2, 1), 5.0), deadlines=np.array([np.inf, 2.0]),
                       late_weights=np.array([0.0, 3.0]))
    room.assign(room.next_decision(), 0)
    room.assign(room.next_decision(), 0)
    assert room.next_decision() is None
    assert room.cost == pytest.approx(0 + 5 + 3 * (5 - 2))  # weight 1 x 5 min, 3 x 3 min late
    with pytest.raises(ValueError, match="deadlines"):
        ReadingRoom(np.zeros(2), np.ones((2, 1)), deadlines=np.array([-1.0, 2.0]))


def test_deadline_costs_add_up_over_a_busy_shift_and_generalized_c_mu_reads_them() -> None:
    probability, labels, parts = table_studies()
    setting = RoomSetting(minutes=240.0, profile="surge", load=0.95, deadline=10.0,
                          late_cost=5.0)
    for rule in (FirstInFirstOut(), CMu(), GeneralizedCMu()):
        shift = run_shift(draw_shift(probability, labels, parts, setting,
                                     np.random.default_rng(7)), rule)
        room = shift.room
        late = np.maximum(room.waits - 10.0, 0.0) * (shift.labels == 1)
        assert late.sum() > 0  # a busy surge: some abnormal studies wait past the deadline
        assert room.cost == pytest.approx((room.weights * room.waits).sum() + 5.0 * late.sum(),
                                          rel=1e-9)
        assert room.queue_area == pytest.approx(room.waits.sum(), rel=1e-9)
    # past the deadline a study's index rises by late_cost x p; before it, c-mu's
    shift = draw_shift(probability, labels, parts, setting, np.random.default_rng(8))
    room = shift.room
    room.now = float(room.arrivals[5]) + 10.0
    waiting = np.arange(10)
    overdue = room.now - room.arrivals[waiting] >= 10.0
    expected = CMu().index(shift, waiting, 0) + overdue * 5.0 * shift.probability[waiting] / \
        shift.mean_minutes[waiting, 0]
    np.testing.assert_allclose(GeneralizedCMu().index(shift, waiting, 0), expected)
    assert overdue.any() and not overdue.all()
