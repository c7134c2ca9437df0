"""Image, identity and temporal metrics (inversion fidelity, identity, stability, seams).

Conventions: images are ``[H,W,3]`` RGB, uint8 in 0..255 or float in [0,1] (uint8 is divided by
255); every per-frame metric is computed in [0,1] units on aligned crops, as the FeatureStyleEncoder
paper does (its Table 2: MSE 0.009, PSNR 26.64 dB, SSIM 0.818, LPIPS 0.122, ID 0.895).

``image``     ``mse(a, b)``, ``psnr(a, b)`` (data range 1, ``inf`` for identical inputs),
              ``ssim(a, b)`` (Gaussian window sigma 1.5, 11x11, K1=0.01, K2=0.03, mean over RGB),
              ``ssim_map(a, b)``, ``to_unit(image)`` (float64 in [0,1]).
``lpips``     ``LPIPS(net="alex"|"vgg", device="cpu")`` (``lpips(a, b) -> float``,
              ``distances(A, B) -> [N]``), ``lpips_distance(a, b, net="alex")``,
              ``LPIPSUnavailable`` (a weight file is missing: report "LPIPS unavailable", never a
              number), ``lpips_unavailable_reason(net) -> str | None``.
``identity``  ``IdentityEncoder(backend="dlib"|"arcface", detect=True)`` with ``embed(crop) ->
              unit vector`` ([128] dlib; [512] arcface, which needs its weights: see
              ``arcface``; ``last_detected``: the HOG detector found the face, else the fixed
              aligned-face box was used), ``identity_similarity(a, b, encoder=None) -> float``
              (cosine), ``cosine(u, v)``.
``arcface``   ``IResNet``, ``load(path)``, ``ArcFaceEmbedder(path=None).embed(image, landmarks68)``,
              ``available()`` (InsightFace's arcface_torch checkpoint layout).
``temporal``  ``identity_consistency(source_embeddings [N,D], output_embeddings [N,D]) ->
              {"tl_id", "tg_id", "id_to_source": [N], "id_to_source_mean"}`` (STIT),
              ``jitter(points [T,...,2]) -> px`` (std of second differences over time),
              ``FlowWarpingError()`` (streaming: ``add(src_t, src_t1, out_t, out_t1, flow=None)
              -> float``, ``errors``, ``mean``, ``last_flow``), ``MaskFlicker()`` (streaming:
              ``add(mask)``, ``reset()``, ``summary()``), ``mask_flicker(masks) -> {"iou",
              "boundary_change", "iou_mean", "boundary_change_mean"}``, ``boundary_band(mask,
              width=4)``, ``seam_error(output, source, mask, width=4) -> float`` (SSE seam).
``compare``   ``compare_videos(a_path, b_path, size=256, lpips_net="alex",
              identity_backend="dlib", ...) -> dict`` (A is the source/reference, B the output;
              summary + per-frame lists, JSON-serialisable, non-finite numbers as null).
``ravdess``/``evaluate``/``report``  the ``videoinv bench ravdess`` evaluation and its reports.
"""
