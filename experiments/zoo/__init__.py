"""A zoo of synthetic worlds written independently of the estimator (issue 12), each with ground truth.

`sendtime simulate` is one world whose assumptions the estimator was tuned on. The zoo's worlds differ
in structure, not only in parameters: continuous personal habits with one to three bumps, weekends later
for some, e-mail read hours later while SMS is seen at once, SMS habits of their own or shared, brand
blasts at fixed local times in the brand's zone plus triggered sends, soft and hard bounces,
unsubscribes, machine opens with and without a flag, international numbers, events-only exports and
40% unknown zones. Each writes the export plus `ground_truth/` as `sendtime simulate` does:

    python -m sendtime.experiments.zoo --world inbox --out DIR --subscribers 4000 --weeks 8 --seed 0
    python -m sendtime.experiments.bench_capture --zoo all --seeds 0 --subscribers 4000 --weeks 8
"""

from sendtime.experiments.zoo.history import generate
from sendtime.experiments.zoo.worlds import WORLDS, World, world

__all__ = ["WORLDS", "World", "generate", "world"]
