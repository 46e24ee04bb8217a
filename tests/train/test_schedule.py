import pytest

from condgen.train import schedule


def official_lrs(lr: float, niter: int, niter_decay: int) -> list[float]:
    """The official trainer's rate during each epoch: subtract lr / niter_decay after every epoch > niter."""
    rates, current = [], lr
    for epoch in range(1, niter + niter_decay + 1):  # official epochs are 1-based
        rates.append(current)
        if epoch > niter:
            current -= lr / niter_decay
    return rates


@pytest.mark.parametrize("niter, niter_decay", [(3, 4), (0, 5), (2, 1), (5, 0)])
def test_lr_factor_matches_official_subtraction(niter, niter_decay):
    ours = [2e-4 * schedule.lr_factor(e, niter, niter_decay) for e in range(niter + niter_decay)]
    assert ours == pytest.approx(official_lrs(2e-4, niter, niter_decay), rel=1e-9, abs=1e-15)


def test_lr_factor_stays_at_last_value_past_the_schedule():
    assert schedule.lr_factor(100, 2, 4) == pytest.approx(1 / 4)
    assert schedule.lr_factor(100, 2, 0) == 1.0


def test_optimizer_settings_ttur_and_no_ttur():
    assert schedule.optimizer_settings(2e-4) == (1e-4, 4e-4, (0.0, 0.9))
    assert schedule.optimizer_settings(2e-4, ttur=False) == (2e-4, 2e-4, (0.5, 0.999))
    lr_g, lr_d, betas = schedule.optimizer_settings(1e-3, betas=(0, 0.99))
    assert (lr_g, lr_d) == (5e-4, 2e-3) and betas == (0.0, 0.99) and isinstance(betas[0], float)
    with pytest.raises(ValueError, match="betas"):
        schedule.optimizer_settings(1e-3, betas=(0.5, 1.5))
    with pytest.raises(ValueError, match="lr=-1"):
        schedule.optimizer_settings(-1)


def test_progress_is_a_function_of_the_step():
    p = schedule.Progress(step=7, grad_accum=2, batches_per_epoch=5)
    assert (p.micro_batch, p.epoch, p.batch_in_epoch) == (14, 2, 4)


def test_total_steps():
    def total(niter, niter_decay, grad_accum=1, max_steps=None):
        return schedule.total_steps(niter=niter, niter_decay=niter_decay, batches_per_epoch=10,
                                    grad_accum=grad_accum, max_steps=max_steps)

    assert total(2, 1) == 30 and total(2, 1, grad_accum=4) == 7 and total(50, 0, max_steps=5) == 5
    with pytest.raises(ValueError, match="max_steps"):
        total(1, 0, max_steps=0)


def test_is_due():
    assert [s for s in range(1, 8) if schedule.is_due(s, 3, last_step=7)] == [3, 6, 7]
    assert not any(schedule.is_due(s, None, last_step=7) for s in range(1, 8))
    # early grids (the quickstart's sample_at) come on top of the regular ones
    due = [s for s in range(1, 501) if schedule.is_due(s, 200, last_step=500, at=(25, 50, 100))]
    assert due == [25, 50, 100, 200, 400, 500]
