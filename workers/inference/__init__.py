"""Model inference used by scoring tasks: answer sampling backends and CLIP embeddings.

Models load lazily, once per worker process (see `get_sampler`, `get_clip`).
"""
