"""The layer cache (``--cache``): deterministic keys computed before the build runs
(:mod:`.keys`, :mod:`.sources`, :mod:`.chain`), one store interface with a registry and
an OCI-layout implementation (:mod:`.store`, :mod:`.layout_store`), and the build's
view of it (:mod:`.layer_cache`): parallel verified probes, background pushes.
"""

from pykaniko.executor.cache.chain import KeyInputs, StageKeys, StepKey, stage_keys, step_text
from pykaniko.executor.cache.keys import copy_key, run_key, seed_key, volume_key, workdir_key
from pykaniko.executor.cache.layer_cache import LayerCache, Probe
from pykaniko.executor.cache.layout_store import LayoutCacheStore
from pykaniko.executor.cache.setup import cache_repository, open_layer_cache, parse_ttl
from pykaniko.executor.cache.store import CacheEntry, CacheStore, RegistryCacheStore

__all__ = [
    "CacheEntry",
    "CacheStore",
    "KeyInputs",
    "LayerCache",
    "LayoutCacheStore",
    "Probe",
    "RegistryCacheStore",
    "StageKeys",
    "StepKey",
    "cache_repository",
    "copy_key",
    "open_layer_cache",
    "parse_ttl",
    "run_key",
    "seed_key",
    "stage_keys",
    "step_text",
    "volume_key",
    "workdir_key",
]
