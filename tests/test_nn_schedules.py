"""Learning-rate schedules: each factor as its formula says, and optimizers follow them."""

import math

import numpy as np
import pytest

from nn import SGD
from nn.schedules import SCHEDULES, LRSchedule, lr_factor


def factors(name, total):
    return [lr_factor(name, t, total) for t in range(total)]


def test_constant_is_one_throughout():
    assert factors("constant", 7) == [1.0] * 7


def test_step_divides_by_ten_at_half_and_again_at_three_quarters():
    assert factors("step", 8) == [1.0] * 4 + [0.1, 0.1] + [0.01, 0.01]


def test_cosine_starts_at_one_passes_half_midway_and_ends_near_zero():
    f = factors("cosine", 100)
    assert f[0] == 1.0 and f[50] == pytest.approx(0.5) and 0 < f[-1] < 1e-3
    assert all(a > b for a, b in zip(f, f[1:]))


def test_onecycle_warms_up_for_30_percent_then_anneals_to_its_floor():
    f = factors("onecycle", 100)
    assert f[0] == pytest.approx(1 / 25) and f[29] == pytest.approx(1.0) and f[-1] == pytest.approx(1 / 25 / 1e4)
    assert all(a < b for a, b in zip(f[:29], f[1:30]))
    assert all(a > b for a, b in zip(f[29:], f[30:]))
    assert f[29 + 35] == pytest.approx((1 + 1 / 25e4) / 2)  # halfway down the cosine


def test_onecycle_matches_pytorch_one_cycle_lr():
    torch = pytest.importorskip("torch")
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=57, cycle_momentum=False)
    expected = [opt.param_groups[0]["lr"]]  # lr at step 0, then after each of the other 56 steps
    for _ in range(56):
        opt.step()
        sched.step()
        expected.append(opt.param_groups[0]["lr"])
    expected = [e / 0.1 for e in expected]
    assert np.allclose(factors("onecycle", 57), expected, rtol=1e-9)


@pytest.mark.parametrize("name", SCHEDULES)
def test_steps_past_the_end_keep_the_last_factor_and_one_step_works(name):
    assert lr_factor(name, 10, 5) == lr_factor(name, 4, 5)
    assert 0 < lr_factor(name, 0, 1) <= 1


def test_unknown_schedule_or_no_steps_is_a_value_error():
    with pytest.raises(ValueError, match="schedule"):
        LRSchedule("linear", 10)
    with pytest.raises(ValueError, match="step"):
        LRSchedule("cosine", 0)


def test_an_optimizer_takes_lr_times_the_factor_of_the_steps_taken():
    p, g = np.zeros(1), np.ones(1)
    opt = SGD(lr=0.2, schedule=LRSchedule("step", 4))
    rates = []
    for _ in range(4):
        rates.append(opt.current_lr())
        opt.step([(p, g)])
    assert rates == pytest.approx([0.2, 0.2, 0.02, 0.002])
    assert p[0] == pytest.approx(-sum(rates))


def test_schedule_and_decay_multiply():
    opt = SGD(lr=1.0, decay=1.0, schedule=LRSchedule("cosine", 4))
    opt.t = 2
    assert opt.current_lr() == pytest.approx(0.5 * (1 + math.cos(math.pi / 2)) / 3)
