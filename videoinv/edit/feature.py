"""The feature-tensor correction of FeatureStyleEncoder (the paper's Eq. 1).

Editing ``w -> w~`` must also move the encoder's feature tensor F, or the image keeps the old
face's details: ``F~ = F + G_k(w~) - G_k(w)``, where ``G_k`` is the generator's activation entering
styled conv k (k = 5: [B,512,16,16]). The edited image is ``G(w~)`` with ``F~`` injected at k.
"""

from __future__ import annotations

from typing import Sequence

import torch


def corrected_feature(G, w: torch.Tensor, F: torch.Tensor, w_edited: torch.Tensor, k: int = 5,
                      noise: Sequence[torch.Tensor] | None = None, noise_seed: int | None = None) -> torch.Tensor:
    """``F + G.features_at(w_edited) - G.features_at(w)``, both feature passes in one batch.

    ``w``, ``w_edited``: W+ [B,n_latent,512]; ``F``: [B,C,16,16] (k = 5). ``noise`` is one set
    for the whole batch ([1,...] tensors) or one per sample ([B,...])."""
    if noise is None and noise_seed is not None:
        noise = G.make_noise(noise_seed)
    if noise is not None:  # the two passes share each sample's noise
        noise = [n if n.shape[0] == 1 else torch.cat([n, n]) for n in noise]
    both = G.features_at(torch.cat([w, w_edited]), k=k, noise=noise)
    f_w, f_edited = both.chunk(2)
    return F + f_edited - f_w


def feature_edit(G, w: torch.Tensor, F: torch.Tensor, w_edited: torch.Tensor, k: int = 5,
                 noise: Sequence[torch.Tensor] | None = None, noise_seed: int | None = None) -> torch.Tensor:
    """The edited image [B,3,H,W]: ``G.synthesize(w_edited, feature=corrected_feature(...), k)``,
    with the layers before k run once for both latents (``G.edit_head``). Use one noise set
    (``noise`` or ``noise_seed``) for every pass, as for a video."""
    if noise is None and noise_seed is not None:
        noise = G.make_noise(noise_seed)
    F_edited, skip = G.edit_head(w, w_edited, F, k=k, noise=noise)
    return G.synthesize_from(w_edited, F_edited, skip, k=k, noise=noise)
