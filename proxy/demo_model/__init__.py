"""The tiny GPT-OSS demo model: trained here to speak Harmony, served anywhere by real vLLM.

`ensure_demo_model()` expands the committed compact weights into a Hugging Face checkpoint
directory (cached) that `harmony-proxy serve` loads when no model is given.
"""

from proxy.demo_model.loader import default_cache_dir, ensure_demo_model

DEMO_MODEL_NAME = "gpt-oss-demo"

__all__ = ["DEMO_MODEL_NAME", "default_cache_dir", "ensure_demo_model"]
