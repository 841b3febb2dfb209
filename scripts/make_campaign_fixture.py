"""Build the small fixture campaign the tests render the results chapter from (``tests/data/campaign``).

The real campaign's machinery (``campaign.run``) with the ``smoke`` profile and seed 0: one point of each of
notebooks 2 (SFT, Self-SFT, GRPO), 3 (the campaign's ablations: GRPO's KL term, REINFORCE, on-policy data) and 4,
target mmlu, at the trainers' default learning rates written as a calibration choice, so that the fixture has the
real campaign's layout and files; the executed notebooks and run logs are then dropped, leaving params, done and
results JSON. Takes ~10 min on 2 cores when they are free:
``python scripts/make_campaign_fixture.py [--out tests/data/campaign]``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from retain_utils.batch import campaign
from retain_utils.chapters import calibration, profiles
from retain_utils.core.training.config import DEFAULT_LR

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "campaign"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    campaign.PROFILE, campaign.SEEDS = "smoke", (0,)
    # one set of held-out questions for every notebook, as the campaign's one budget gives: chapter 5 pairs notebook
    # 3's REINFORCE with notebook 2's GRPO question by question
    questions = {"n_eval": [profiles.values("02_rl_vs_sft", "smoke")["n_eval"]]}
    campaign.GRIDS = {
        "02_rl_vs_sft": {"target": ["mmlu"], "methods": [["sft", "self_sft", "grpo"]]},
        "03_ablations": {"target": ["mmlu"], "ablations": [profiles.values("03_ablations", "campaign")["ablations"]],
                         **questions},
        "04_iterative_sft": {"target": ["mmlu"], "intervals": [[1, 0]], **questions},
    }
    steps = profiles.values("02_rl_vs_sft", "smoke")["steps"]
    with tempfile.TemporaryDirectory() as choice:
        calibration.write_choice(Path(choice) / calibration.CHOICE_FILE, [], [
            calibration.Choice("mmlu", method, DEFAULT_LR[kind], steps, False, "the trainers' default (a fixture)")
            for method, kind in (("sft", "sft"), ("grpo", "rl"))])
        print(campaign.run(args.out, allow_mixed=True, calibration_dir=choice))
    for path in sorted(args.out.rglob("*")):
        if path.name == "runs" and path.is_dir():
            shutil.rmtree(path)
        elif path.suffix == ".ipynb" or path.name == ".lock":
            path.unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
