"""The toy world: codecot's embedded, offline, seeded task generator (the default data).

    from synthesis.toyworld import ToyWorld, FAMILIES, toy_teacher_response
    world = ToyWorld(seed=0)                  # default OOD families: DEFAULT_OOD_FAMILIES
    seeds = world.generate(2000)              # list[Seed], ~80/10/10 train/val/test + ood
    world.generate(200, split="test")         # exactly 200 seeds of one split
    world.generate_splits({"train": 2000, "test": 200, "ood": 200})
    toy_teacher_response(seeds[0])            # "[Analysis]\\n...\\n[Solution]\\n```python ..."

Families (`FAMILIES`, name -> Family): composed list pipelines `pipe_<terminal>` (1-3 stages
from `pipeline.STAGES`, then one of `pipeline.TERMINALS`) plus standalone families over strings,
lists, numbers and dicts (`fam_strings.py`, `fam_lists.py`, `fam_misc.py`). See `world.py` for the split policy and `names.py`
for how function and argument names are built.
"""

# importing the family modules registers their families in FAMILIES (pipelines first)
from synthesis.toyworld import fam_lists, fam_misc, fam_strings, pipeline  # noqa: F401
from synthesis.toyworld.core import FAMILIES, Family, Task
from synthesis.toyworld.world import (
    DEFAULT_OOD_FAMILIES,
    DIFFICULTY,
    TOY_KEY,
    Instance,
    ToyWorld,
    toy_teacher_response,
)

__all__ = [
    "DEFAULT_OOD_FAMILIES",
    "DIFFICULTY",
    "FAMILIES",
    "TOY_KEY",
    "Family",
    "Instance",
    "Task",
    "ToyWorld",
    "toy_teacher_response",
]
