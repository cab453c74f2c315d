"""Logit distillation loss (Hinton et al.; ASMa eqs. 13–14).

References: docs/references.md#knowledge-distillation, #asma.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

KL_DIRECTIONS = ("teacher_student", "student_teacher")


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    tau: float,
    scale_tau_squared: bool = True,
    direction: str = "teacher_student",
) -> torch.Tensor:
    """τ² · KL(softmax(z_t/τ) ‖ softmax(z_s/τ)), averaged over the batch (eqs. 13–14).

    Two choices the paper leaves open, each with its alternative:

    * **direction.** ``"teacher_student"`` (default) is Hinton et al.'s KL(p_T ‖ p_S), the
      cross-entropy to the teacher's soft targets up to a constant. ASMa's eq. 14 prints
      KL(ŷ^S ‖ ŷ^T), the reverse (mode-seeking) divergence: ``"student_teacher"``.
    * **τ² factor.** It keeps gradient magnitudes comparable across temperatures (Hinton et
      al.); eq. 14 states the KL term without it, and the τ sweep (Fig. 4) is only
      meaningful with the usual scaling, which is therefore the default;
      ``scale_tau_squared=False`` leaves it out.

    >>> z = torch.randn(4, 10)
    >>> float(distillation_loss(z, z, 4.0)) < 1e-6
    True
    >>> a, b = torch.randn(4, 10), torch.randn(4, 10)
    >>> round(float(distillation_loss(a, b, 4.0) / distillation_loss(a, b, 4.0, False)), 4)
    16.0
    """
    if tau <= 0:
        raise ValueError(f"tau must be positive, got {tau}")
    if direction not in KL_DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(KL_DIRECTIONS)}, got {direction!r}")
    log_p_student = F.log_softmax(student_logits / tau, dim=1)
    log_p_teacher = F.log_softmax(teacher_logits / tau, dim=1)
    if direction == "teacher_student":  # sum p_T (log p_T - log p_S)
        kl = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)
    else:  # sum p_S (log p_S - log p_T)
        kl = F.kl_div(log_p_teacher, log_p_student, reduction="batchmean", log_target=True)
    return kl * tau * tau if scale_tau_squared else kl
