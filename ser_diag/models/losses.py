"""Losses used by the Interspeech 2025 SER challenge teams, each with its formula.

Notation: ``n`` rows, ``K`` classes, logits ``z`` (n, K), ``p = softmax(z)``, integer targets
``y`` (n,), soft targets ``q`` (n, K) with rows summing to 1. Every loss returns a scalar tensor
(mean over rows unless the docstring says otherwise). Rows whose integer target is negative
(``O``/``X`` rows kept for attribute training) are ignored by the categorical losses; a batch
without any valid row gives ``0`` (with a gradient graph), never NaN.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -1


def _valid(target: torch.Tensor) -> torch.Tensor:
    return target >= 0 if target.dim() == 1 else torch.isfinite(target).all(dim=1) & (target.sum(dim=1) > 0)


def _zero(like: torch.Tensor) -> torch.Tensor:
    return like.sum() * 0.0


def weighted_cross_entropy(logits: torch.Tensor, target: torch.Tensor,
                           weight: torch.Tensor | None = None) -> torch.Tensor:
    r"""Class-weighted cross-entropy, normalised by the summed weights (PyTorch's convention).

    .. math:: L = \frac{\sum_i w_{y_i}\,(-\log p_{i,y_i})}{\sum_i w_{y_i}}

    ``weight=None`` is plain cross-entropy. Weights come from
    :func:`ser_diag.models.sampling.class_weights` (``w_c = N / (K n_c)`` or its square root).
    """
    valid = _valid(target)
    if not valid.any():
        return _zero(logits)
    return F.cross_entropy(logits[valid], target[valid], weight=weight)


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0,
               alpha: torch.Tensor | None = None) -> torch.Tensor:
    r"""Focal loss (Lin et al., 2017), mean over rows.

    .. math:: L = \frac1n \sum_i \alpha_{y_i}\,(1 - p_{i,y_i})^{\gamma}\,(-\log p_{i,y_i})

    ``alpha=None`` means ``alpha_c = 1``; ``gamma = 0`` and no ``alpha`` is cross-entropy.
    """
    valid = _valid(target)
    if not valid.any():
        return _zero(logits)
    logits, target = logits[valid], target[valid]
    log_p = F.log_softmax(logits, dim=1).gather(1, target[:, None]).squeeze(1)
    loss = -((1.0 - log_p.exp()) ** gamma) * log_p
    if alpha is not None:
        loss = alpha.to(loss)[target] * loss
    return loss.mean()


def soft_cross_entropy(logits: torch.Tensor, target_probs: torch.Tensor,
                       weight: torch.Tensor | None = None) -> torch.Tensor:
    r"""Cross-entropy to annotator vote distributions ``q`` (soft labels), mean over rows.

    .. math:: L = \frac1n \sum_i \sum_c w_c\, q_{ic}\,(-\log p_{ic})

    With one-hot ``q`` and no weights this is cross-entropy. Rows of ``q`` that are all zero or
    non-finite (no usable votes) are ignored.
    """
    valid = _valid(target_probs)
    if not valid.any():
        return _zero(logits)
    q = target_probs[valid].to(logits)
    if weight is not None:
        q = q * weight.to(logits)[None, :]
    return -(q * F.log_softmax(logits[valid], dim=1)).sum(dim=1).mean()


def kl_divergence(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    r"""Kullback-Leibler divergence from the vote distribution ``q`` to the model, mean over rows.

    .. math:: L = \frac1n \sum_i \sum_{c:\,q_{ic}>0} q_{ic} \log\frac{q_{ic}}{p_{ic}}

    (``0 log 0 = 0``). It differs from :func:`soft_cross_entropy` by the entropy of ``q``, a
    constant, so the gradients are the same.
    """
    valid = _valid(target_probs)
    if not valid.any():
        return _zero(logits)
    q = target_probs[valid].to(logits)
    log_q = torch.where(q > 0, q.clamp_min(1e-30).log(), torch.zeros_like(q))
    return (q * (log_q - F.log_softmax(logits[valid], dim=1))).sum(dim=1).mean()


def ccc_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    r"""Sum over attributes (columns) of ``1 - CCC`` (Lin's concordance, population variances).

    .. math:: \mathrm{CCC} = \frac{2 s_{xy}}{s_x^2 + s_y^2 + (\bar x - \bar y)^2},\quad
              L = \sum_a (1 - \mathrm{CCC}_a)

    with ``s`` the biased (``1/n``) moments, as the challenge scores. Computed over the rows of
    the batch, so use batches of more than a handful of rows.
    """
    pred = pred.reshape(pred.shape[0], -1)
    target = target.reshape(target.shape[0], -1).to(pred)
    mean_p, mean_t = pred.mean(dim=0), target.mean(dim=0)
    var_p = ((pred - mean_p) ** 2).mean(dim=0)
    var_t = ((target - mean_t) ** 2).mean(dim=0)
    cov = ((pred - mean_p) * (target - mean_t)).mean(dim=0)
    ccc = 2.0 * cov / (var_p + var_t + (mean_p - mean_t) ** 2 + 1e-8)
    return (1.0 - ccc).sum()


def mean_penalty_mse(pred: torch.Tensor, target: torch.Tensor, strength: float = 1.0,
                     centre: float = 4.0, width: float = 1.0) -> torch.Tensor:
    r"""MSE whose errors cost more when the prediction sits near the scale's middle (SRPOL-style).

    .. math:: L = \frac{1}{n A} \sum_{i,a} \bigl(1 + \lambda\, e^{-(\hat y_{ia} - c)^2 / (2\sigma^2)}\bigr)
              (\hat y_{ia} - y_{ia})^2

    with ``lambda = strength``, ``c = centre``, ``sigma = width`` in the units of ``pred``
    (defaults: the 1-7 scale, centre 4; on targets scaled ``(y-1)/6`` pass ``centre=0.5``,
    ``width=1/6``). The Gaussian weight is differentiated too, so a wrong prediction near the
    middle is pushed away from it, widening the prediction range. ``strength=0`` is the MSE.
    The SRPOL paper describes a Gaussian weight centred at 4; this exact form is ours.
    """
    target = target.to(pred)
    weight = 1.0 + strength * torch.exp(-((pred - centre) ** 2) / (2.0 * width ** 2))
    return (weight * (pred - target) ** 2).mean()


def soft_macro_f1_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    r"""Differentiable macro-F1: ``1 - mean_c F1_c`` with probabilities in place of hard counts.

    .. math:: TP_c = \sum_i p_{ic} t_{ic},\; FP_c = \sum_i p_{ic}(1 - t_{ic}),\;
              FN_c = \sum_i (1 - p_{ic}) t_{ic},\;
              L = 1 - \frac1K \sum_c \frac{2 TP_c}{2 TP_c + FP_c + FN_c + \epsilon}

    ``t`` is the one-hot of integer ``target`` (or soft targets ``(n, K)`` as given). Computed
    over the batch; classes absent from the batch and never predicted contribute ``F1 = 0``.
    """
    if target.dim() == 1:
        valid = _valid(target)
        if not valid.any():
            return _zero(logits)
        logits = logits[valid]
        t = F.one_hot(target[valid], logits.shape[1]).to(logits)
    else:
        valid = _valid(target)
        if not valid.any():
            return _zero(logits)
        logits, t = logits[valid], target[valid].to(logits)
    p = logits.softmax(dim=1)
    tp = (p * t).sum(dim=0)
    fp = (p * (1 - t)).sum(dim=0)
    fn = ((1 - p) * t).sum(dim=0)
    return 1.0 - (2 * tp / (2 * tp + fp + fn + eps)).mean()


#: Names a training config uses for the categorical loss.
CATEGORICAL_LOSSES = ("ce", "weighted_ce", "focal", "soft_ce", "kld", "soft_f1")
#: Names a training config uses for the attribute loss.
ATTRIBUTE_LOSSES = ("ccc", "mse", "mean_penalty_mse")

__all__ = [
    "ATTRIBUTE_LOSSES",
    "CATEGORICAL_LOSSES",
    "IGNORE_INDEX",
    "ccc_loss",
    "focal_loss",
    "kl_divergence",
    "mean_penalty_mse",
    "soft_cross_entropy",
    "soft_macro_f1_loss",
    "weighted_cross_entropy",
]
