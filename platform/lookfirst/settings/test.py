"""Tests only speed up base (and pick the machine's servers when it has them)."""
import os

from lookfirst.runtime import testenv

# Test runs (and the workers they start, which inherit this) get their own broker keys.
os.environ.setdefault("LOOKFIRST_BROKER_PREFIX", f"lookfirst-test-{os.getpid()}:")

testenv.configure()

from lookfirst.settings.base import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOOKFIRST_MAX_UPLOAD_BYTES = 2 * 1024**2  # small, so the refusal path is cheap to test
