"""Every loss against a value worked out by hand (arithmetic in the comments)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ser_diag import metrics
from ser_diag.models import losses
from ser_diag.models.sampling import class_weights

LN2, LN3 = math.log(2.0), math.log(3.0)
# Two rows, two classes.  Row 1: logits (0, 0) -> p = (1/2, 1/2), target 0 -> -log p = ln 2.
# Row 2: logits (ln 3, 0) -> p = (3/4, 1/4), target 1 -> -log p = ln 4 = 2 ln 2.
LOGITS = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])
TARGET = torch.tensor([0, 1])


def test_class_weights_inverse_and_sqrt():
    # counts (6, 3, 1): N = 10, K = 3 -> w = 10/(3*6), 10/(3*3), 10/(3*1)
    assert class_weights([6, 3, 1]) == pytest.approx([10 / 18, 10 / 9, 10 / 3])
    assert class_weights([6, 3, 1], "sqrt_inverse") == pytest.approx(np.sqrt([10 / 18, 10 / 9, 10 / 3]))
    assert class_weights([6, 3, 1], "none") == pytest.approx([1, 1, 1])
    # an empty class gets weight 0 (N = 4, K = 2 -> 4 / (2 * 4) = 0.5)
    assert class_weights([4, 0]) == pytest.approx([0.5, 0.0])


def test_weighted_cross_entropy_by_hand():
    # unweighted: (ln 2 + 2 ln 2) / 2 = 1.5 ln 2
    assert float(losses.weighted_cross_entropy(LOGITS, TARGET)) == pytest.approx(1.5 * LN2)
    # weights (1, 3): (1 * ln 2 + 3 * 2 ln 2) / (1 + 3) = 7 ln 2 / 4
    w = torch.tensor([1.0, 3.0])
    assert float(losses.weighted_cross_entropy(LOGITS, TARGET, w)) == pytest.approx(7 * LN2 / 4)


def test_categorical_losses_ignore_unlabelled_rows():
    logits = torch.cat([LOGITS, torch.tensor([[5.0, -5.0]])])
    target = torch.tensor([0, 1, -1])  # third row is an O/X row
    assert float(losses.weighted_cross_entropy(logits, target)) == pytest.approx(1.5 * LN2)
    assert float(losses.focal_loss(logits, target)) == pytest.approx(0.6875 * LN2)
    empty = torch.zeros(2, 2, requires_grad=True)
    value = losses.weighted_cross_entropy(empty, torch.tensor([-1, -1]))
    value.backward()
    assert float(value.detach()) == 0.0 and torch.equal(empty.grad, torch.zeros(2, 2))


def test_focal_loss_by_hand():
    # gamma 2: row 1 (1 - 1/2)^2 ln 2 = 0.25 ln 2; row 2 (1 - 1/4)^2 * 2 ln 2 = 1.125 ln 2
    # mean = (0.25 + 1.125) / 2 ln 2 = 0.6875 ln 2
    assert float(losses.focal_loss(LOGITS, TARGET, gamma=2.0)) == pytest.approx(0.6875 * LN2)
    # alpha (1, 3): (0.25 + 3 * 1.125) / 2 ln 2 = 1.8125 ln 2
    alpha = torch.tensor([1.0, 3.0])
    assert float(losses.focal_loss(LOGITS, TARGET, gamma=2.0, alpha=alpha)) == pytest.approx(1.8125 * LN2)


def test_focal_with_gamma_zero_is_cross_entropy():
    g = torch.Generator().manual_seed(0)
    logits, target = torch.randn(50, 8, generator=g), torch.randint(0, 8, (50,), generator=g)
    assert float(losses.focal_loss(logits, target, gamma=0.0)) == pytest.approx(
        float(F.cross_entropy(logits, target)), rel=1e-6)


def test_soft_cross_entropy_and_kl_by_hand():
    # Row 1: logits (0,0,0) -> p = 1/3 each; q = (1/2, 1/2, 0) -> CE = ln 3,
    #        KL = 2 * 1/2 ln((1/2) / (1/3)) = ln 1.5.
    # Row 2: logits (ln 2, 0, 0) -> p = (1/2, 1/4, 1/4); q = p -> CE = 1/2 ln 2 + 2 * 1/4 ln 4 = 1.5 ln 2, KL = 0.
    logits = torch.tensor([[0.0, 0.0, 0.0], [LN2, 0.0, 0.0]])
    q = torch.tensor([[0.5, 0.5, 0.0], [0.5, 0.25, 0.25]])
    assert float(losses.soft_cross_entropy(logits, q)) == pytest.approx((LN3 + 1.5 * LN2) / 2)
    assert float(losses.kl_divergence(logits, q)) == pytest.approx(math.log(1.5) / 2)
    # class weights multiply q: w = (2, 1, 1) -> row 1: 2*1/2 ln3 + 1/2 ln3 = 1.5 ln 3;
    # row 2: 2 * 1/2 ln 2 + 1/4 ln 4 + 1/4 ln 4 = 2 ln 2
    w = torch.tensor([2.0, 1.0, 1.0])
    assert float(losses.soft_cross_entropy(logits, q, w)) == pytest.approx((1.5 * LN3 + 2 * LN2) / 2)


def test_soft_cross_entropy_with_one_hot_is_cross_entropy_and_kl_has_same_gradient():
    g = torch.Generator().manual_seed(1)
    logits, target = torch.randn(40, 8, generator=g), torch.randint(0, 8, (40,), generator=g)
    one_hot = F.one_hot(target, 8).float()
    assert float(losses.soft_cross_entropy(logits, one_hot)) == pytest.approx(
        float(F.cross_entropy(logits, target)), rel=1e-6)
    q = torch.softmax(torch.randn(40, 8, generator=g), dim=1)
    grads = []
    for fn in (losses.soft_cross_entropy, losses.kl_divergence):
        z = logits.clone().requires_grad_(True)
        fn(z, q).backward()
        grads.append(z.grad)
    torch.testing.assert_close(grads[0], grads[1])
    # rows without votes (all zero) are ignored
    q_missing = torch.cat([q[:2], torch.zeros(1, 8)])
    assert float(losses.soft_cross_entropy(logits[:3], q_missing)) == pytest.approx(
        float(losses.soft_cross_entropy(logits[:2], q[:2])))


def test_ccc_loss_by_hand_and_against_metrics():
    # x = (1, 2, 3), y = (2, 2, 5): means 2 and 3; var_x = 2/3, var_y = (1 + 1 + 4)/3 = 2;
    # cov = ((-1)(-1) + 0 + (1)(2)) / 3 = 1; CCC = 2 / (2/3 + 2 + 1) = 6/11 -> 1 - CCC = 5/11.
    pred = torch.tensor([[1.0, 0.3], [2.0, 0.5], [3.0, 0.9]])
    true = torch.tensor([[2.0, 0.3], [2.0, 0.5], [5.0, 0.9]])  # second attribute perfect -> 0
    assert float(losses.ccc_loss(pred, true)) == pytest.approx(5 / 11, abs=1e-6)
    assert float(losses.ccc_loss(true, true)) == pytest.approx(0.0, abs=1e-6)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(30, 3)), rng.normal(size=(30, 3))
    expected = sum(1 - metrics.ccc(a[:, j], b[:, j]) for j in range(3))
    assert float(losses.ccc_loss(torch.tensor(b), torch.tensor(a))) == pytest.approx(expected, rel=1e-6)


def test_mean_penalty_mse_by_hand():
    # pred (4, 6), true (5, 6), centre 4, width 1, strength 1:
    # row 1 weight 1 + exp(0) = 2, error^2 = 1 -> 2; row 2 error 0 -> 0; mean = 1.
    assert float(losses.mean_penalty_mse(torch.tensor([4.0, 6.0]), torch.tensor([5.0, 6.0]))) == pytest.approx(1.0)
    # pred 5, true 3: weight 1 + exp(-1/2), error^2 = 4.
    assert float(losses.mean_penalty_mse(torch.tensor([5.0]), torch.tensor([3.0]))) == pytest.approx(
        (1 + math.exp(-0.5)) * 4)
    # strength 0 is the MSE
    p, t = torch.tensor([1.0, 2.5, 6.0]), torch.tensor([2.0, 2.0, 7.0])
    assert float(losses.mean_penalty_mse(p, t, strength=0.0)) == pytest.approx(float(F.mse_loss(p, t)))
    # the penalty pushes a wrong prediction at the centre outward more than plain MSE does
    z = torch.tensor([4.2], requires_grad=True)
    losses.mean_penalty_mse(z, torch.tensor([6.0])).backward()
    assert float(z.grad) < 2 * (4.2 - 6.0)


def test_soft_macro_f1_by_hand():
    # Row 1 p = (3/4, 1/4), target 0; row 2 p = (1/2, 1/2), target 1.
    # class 0: TP = 3/4, FP = 1/2, FN = 1/4 -> F1 = 1.5 / 2.25 = 2/3
    # class 1: TP = 1/2, FP = 1/4, FN = 1/2 -> F1 = 1 / 1.75 = 4/7
    # loss = 1 - (2/3 + 4/7) / 2 = 8/21
    logits = torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0]])
    assert float(losses.soft_macro_f1_loss(logits, torch.tensor([0, 1]))) == pytest.approx(8 / 21, abs=1e-6)
    confident = torch.tensor([[20.0, 0.0], [0.0, 20.0]])
    assert float(losses.soft_macro_f1_loss(confident, torch.tensor([0, 1]))) == pytest.approx(0.0, abs=1e-6)
