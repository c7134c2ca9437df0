"""Image, identity and temporal metrics (inversion fidelity, identity, stability, seams).

Conventions: images are ``[H,W,3]`` RGB, uint8 in 0..255 or float in [0,1] (uint8 is divided by
255); every per-frame metric is computed in [0,1] units on aligned crops, as the FeatureStyleEncoder
paper does (its Table 2: MSE 0.009, PSNR 26.64 dB, SSIM 0.818, LPIPS 0.122, ID 0.895).

``image``     ``mse(a, b)``, ``psnr(a, b)`` (data range 1, ``inf`` for identical inputs),
              ``ssim(a, b)`` (Gaussian window sigma 1.5, 11x11, K1=0.01, K2=0.03, mean over RGB),
              ``to_unit(image)`` (float64 in [0,1]).
``lpips``     ``LPIPS(net="alex"|"vgg")`` (callable on two images -> float), ``lpips_distance(a, b,
              net="alex")``, ``LPIPSUnavailable`` (raised when the torchvision backbone checkpoint
              or the lpips linear weights are missing: report "LPIPS unavailable", never a
              number), ``lpips_unavailable_reason(net) -> str | None``.
``identity``  ``IdentityEncoder(backend="dlib")`` with ``embed(crop) -> [D] unit vector``,
              ``identity_similarity(a, b, encoder=None) -> float`` (cosine), ``cosine(u, v)``.
``temporal``  ``identity_consistency(source_embeddings, output_embeddings) -> {"tl_id", "tg_id",
              "id_to_source": [per frame], "id_to_source_mean"}`` (STIT's TL-ID/TG-ID),
              ``jitter(points) -> px`` (std of second differences over time),
              ``FlowWarpingError`` (streaming: ``add(src_t, src_t1, out_t, out_t1) -> float``,
              ``mean``), ``mask_flicker(masks) -> {"iou": [...], "boundary_change": [...]}``,
              ``seam_error(output, source, mask, band=3) -> float`` (SSE seam, 0..1 units).
``compare``   ``compare_videos(a_path, b_path, size=256, ...) -> dict`` (summary + per-frame lists,
              JSON-serialisable; A is the reference/source, B the output).
"""
