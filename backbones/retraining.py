"""Fine-tuning a trained member toward what the ensemble gets wrong: the losses of
``python -m experiments.retrain`` and its training pass.

Every loss scores a batch of whole studies (:class:`backbones.study_batches.StudyBatchSampler`)
and weights each image or study by the pretraining's per-(body part, label) class weights
(:func:`backbones.data.class_weights`):

* ``ce`` (the control): the pretraining's weighted cross-entropy
  (:class:`backbones.train.WeightedCrossEntropy`), continued;
* ``hard-examples``: the same cross-entropy, each image also weighted by its study's weight
  from :func:`hard_example_weights`: studies the current ensemble misclassifies count
  ``1 + boost`` times as much as the others (normalised to a mean of 1 per image);
* ``reinforce``: each study's answer is sampled from the member's study probability (MURA's
  rule: the mean of its images' abnormality probabilities), rewarded with one of the env's
  reward functions (:mod:`mura_env.rewards`) and reinforced with the expected reward under
  the member's own probability as baseline (:func:`reinforce_loss`); plus ``ce_weight``
  times the cross-entropy. The policy-gradient term's expected gradient is the gradient of
  the expected reward, which vanishes on a study the member is confidently wrong about (the
  studies this retraining is for), where cross-entropy still pulls; the cross-entropy also
  keeps the probabilities calibrated, which averaging and stacking the members rely on. So
  the default mixes both equally (``ce_weight = 1``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from backbones.part_attention import forward_with_parts
from backbones.study_batches import study_means
from backbones.train import WeightedCrossEntropy
from mura_env.rewards import RewardFn

#: The retraining methods.
METHODS = ("ce", "hard-examples", "reinforce")
#: Rewards a sampled answer can be scored with: those that depend on the answer.
ANSWER_REWARDS = ("correct", "signed", "cost_sensitive")


def hard_example_weights(wrong: np.ndarray, images_per_study: np.ndarray,
                         boost: float) -> np.ndarray:
    """Per-study loss weights that favour the studies the ensemble misclassifies.

    Args:
        wrong: bool ``(S,)``: the ensemble's study-level answer is wrong.
        images_per_study: int ``(S,)``: each study's number of images (a study's weight
            applies to each of its images).
        boost: extra weight of a misclassified study (>= 0; 0 gives all ones).

    Returns:
        float64 ``(S,)``: ``1 + boost * wrong``, scaled so that the mean weight per image is 1
        (the loss keeps the scale of plain cross-entropy).
    """
    if boost < 0:
        raise ValueError(f"boost must be >= 0, got {boost}")
    raw = 1.0 + boost * np.asarray(wrong, dtype=np.float64)
    images = np.asarray(images_per_study, dtype=np.float64)
    return raw * images.sum() / float((raw * images).sum())


def answer_log_probability(probability: torch.Tensor, answers: torch.Tensor) -> torch.Tensor:
    """``log P(answer)`` under a Bernoulli of ``probability``: float ``(S,)`` for answers
    ``(S,)`` 0/1 (probabilities clipped to ``[1e-6, 1 - 1e-6]``)."""
    p = probability.clamp(1e-6, 1 - 1e-6)
    return torch.where(answers.bool(), torch.log(p), torch.log1p(-p))


def reinforce_loss(probability: torch.Tensor, answers: torch.Tensor, rewards: torch.Tensor,
                   baseline: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """REINFORCE with a baseline on sampled study answers.

    Args:
        probability: float ``(S,)``: the member's abnormality probability of each study
            (differentiable).
        answers: 0/1 ``(S,)``: the answers sampled from ``probability``.
        rewards: float ``(S,)``: each answer's reward.
        baseline: float ``(S,)``: each study's baseline (no gradient flows into it).
        weights: float ``(S,)``: per-study weights (default 1).

    Returns:
        The scalar ``-mean(weights * (rewards - baseline) * log P(answers))``: a gradient step
        on it raises the probability of answers rewarded above their baseline.
    """
    advantage = (rewards - baseline).detach()
    w = torch.ones_like(advantage) if weights is None else weights.detach()
    return -(w * advantage * answer_log_probability(probability, answers)).mean()


def answer_rewards(reward: RewardFn, probability: torch.Tensor, labels: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """The reward of answering "normal" and of answering "abnormal" for each study:
    ``(r0, r1)``, float32 ``(S,)`` each, from ``reward(probability, answer, label)`` (an
    :mod:`mura_env.rewards` function, applied to NumPy arrays)."""
    p = probability.detach().cpu().numpy()
    y = labels.cpu().numpy()
    r0, r1 = (torch.tensor(np.broadcast_to(reward(p, np.full_like(y, a), y), y.shape),
                           dtype=torch.float32, device=probability.device) for a in (0, 1))
    return r0, r1


@dataclass
class RetrainLoss:
    """The loss of one retraining method (see the module docstring).

    Attributes:
        method: one of :data:`METHODS`.
        class_weights: float32 ``(7, 2)``: per-(body part, label) weights.
        study_weights: float32 ``(S_train,)`` per training study (``hard-examples``), indexed
            by the study index the batches carry; None for the other methods.
        reward: the reward function (``reinforce``).
        ce_weight: weight of the cross-entropy beside the policy-gradient term (``reinforce``).
        generator: the torch generator answers are sampled with (``reinforce``).
    """

    method: str
    class_weights: torch.Tensor
    study_weights: torch.Tensor | None = None
    reward: RewardFn | None = None
    ce_weight: float = 1.0
    generator: torch.Generator | None = None

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor, parts: torch.Tensor,
                 studies: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """The scalar loss of a batch of whole studies: ``logits`` ``(B, 2)``, ``labels``,
        ``parts`` and ``studies`` (each image's study index) int64 ``(B,)``; and figures to
        log (``reward``: the mean sampled reward, for ``reinforce``)."""
        extra = None
        if self.method == "hard-examples":
            assert self.study_weights is not None
            extra = self.study_weights[studies]
        ce = WeightedCrossEntropy(self.class_weights)(logits, labels, parts, extra)
        if self.method != "reinforce":
            return ce, {}
        assert self.reward is not None
        p_image = torch.softmax(logits.float(), dim=1)[:, 1]
        p_study, ids = study_means(p_image, studies)
        first = torch.zeros(int(studies.max()) + 1, dtype=torch.int64, device=studies.device)
        first[studies] = torch.arange(len(studies), device=studies.device)
        rows = first[ids]  # one image of each study: its label, body part and class weight
        study_labels = labels[rows]
        answers = torch.bernoulli(p_study.detach(), generator=self.generator)
        r0, r1 = answer_rewards(self.reward, p_study, study_labels)
        rewards = torch.where(answers.bool(), r1, r0)
        baseline = p_study.detach() * r1 + (1 - p_study.detach()) * r0
        pg = reinforce_loss(p_study, answers, rewards, baseline,
                            self.class_weights[parts[rows], study_labels])
        return pg + self.ce_weight * ce, {"reward": float(rewards.mean())}


def retrain_one_epoch(model: nn.Module, loss_fn: RetrainLoss,
                      optimizer: torch.optim.Optimizer,
                      scheduler: torch.optim.lr_scheduler.LRScheduler, loader: DataLoader,
                      study_of_image: torch.Tensor, device: torch.device, *,
                      log: Callable[[str, float, int], None] | None = None, step0: int = 0,
                      desc: str = "", progress: bool = False) -> dict[str, float]:
    """One pass of ``model`` over ``loader`` (batches ``(images, labels, parts, image index)``
    of whole studies) with ``loss_fn``: an optimizer and a scheduler step per batch.

    ``study_of_image``: int64 ``(N,)``, the training-study index of each image of the
    loader's dataset. ``log(tag, value, step)`` receives ``retrain/loss`` (and
    ``retrain/reward``) per step, steps counted from ``step0``.

    Returns ``{"loss": mean loss per batch, "steps": batches}`` (and ``"reward"``: the mean
    sampled reward, for ``reinforce``).
    """
    model.train()
    totals: dict[str, float] = {}
    steps = 0
    for images, labels, parts, index in tqdm(loader, desc=desc, disable=not progress,
                                             leave=False):
        images, labels, parts = images.to(device), labels.to(device), parts.to(device)
        logits = forward_with_parts(model, images, parts)
        loss, figures = loss_fn(logits, labels, parts, study_of_image[index].to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        figures = {"loss": float(loss.detach()), **figures}
        for key, value in figures.items():
            totals[key] = totals.get(key, 0.0) + value
            if log is not None:
                log(f"retrain/{key}", value, step0 + steps)
        steps += 1
    return {**{k: v / max(steps, 1) for k, v in totals.items()}, "steps": float(steps)}
