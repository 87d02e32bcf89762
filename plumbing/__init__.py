"""The floor every stage stands on: input errors, atomic writes, run folders and manifests
(re-exported here), statistics (`plumbing.stats`) and the per-model runner (`plumbing.runner`).

    from plumbing import InputError, Manifest, atomic_write_json, prepare_out_dir

Nothing here knows about models, formats or benchmarks; every stage package may import it, and
it imports no stage. Importing `plumbing` itself is cheap (no numpy, pandas or torch).
"""

from plumbing.errors import InputError
from plumbing.files import (
    atomic_dir,
    atomic_path,
    atomic_write_json,
    atomic_write_parquet,
    atomic_write_text,
    iter_jsonl,
    require_file,
    to_jsonable,
)
from plumbing.runs import (
    MANIFEST,
    Manifest,
    check_out_dir,
    git_revision,
    package_versions,
    prepare_out_dir,
    read_manifest,
)

__all__ = [
    "MANIFEST",
    "InputError",
    "Manifest",
    "atomic_dir",
    "atomic_path",
    "atomic_write_json",
    "atomic_write_parquet",
    "atomic_write_text",
    "check_out_dir",
    "git_revision",
    "iter_jsonl",
    "package_versions",
    "prepare_out_dir",
    "read_manifest",
    "require_file",
    "to_jsonable",
]
