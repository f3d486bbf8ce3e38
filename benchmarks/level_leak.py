"""How many test-level resets show a layout the train levels already contain.

Level splits keep level *ids* disjoint; this checks what the environment actually draws. Each reset
is fingerprinted by MiniGrid's full grid encoding plus the agent's position and direction.

    python benchmarks/level_leak.py [--env MiniGrid-DoorKey-5x5-v0] [--train 3000] [--test 300]
"""

from __future__ import annotations

import argparse
import hashlib

from offrl_bench.envs import make_env


def fingerprints(env_id: str, split: str, resets: int, seed: int) -> list[str]:
    env = make_env(env_id, f"levels:{split}")
    found = []
    for i in range(resets):
        env.reset(seed=seed + i)
        world = env.unwrapped
        layout = world.grid.encode().tobytes() + bytes([*world.agent_pos, world.agent_dir])
        found.append(hashlib.sha1(layout).hexdigest())
    env.close()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="MiniGrid-DoorKey-5x5-v0")
    parser.add_argument("--train", type=int, default=3_000, help="train-level resets")
    parser.add_argument("--test", type=int, default=300, help="test-level resets")
    args = parser.parse_args()
    train = set(fingerprints(args.env, "train", args.train, 0))
    test = fingerprints(args.env, "test", args.test, 1_000_000)
    leaked = sum(layout in train for layout in test)
    print(f"{args.env}: {len(train)} distinct layouts in {args.train} train-level resets, {len(set(test))} in "
          f"{args.test} test-level resets; {leaked} of {args.test} test resets ({leaked / args.test:.0%}) repeat a "
          "train layout")


if __name__ == "__main__":
    main()
