"""Model loading, sampling and the built-in shapes models. Importing this package loads nothing heavy.

    workers.models.specs     parse_spec / resolve_vlm / resolve_clip: one resolver for scoring and training
    workers.models.sampling  sample_answers: N answers per item in one batched, left-padded generate
    workers.models.builtin   lookfirst:shapes-vlm and lookfirst:shapes-clip, built here on CPU, and `report`
    workers.models.tiny      tiny random-weight models and forced answers, for tests
"""
