"""STORI type 2.1 for Atari: action-independent random events written into the console RAM.

Requires the ``atari`` extra (``ale-py``). Use STORI's settings — frameskip 1 and no sticky
actions — so that ``p`` is a per-frame probability as in the paper, e.g.::

    make_env("ALE/Boxing-v5", "stori:events:mode=boxing-colorflip,p=0.001",
             frameskip=1, repeat_action_probability=0.0)

Modes (RAM addresses from STORI's game maps; decimal):

==============================  ================================================================
``breakout-block-cancel``       on a frame where blocks (RAM 0-35) were destroyed, with prob. p
                                they are restored (the ball bounces back; reward kept)
``breakout-block-cancel-noreward``  same, and the step's reward is set to 0
``breakout-block-regen``        on a frame where blocks were destroyed, with prob. p one
                                destroyed block byte of this episode is restored to its start value
``boxing-colorflip``            with prob. p per frame the two boxers' colours (RAM 1, 2) swap;
                                the swap persists until the next flip
``boxing-hit-cancel``           when exactly one score (RAM 18 player, 19 enemy) changed, with
                                prob. p the point is taken back and the reward set to 0
``boxing-displace``             with prob. p the boxers jump to each other's start corners
                                (x RAM 32/33, y RAM 34/35)
``gopher-hole-stays``           when the farmer fills a hole (fire actions), with prob. p the
                                tunnel bytes (RAM 0-23) under the farmer (RAM 31) stay dug
``gopher-hole-stays-noreward``  same, and the reward for filling is set to 0
``gopher-carrot-removal``       once per episode, after frame 238, with prob. p per frame a
                                visible carrot (bits of RAM 52) disappears
``bankheist-bomb-dud``          a newly dropped bomb (RAM 12) is taken back with prob. p
``bankheist-fuel-leak``         once per city (RAM 0), with prob. p the tank (RAM 86; 0 = full,
                                25 = empty) drops to half
``bankheist-city-switch``       with prob. p the robber is teleported to another city (RAM 0)
``bankheist-bank-empty``        robbing a bank (slots RAM 24-26 leaving state 253) pays 0 with prob. p
==============================  ================================================================

Differences from STORI's reference code, on purpose: randomness comes from the wrapper's seeded
generator instead of NumPy's/Python's global RNGs; ``breakout-block-regen`` acts only on frames
where a block was hit (the reference can fire on every frame while any block is missing); the
carrot removal keeps at least one carrot and counts frames per episode (the reference uses the
global frame counter, so it only acts in the first episode).
"""

from __future__ import annotations

import numpy as np

from offrl_bench.envs.stori import StochasticityWrapper, _probability, _record

# Gopher: the farmer walks x in [19, 148]; each of the 6 tunnel columns covers a sixth of that.
_GOPHER_X_MIN, _GOPHER_X_MAX = 19, 148
_GOPHER_FIRE_ACTIONS = (1, 5, 6, 7)
_GOPHER_CARROT_DELAY = 238
_BANKHEIST_HALF_TANK = 12
_BANKHEIST_BANK = 253

_ALE_IDS = {"breakout": "Breakout", "boxing": "Boxing", "gopher": "Gopher", "bankheist": "BankHeist"}
MODES = {
    "breakout": ("block-cancel", "block-cancel-noreward", "block-regen"),
    "boxing": ("colorflip", "hit-cancel", "displace"),
    "gopher": ("hole-stays", "hole-stays-noreward", "carrot-removal"),
    "bankheist": ("bomb-dud", "fuel-leak", "city-switch", "bank-empty"),
}
ALL_MODES = tuple(f"{game}-{mode}" for game, modes in MODES.items() for mode in modes)


class AtariRandomEvents(StochasticityWrapper):
    """Type 2.1 on ALE games through ``ale.setRAM`` (see the module docstring for the modes)."""

    def __init__(self, env, mode: str, p: float = 0.25) -> None:
        super().__init__(env)
        self.score_echo = 0.0
        if mode not in ALL_MODES:
            raise ValueError(f"unknown events mode '{mode}'; one of: state, obs-noise, pixels, {', '.join(ALL_MODES)}")
        game, self.mode = mode.split("-", 1)
        actual = str(getattr(env.unwrapped, "_game", "")).replace("_", "")  # ale-py names it "bank_heist"
        if not hasattr(env.unwrapped, "ale") or actual != game:
            name = env.spec.id if env.spec else type(env.unwrapped).__name__
            raise ValueError(f"mode={mode} needs the Atari game {_ALE_IDS[game]} (ale-py, e.g. "
                             f"ALE/{_ALE_IDS[game]}-v5 with frameskip=1); got {name}")
        self.game = game
        self.p = _probability("p", p)
        self._step = getattr(self, f"_{game}_{self.mode.replace('-', '_')}")

    @property
    def ale(self):
        return self.env.unwrapped.ale

    def _ram(self) -> np.ndarray:
        return self.ale.getRAM().copy()

    def _chance(self) -> bool:
        return self.active and self.rng.random() < self.p

    def reset(self, *, seed=None, options=None):
        observation, info = super().reset(seed=seed, options=options)
        self.start_ram = self._ram()
        self.flipped = False  # boxing-colorflip
        self.carrot_removed = False  # gopher-carrot-removal
        self.leaked_cities: set[int] = set()  # bankheist-fuel-leak
        self.score_echo = 0.0  # reward ALE will report next frame because a score was written back
        return observation, info

    def step(self, action):
        observation, reward, terminated, truncated, info, event = self._step(action)
        # ALE scores by comparing the score RAM with the previous frame's: after a score was written
        # back, the next frame reports the opposite reward. That echo is not a game event: remove it.
        reward, self.score_echo = reward - self.score_echo, 0.0
        return observation, reward, terminated, truncated, _record(info, random_event=bool(event))

    # Breakout -------------------------------------------------------------------------------------
    def _restore_hit_blocks(self, action, zero_reward: bool):
        before = self._ram()
        observation, reward, terminated, truncated, info = self.env.step(action)
        hit = np.flatnonzero(self._ram()[:36] != before[:36])
        event = len(hit) > 0 and self._chance()
        if event:
            for index in hit:
                self.ale.setRAM(int(index), int(before[index]))
            reward = 0.0 if zero_reward else reward
        return observation, reward, terminated, truncated, info, event

    def _breakout_block_cancel(self, action):
        return self._restore_hit_blocks(action, zero_reward=False)

    def _breakout_block_cancel_noreward(self, action):
        return self._restore_hit_blocks(action, zero_reward=True)

    def _breakout_block_regen(self, action):
        before = self._ram()
        observation, reward, terminated, truncated, info = self.env.step(action)
        ram = self._ram()
        missing = np.flatnonzero(ram[:36] != self.start_ram[:36])
        event = bool((ram[:36] != before[:36]).any()) and len(missing) > 0 and self._chance()
        if event:
            index = int(self.rng.choice(missing))
            self.ale.setRAM(index, int(self.start_ram[index]))
        return observation, reward, terminated, truncated, info, event

    # Boxing ---------------------------------------------------------------------------------------
    def _boxing_colorflip(self, action):
        event = self._chance()
        self.flipped ^= event
        player, enemy = int(self.start_ram[1]), int(self.start_ram[2])
        self.ale.setRAM(1, enemy if self.flipped else player)
        self.ale.setRAM(2, player if self.flipped else enemy)
        return (*self.env.step(action), event)

    def _boxing_hit_cancel(self, action):
        before = self._ram()
        observation, reward, terminated, truncated, info = self.env.step(action)
        changed = [a for a in (18, 19) if self._ram()[a] != before[a]]
        event = len(changed) == 1 and self._chance()
        if event:
            self.ale.setRAM(changed[0], int(before[changed[0]]))
            reward, self.score_echo = 0.0, -float(reward)
        return observation, reward, terminated, truncated, info, event

    def _boxing_displace(self, action):
        event = self._chance()
        if event:
            start = self.start_ram
            for address, source in ((32, 33), (33, 32), (34, 35), (35, 34)):
                self.ale.setRAM(address, int(start[source]))
        return (*self.env.step(action), event)

    # Gopher ---------------------------------------------------------------------------------------
    def _keep_holes(self, action, zero_reward: bool):
        before = self._ram()
        observation, reward, terminated, truncated, info = self.env.step(action)
        filled = np.flatnonzero(self._ram()[:24] != before[:24]) if action in _GOPHER_FIRE_ACTIONS else []
        width = (_GOPHER_X_MAX - _GOPHER_X_MIN + 1) / 6
        farmer_x = int(self._ram()[31])
        under_farmer = [i for i in filled if _GOPHER_X_MIN + width * (i % 6) <= farmer_x
                        <= _GOPHER_X_MIN + width * (i % 6 + 1) - 1]
        event = len(under_farmer) > 0 and self._chance()
        if event:
            for index in under_farmer:
                self.ale.setRAM(int(index), int(before[index]))
            reward = 0.0 if zero_reward else reward
        return observation, reward, terminated, truncated, info, event

    def _gopher_hole_stays(self, action):
        return self._keep_holes(action, zero_reward=False)

    def _gopher_hole_stays_noreward(self, action):
        return self._keep_holes(action, zero_reward=True)

    def _gopher_carrot_removal(self, action):
        observation, reward, terminated, truncated, info = self.env.step(action)
        visible = [bit for bit in range(3) if (int(self._ram()[52]) >> bit) & 1]
        event = (not self.carrot_removed and self.ale.getEpisodeFrameNumber() >= _GOPHER_CARROT_DELAY
                 and len(visible) >= 2 and self._chance())
        if event:
            bit = int(self.rng.choice(visible))
            self.ale.setRAM(52, int(self._ram()[52]) & ~(1 << bit) & 0xFF)
            self.carrot_removed = True
        return observation, reward, terminated, truncated, info, event

    # BankHeist ------------------------------------------------------------------------------------
    def _bankheist_bomb_dud(self, action):
        before = self._ram()
        observation, reward, terminated, truncated, info = self.env.step(action)
        ram = self._ram()
        event = ram[12] != before[12] and ram[12] != self.start_ram[12] and self._chance()
        if event:
            self.ale.setRAM(12, int(before[12]))
        return observation, reward, terminated, truncated, info, event

    def _bankheist_fuel_leak(self, action):
        observation, reward, terminated, truncated, info = self.env.step(action)
        city = int(self._ram()[0]) % 4
        event = city not in self.leaked_cities and self._chance()
        if event:
            self.leaked_cities.add(city)
            if _BANKHEIST_HALF_TANK > self._ram()[86]:
                self.ale.setRAM(86, _BANKHEIST_HALF_TANK)
        return observation, reward, terminated, truncated, info, event

    def _bankheist_city_switch(self, action):
        observation, reward, terminated, truncated, info = self.env.step(action)
        event = self._chance()
        if event:
            city = int(self._ram()[0]) % 4
            self.ale.setRAM(0, int(self.rng.choice([c for c in range(4) if c != city])))
        return observation, reward, terminated, truncated, info, event

    def _bankheist_bank_empty(self, action):
        before = self._ram()
        observation, reward, terminated, truncated, info = self.env.step(action)
        ram = self._ram()
        robbed = any(before[s] == _BANKHEIST_BANK and ram[s] != _BANKHEIST_BANK for s in (24, 25, 26))
        event = robbed and self._chance()
        if event:
            reward = 0.0
        return observation, reward, terminated, truncated, info, event
