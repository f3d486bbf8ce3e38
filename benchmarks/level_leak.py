"""How many test-level resets show a layout the train levels already contain.

Level splits keep level *ids* disjoint; this checks what the environment actually draws, twice:
with ids alone (each id of the default ranges reset directly) and through the ``levels`` wrapper,
which skips test ids whose layout a train or val level shows. Each reset is fingerprinted by what
the environment shows (``level_fingerprint``): MiniGrid's full grid encoding plus the agent's
position and direction, Procgen's first frame. It then counts *maps* (``map_fingerprint``: the grid
without the agent's start pose), which is what a new level means: a test reset whose map a train
or val level shows differs from it in the start pose alone.

With ``--policy expert`` (or ``medium``) it also scores the shipped behaviour policy on each split,
which tells how much of a gap the layouts themselves leave to find.

    python benchmarks/level_leak.py [--env MiniGrid-DoorKey-6x6-v0] [--test 1000] [--policy expert --episodes 200]
"""

from __future__ import annotations

import argparse

import numpy as np

from offrl_bench.core.errors import UsageError
from offrl_bench.core.rollout import run_episodes
from offrl_bench.data.behaviour import load_sb3_policy
from offrl_bench.envs import make_env
from offrl_bench.envs.level_splits import DEFAULT_RANGES, SPLITS, level_fingerprint, map_fingerprint


def layout(env, level: int | None = None) -> tuple[str, str]:
    """(layout with the start pose, map alone) of the level ``env`` resets into."""
    env.reset(seed=level)
    return level_fingerprint(env), map_fingerprint(env)


def report(what: str, drawn: list[tuple[str, str]], earlier: set[tuple[str, str]], resets: int) -> None:
    layouts, maps = {pose for pose, _ in earlier}, {plan for _, plan in earlier}
    leaked = sum(pose in layouts for pose, _ in drawn)
    known = sum(plan in maps for _, plan in drawn)
    print(f"{what}: {leaked} of {resets} resets ({leaked / resets:.0%}) repeat a layout, {len({p for p, _ in drawn})} "
          f"distinct; {known} ({known / resets:.0%}) show a map the train and val levels show, "
          f"{len({m for _, m in drawn})} distinct maps")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="MiniGrid-DoorKey-6x6-v0")
    parser.add_argument("--test", type=int, default=1_000, help="test-level resets")
    parser.add_argument("--policy", choices=("expert", "medium"), help="also score this behaviour policy per split")
    parser.add_argument("--episodes", type=int, default=200, help="episodes per split for --policy")
    args = parser.parse_args()
    if args.policy:
        policy = load_sb3_policy(args.env, args.policy, np.random.default_rng(12_345))  # used if it samples
        for split in SPLITS:
            returns = np.array([episode.episode_return for episode in run_episodes(
                lambda split=split: make_env(args.env, f"levels:{split}"), policy, args.episodes, seed=12_345)])
            print(f"{args.policy} behaviour policy on {split} levels: return {returns.mean():.3f} "
                  f"± {returns.std(ddof=1) / np.sqrt(len(returns)):.3f} (s.e.), goal reached in "
                  f"{(returns > 0).mean():.0%} of {args.episodes} episodes")
    env = make_env(args.env)
    earlier = {layout(env, level) for split in ("train", "val")
               for level in range(DEFAULT_RANGES[split][0], DEFAULT_RANGES[split][1] + 1)}
    print(f"{args.env}: the train and val levels show {len({p for p, _ in earlier})} distinct layouts (map and "
          f"start pose) on {len({m for _, m in earlier})} distinct maps")
    test_ids = np.random.default_rng(0).integers(*DEFAULT_RANGES["test"], size=args.test, endpoint=True)
    report("test ids alone", [layout(env, int(level)) for level in test_ids], earlier, args.test)
    try:
        wrapped = make_env(args.env, "levels:test")
    except UsageError as exc:
        print(f"levels:test wrapper: refused: {exc}")
        return
    report("levels:test wrapper", [layout(wrapped, seed) for seed in range(args.test)], earlier, args.test)


if __name__ == "__main__":
    main()
