"""Build the small fixture campaign the tests render the results chapter from (``tests/data/campaign``).

The real campaign's machinery (``campaign.run``) with the ``smoke`` profile and seed 0: one point of each of
notebooks 2 (all four methods), 3 and 4, target mmlu, so that the fixture has the real campaign's layout and files;
the executed notebooks and run logs are then dropped, leaving params, done and results JSON. Takes ~10 min on
2 cores when they are free:
``python scripts/make_campaign_fixture.py [--out tests/data/campaign]``.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from retain_utils.batch import campaign

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "campaign"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    campaign.PROFILE, campaign.SEEDS = "smoke", (0,)
    campaign.GRIDS = {
        "02_rl_vs_sft": {"target": ["mmlu"], "methods": [["sft", "self_sft", "grpo", "reinforce"]]},
        "03_ablations": {"target": ["mmlu"], "ablations": [["kl", "on_policy"]]},
        "04_iterative_sft": {"target": ["mmlu"], "intervals": [[4, 0]]},
    }
    print(campaign.run(args.out, allow_mixed=True))
    for path in sorted(args.out.rglob("*")):
        if path.name == "runs" and path.is_dir():
            shutil.rmtree(path)
        elif path.suffix == ".ipynb" or path.name == ".lock":
            path.unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
