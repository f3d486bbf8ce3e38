"""SS-ORL: offline RL from mostly action-free trajectories by inverse-dynamics proxy labelling.

Zheng, Jiang, Kaufman, Grover & Pathak, "Semi-Supervised Offline Reinforcement Learning with
Action-Free Trajectories", ICML 2023. A meta-algorithm around any installed offline algorithm:

1. keep the actions of ``label_fraction`` of the episodes (chosen at random, or from the episodes
   below the median return, the paper's harder setting) and hide the others';
2. train an inverse dynamics model on the labelled part (best validation checkpoint);
3. label the action-free part with it and train the base algorithm on the union.

``unlabelled=drop`` is the paper's baseline: the base algorithm on the labelled episodes only.
``label_fraction`` is the share of the episodes with actions whose actions are used: on a fully
labelled (benchmark) dataset, the share of all episodes; on a genuinely action-free dataset, 1.0
uses every label it has.

    offrl-bench run --algo ssorl --dataset D --set base=iql --set label_fraction=0.1

Steps 1-3 run in :meth:`setup`, deterministically from the run's seed, so a resumed run redoes them
identically (seconds) and continues the base algorithm from its checkpoint.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from offrl_bench.algorithms.inverse_dynamics import IDMSettings, InverseDynamics
from offrl_bench.core import registry
from offrl_bench.core.api import EnvSpec, OfflineAlgorithm
from offrl_bench.core.config import (
    Fraction,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    UnitFloat,
    build_config,
    parse_set_options,
)
from offrl_bench.core.errors import OffrlBenchError, UsageError, one_of
from offrl_bench.data.action_free import (
    SELECTIONS,
    choose_labelled_episodes,
    hide_actions,
    select_episodes,
    with_proxy_actions,
)
from offrl_bench.data.datasets import TransitionDataset

UNLABELLED = ("proxy", "drop")
#: Offset between the run's seed and the seeds of the label selection and the IDM.
_IDM_SEED_OFFSET = 7_919


#: The IDM of the SS-ORL authors' released code (facebookresearch/ssorl, ``config/config.yaml`` and
#: ``inverse_model_seq.py``) as ``--set`` options: a 1024x1024 MLP with dropout 0.1, lr 1e-4, batches
#: of 1,024 for 100 updates validated every 10, on the frames alone. Not the default: at 100 updates
#: on Pendulum its proxy labels are ten times worse than this project's IDM's (README, SS-ORL).
PAPER_IDM = (("idm_width", "1024"), ("idm_depth", "2"), ("idm_dropout", "0.1"), ("idm_lr", "0.0001"),
             ("idm_batch_size", "1024"), ("idm_updates", "100"), ("idm_eval_every", "10"),
             ("idm_frame_differences", "false"))


@dataclass
class SSORLConfig:
    base: str = "iql"
    #: the base algorithm's config, as comma-separated key=value pairs ("expectile=0.9,beta=3").
    base_set: str = ""
    label_fraction: Fraction = 0.1
    selection: str = "random"
    unlabelled: str = "proxy"
    # Inverse dynamics model: window k=1 as in the paper's D4RL experiments; an MLP sized for CPU
    # scale (10k steps of a 256x256 MLP take about 10 s on one core).
    window: NonNegativeInt = 1
    idm_width: PositiveInt = 256
    idm_depth: PositiveInt = 2
    idm_ensemble: PositiveInt = 1
    idm_lr: PositiveFloat = 1e-3
    idm_batch_size: PositiveInt = 256
    idm_updates: PositiveInt = 10_000
    idm_eval_every: PositiveInt = 250
    idm_validation_fraction: Fraction = 0.1
    idm_frame_differences: bool = True  # not in the paper's IDM: "false" gives it the frames alone
    idm_dropout: UnitFloat = 0.0  # on the IDM's hidden units while training (PAPER_IDM: 0.1)

    def __post_init__(self) -> None:
        if self.selection not in SELECTIONS:
            raise ValueError(f"unknown selection '{self.selection}'; {one_of(SELECTIONS)}")
        if self.unlabelled not in UNLABELLED:
            raise ValueError(f"unknown unlabelled '{self.unlabelled}'; {one_of(UNLABELLED)}")
        if self.selection == "low_return" and self.label_fraction > 0.5:
            raise ValueError(f"selection low_return labels episodes below the median return, so label_fraction "
                             f"must be <= 0.5, got {self.label_fraction}")
        if self.base == SSORL.name:
            raise ValueError("base cannot be ssorl itself")
        try:
            base = registry.algorithm_class(self.base)
            if not issubclass(base, OfflineAlgorithm):
                raise UsageError(f"base '{self.base}' is not an offline algorithm")
            self.base_config()
        except OffrlBenchError as exc:
            raise ValueError(str(exc)) from None

    def base_config(self) -> Any:
        options = [pair for pair in self.base_set.split(",") if pair.strip()]
        return build_config(registry.algorithm_class(self.base), parse_set_options(options))

    def idm_settings(self) -> IDMSettings:
        return IDMSettings(self.window, self.idm_width, self.idm_depth, self.idm_ensemble, self.idm_lr,
                           self.idm_batch_size, self.idm_updates, self.idm_eval_every, self.idm_validation_fraction,
                           self.idm_frame_differences, self.idm_dropout)


class SSORL(OfflineAlgorithm):
    name = "ssorl"
    action_spaces = ("discrete", "continuous")
    needs_actions = False
    config_class = SSORLConfig

    @classmethod
    def replay_budget(cls, config: SSORLConfig, action_kind: str, budget: int) -> int:
        # the inverse dynamics model trains in setup(), whole; then the base algorithm's updates
        return registry.algorithm_class(config.base).replay_budget(config.base_config(), action_kind, budget)

    def __init__(self, spec: EnvSpec, config: SSORLConfig, seed: int, device: str = "cpu") -> None:
        super().__init__(spec, config, seed, device)
        base_class = registry.algorithm_class(config.base)
        self.base = base_class(spec, config.base_config(), seed, device)
        self.episodic = base_class.episodic
        self.trains = base_class.trains
        self.idm = InverseDynamics(spec, config.idm_settings(), seed + _IDM_SEED_OFFSET, self.device)
        self.diagnostics: dict[str, float] = {}
        self.training_data: TransitionDataset | None = None

    @classmethod
    def supported_action_spaces(cls, config: SSORLConfig) -> tuple[str, ...]:
        return registry.algorithm_class(config.base).action_spaces

    @classmethod
    def supported_image_action_spaces(cls, config: SSORLConfig) -> tuple[str, ...]:
        return registry.algorithm_class(config.base).supported_image_action_spaces(config.base_config())

    @classmethod
    def leaderboard_name(cls, config: SSORLConfig) -> str:
        suffix = ("" if config.selection == "random" else f", {config.selection}") + (
            "" if config.idm_frame_differences else ", idm frames only")
        changed = [f"{field.name.removeprefix('idm_')}={getattr(config, field.name):g}"
                   for field in dataclasses.fields(config) if (field.name.startswith("idm_") or field.name == "window")
                   and field.name != "idm_frame_differences" and getattr(config, field.name) != field.default]
        if changed and config.unlabelled != "drop":  # an IDM of other settings: a row of its own
            suffix += f", idm {' '.join(changed)}"
        if config.unlabelled == "drop":
            return f"{config.base} (labelled only{suffix})"
        return f"ssorl({config.base}{suffix})"

    @classmethod
    def leaderboard_columns(cls, config: SSORLConfig) -> dict[str, Any]:
        return {"label_fraction": config.label_fraction}

    def setup(self, dataset: TransitionDataset) -> None:
        config = self.config
        rng = np.random.default_rng(self.seed + _IDM_SEED_OFFSET)
        keep = choose_labelled_episodes(dataset, config.label_fraction, config.selection, rng)
        truth, truth_known = dataset.actions, dataset.labelled
        dataset = hide_actions(dataset, keep)  # from here on, the hidden actions are gone
        labelled = dataset.labelled
        self.diagnostics = {"labelled_transitions": float(labelled.float().mean())}
        if config.unlabelled == "drop":
            self.training_data = select_episodes(dataset, keep)
        elif bool(labelled.all()):
            self.training_data = dataclasses.replace(dataset, labelled=None)
        else:
            self.idm.fit(dataset, torch.nonzero(labelled).squeeze(1))
            unlabelled = torch.nonzero(~labelled).squeeze(1)
            self.training_data = with_proxy_actions(dataset, self.idm.label(dataset, unlabelled))
            self.diagnostics["idm_validation_error"] = self.idm.validation_error
            self.diagnostics["idm_best_update"] = float(self.idm.best_update)
            if truth_known is None or bool(truth_known[unlabelled].all()):
                # For the report only: how good the proxy labels are, where the benchmark knows the truth.
                self.diagnostics["proxy_label_error"] = self.idm.error(dataset, unlabelled, truth[unlabelled])
        self.base.setup(self.training_data)

    def sample(self, dataset: TransitionDataset, batch_size: int, generator: torch.Generator) -> Any:
        base_batch_size = int(getattr(self.base.config, "batch_size", batch_size))
        return self.base.sample(self.training_data, base_batch_size, generator)

    def update(self, batch) -> dict[str, float]:
        return {**self.base.update(batch), **self.diagnostics}

    def act(self, observations: np.ndarray, *slots) -> np.ndarray:
        return self.base.act(observations, *slots)

    def start_episode(self, slot: int) -> None:
        self.base.start_episode(slot)

    def observe_rewards(self, slots: list[int], rewards: np.ndarray) -> None:
        self.base.observe_rewards(slots, rewards)

    def state_dict(self) -> dict:
        return {"base": self.base.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.base.load_state_dict(state["base"])
