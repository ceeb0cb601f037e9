"""Differentiable, batched torch simulators for the ML3 reinforcement-learning experiments.

Every simulator is a set of pure functions on state tensors of shape ``(B, state_dim)``:
``step(state, action) -> next_state`` is differentiable in both arguments (clamps pass the
gradient through wherever they are not active), so a policy can be trained by
back-propagating a loss through a whole rollout. Any float dtype works (float64 for
finite-difference checks).

* :class:`MountainCar`: the classic car in a valley (Moore 1990; gym's ``MountainCar``),
  continuous action ``a`` in ``[-1, 1]``: ``v += 0.001 a - 0.0025 cos(3 x)``.
* :class:`FrictionMountainCar`: the ML3 paper's variant (point mass with friction, ``dt = 0.1``,
  one fixed start).
* :class:`Reacher`: a torque-controlled planar 2-link arm (a double pendulum without
  gravity, point masses at the link ends), semi-implicit Euler.
* :class:`CartPole`: gym's ``CartPole-v1`` equations (Euler), discrete push left / right.
* :class:`Pendulum`: gym's ``Pendulum-v1`` (swing-up, continuous torque, reward per step).

Example:
    >>> import torch
    >>> from metaloss.rl.envs import MountainCar
    >>> env = MountainCar()
    >>> s = env.reset(4, generator=torch.Generator().manual_seed(0))
    >>> s2 = env.step(s, torch.ones(4))
    >>> tuple(s2.shape), bool((s2[:, 1] > s[:, 1]).all())
    ((4, 2), True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


def _clamp(x: Tensor, lo: float, hi: float) -> Tensor:
    """``clamp`` whose gradient is 1 inside ``[lo, hi]`` and 0 where it clips."""
    return torch.clamp(x, lo, hi)


def _rand(n: int, lo: float, hi: float, generator: torch.Generator | None, dtype) -> Tensor:
    return torch.rand(n, generator=generator, dtype=dtype) * (hi - lo) + lo


class _CarOnATrack:
    """``step`` and ``success`` of a car with state ``(x, v)``, from the subclass's
    ``step_xv(x, v, a)`` and ``goal``."""

    goal: float

    def step_xv(self, x: Tensor, v: Tensor, a: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def step(self, state: Tensor, action: Tensor) -> Tensor:
        """One step; ``action`` of shape ``(B,)`` or ``(B, 1)`` is clipped to the car's range."""
        x, v = self.step_xv(state[:, 0], state[:, 1], action.reshape(state.shape[0]))
        return torch.stack([x, v], dim=-1)

    def success(self, state: Tensor) -> Tensor:
        """Boolean per environment: has reached the goal."""
        return state[:, 0] >= self.goal


@dataclass(frozen=True)
class MountainCar(_CarOnATrack):
    """Mountain Car with a continuous force, batched and differentiable.

    State ``(x, v)``. ``x`` in ``[-1.2, 0.6]``, ``|v| <= 0.07``; the goal is ``x >= 0.5``.
    The car is too weak to drive up directly (``0.001 < 0.0025``): it must first swing
    back up the left hill. Hitting the left wall stops the car (as in gym).

    Example:
        >>> import torch
        >>> env = MountainCar()
        >>> env.step(torch.tensor([[-0.5, 0.0]]), torch.tensor([0.0])).shape
        torch.Size([1, 2])
    """

    force: float = 0.001
    gravity: float = 0.0025
    x_min: float = -1.2
    x_max: float = 0.6
    v_max: float = 0.07
    goal: float = 0.5
    horizon: int = 200

    state_dim: int = 2
    action_dim: int = 1

    def reset(
        self,
        n: int,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        low: float = -0.6,
        high: float = -0.4,
    ) -> Tensor:
        """``n`` standard starts: ``x ~ U[low, high]``, ``v = 0``."""
        x = _rand(n, low, high, generator, dtype)
        return torch.stack([x, torch.zeros_like(x)], dim=-1)

    def step_xv(self, x: Tensor, v: Tensor, a: Tensor) -> tuple[Tensor, Tensor]:
        """:meth:`step` on separate ``x``, ``v``, ``a`` tensors (fewer ops in long rollouts)."""
        a = _clamp(a, -1.0, 1.0)
        v = torch.add(v, a, alpha=self.force).sub(torch.cos(3 * x), alpha=self.gravity)
        v = _clamp(v, -self.v_max, self.v_max)
        x = _clamp(x + v, self.x_min, self.x_max)
        # Hitting the left wall stops the car (gym): keep only a velocity pointing away.
        v = torch.where(x > self.x_min, v, v.clamp(min=0.0))
        return x, v

    def height(self, x: Tensor) -> Tensor:
        """Height of the track, ``sin(3 x)`` (for plots and energy)."""
        return torch.sin(3 * x)

    def energy(self, state: Tensor) -> Tensor:
        """Mechanical energy per unit mass in simulator units (conserved when a = 0 and
        nothing clips, up to the Euler discretisation): ``v^2 / 2 + gravity/3 sin(3x)``."""
        return 0.5 * state[:, 1] ** 2 + self.gravity / 3 * torch.sin(3 * state[:, 0])


@dataclass(frozen=True)
class Reacher:
    """Planar 2-link arm, torque-controlled, no gravity, point masses at the link ends.

    State ``(q1, q2, dq1, dq2)``; action: joint torques in ``[-1, 1]`` times
    ``max_torque``. Equations of motion ``M(q) ddq + c(q, dq) = tau - damping dq`` integrated
    with semi-implicit (symplectic) Euler: ``dq += dt ddq; q += dt dq``.

    Example:
        >>> import torch
        >>> arm = Reacher()
        >>> arm.fingertip(torch.zeros(1, 4))  # arm stretched along x
        tensor([[1., 0.]])
    """

    m1: float = 1.0
    m2: float = 1.0
    l1: float = 0.5
    l2: float = 0.5
    dt: float = 0.05
    damping: float = 0.1
    max_torque: float = 1.0
    max_speed: float = 10.0
    horizon: int = 40

    state_dim: int = 4
    action_dim: int = 2

    def reset(
        self,
        n: int,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        spread: float = math.pi,
    ) -> Tensor:
        """``n`` random resting configurations, joint angles ``U[-spread, spread]``."""
        q = (torch.rand(n, 2, generator=generator, dtype=dtype) * 2 - 1) * spread
        return torch.cat([q, torch.zeros_like(q)], dim=-1)

    def sample_goals(
        self,
        n: int,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        r_min: float = 0.2,
        r_max: float = 0.9,
        angle_range: tuple[float, float] = (-math.pi, math.pi),
    ) -> Tensor:
        """Reachable goals, uniform over an annulus sector (radius in units of full reach)."""
        reach = self.l1 + self.l2
        r = torch.sqrt(
            torch.rand(n, generator=generator, dtype=dtype) * (r_max**2 - r_min**2) + r_min**2
        )
        th = _rand(n, angle_range[0], angle_range[1], generator, dtype)
        return torch.stack([r * torch.cos(th), r * torch.sin(th)], dim=-1) * reach

    def mass_matrix(self, q: Tensor) -> Tensor:
        """``M(q)``, shape ``(B, 2, 2)``."""
        c2 = torch.cos(q[:, 1])
        m22 = torch.full_like(c2, self.m2 * self.l2**2)
        m12 = m22 + self.m2 * self.l1 * self.l2 * c2
        m11 = (self.m1 + self.m2) * self.l1**2 + m22 + 2 * self.m2 * self.l1 * self.l2 * c2
        return torch.stack([torch.stack([m11, m12], -1), torch.stack([m12, m22], -1)], -2)

    def accel(self, state: Tensor, torque: Tensor) -> Tensor:
        """Joint accelerations ``M^-1 (tau - c - damping dq)`` (2x2 solve in closed form)."""
        q, dq = state[:, :2], state[:, 2:]
        h = self.m2 * self.l1 * self.l2 * torch.sin(q[:, 1])
        c = torch.stack([-h * (2 * dq[:, 0] * dq[:, 1] + dq[:, 1] ** 2), h * dq[:, 0] ** 2], dim=-1)
        rhs = torque - c - self.damping * dq
        m = self.mass_matrix(q)
        a, b, d = m[:, 0, 0], m[:, 0, 1], m[:, 1, 1]
        det = a * d - b * b
        dd1 = (d * rhs[:, 0] - b * rhs[:, 1]) / det
        dd2 = (a * rhs[:, 1] - b * rhs[:, 0]) / det
        return torch.stack([dd1, dd2], dim=-1)

    def step(self, state: Tensor, action: Tensor) -> Tensor:
        """One semi-implicit Euler step; ``action`` ``(B, 2)`` clipped to ``[-1, 1]``."""
        tau = _clamp(action, -1.0, 1.0) * self.max_torque
        dq = state[:, 2:] + self.dt * self.accel(state, tau)
        dq = _clamp(dq, -self.max_speed, self.max_speed)
        q = state[:, :2] + self.dt * dq
        return torch.cat([q, dq], dim=-1)

    def fingertip(self, state: Tensor) -> Tensor:
        """Forward kinematics: fingertip ``(x, y)``, shape ``(B, 2)``."""
        q1, q12 = state[:, 0], state[:, 0] + state[:, 1]
        x = self.l1 * torch.cos(q1) + self.l2 * torch.cos(q12)
        y = self.l1 * torch.sin(q1) + self.l2 * torch.sin(q12)
        return torch.stack([x, y], dim=-1)

    def energy(self, state: Tensor) -> Tensor:
        """Kinetic energy ``dq^T M(q) dq / 2`` (the only energy: no gravity)."""
        dq = state[:, 2:]
        return 0.5 * torch.einsum("bi,bij,bj->b", dq, self.mass_matrix(state[:, :2]), dq)


@dataclass(frozen=True)
class CartPole:
    """gym's ``CartPole-v1`` dynamics (Euler integration), batched.

    State ``(x, x_dot, theta, theta_dot)``; action 0 pushes left, 1 right (a float in
    ``[0, 1]`` interpolates the force, which keeps the step differentiable). An episode
    ends when ``|x| > 2.4`` or ``|theta| > 12 deg``; reward 1 per step survived.

    Example:
        >>> import torch
        >>> env = CartPole()
        >>> s = env.step(torch.zeros(1, 4), torch.ones(1))
        >>> float(s[0, 1]) > 0
        True
    """

    gravity: float = 9.8
    masscart: float = 1.0
    masspole: float = 0.1
    length: float = 0.5
    force_mag: float = 10.0
    tau: float = 0.02
    x_threshold: float = 2.4
    theta_threshold: float = 12 * 2 * math.pi / 360
    horizon: int = 200

    state_dim: int = 4
    n_actions: int = 2

    def reset(
        self, n: int, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32
    ) -> Tensor:
        """gym's start distribution: every state variable ``U[-0.05, 0.05]``."""
        return (torch.rand(n, 4, generator=generator, dtype=dtype) - 0.5) * 0.1

    def step(self, state: Tensor, action: Tensor) -> Tensor:
        """One Euler step; ``action`` in ``{0, 1}`` (or ``[0, 1]``), shape ``(B,)``."""
        x, x_dot, th, th_dot = state.unbind(-1)
        force = (2 * action.to(state.dtype) - 1) * self.force_mag
        total = self.masspole + self.masscart
        pml = self.masspole * self.length
        cos, sin = torch.cos(th), torch.sin(th)
        temp = (force + pml * th_dot**2 * sin) / total
        th_acc = (self.gravity * sin - cos * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * cos**2 / total)
        )
        x_acc = temp - pml * th_acc * cos / total
        x = x + self.tau * x_dot
        x_dot = x_dot + self.tau * x_acc
        th = th + self.tau * th_dot
        th_dot = th_dot + self.tau * th_acc
        return torch.stack([x, x_dot, th, th_dot], dim=-1)

    def failed(self, state: Tensor) -> Tensor:
        """Boolean per environment: the pole fell or the cart left the track."""
        return (state[:, 0].abs() > self.x_threshold) | (state[:, 2].abs() > self.theta_threshold)


def angle_normalize(x: Tensor) -> Tensor:
    """Wrap angles to ``[-pi, pi)``."""
    return torch.remainder(x + math.pi, 2 * math.pi) - math.pi


@dataclass(frozen=True)
class Pendulum:
    """gym's ``Pendulum-v1``: swing a pendulum up and hold it, torque in ``[-2, 2]``.

    State ``(theta, theta_dot)`` with ``theta = 0`` upright. Reward per step
    ``-(theta^2 + 0.1 theta_dot^2 + 0.001 u^2)`` (angle wrapped), 200 steps per episode;
    differentiable in state and action (through the clamps where inactive).

    Example:
        >>> import torch
        >>> env = Pendulum()
        >>> s, r = env.step(torch.zeros(1, 2), torch.zeros(1))
        >>> float(r)
        -0.0
    """

    max_speed: float = 8.0
    max_torque: float = 2.0
    dt: float = 0.05
    g: float = 10.0
    m: float = 1.0
    length: float = 1.0
    horizon: int = 200

    state_dim: int = 2
    action_dim: int = 1

    def reset(
        self, n: int, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32
    ) -> Tensor:
        """gym's start: ``theta ~ U[-pi, pi]``, ``theta_dot ~ U[-1, 1]``."""
        th = _rand(n, -math.pi, math.pi, generator, dtype)
        return torch.stack([th, _rand(n, -1.0, 1.0, generator, dtype)], dim=-1)

    def observe(self, state: Tensor) -> Tensor:
        """gym's observation ``(cos theta, sin theta, theta_dot)``."""
        return torch.stack([torch.cos(state[:, 0]), torch.sin(state[:, 0]), state[:, 1]], dim=-1)

    def step(self, state: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
        """One step: ``(next_state, reward)``; ``action`` ``(B,)`` or ``(B, 1)``."""
        u = _clamp(action.reshape(state.shape[0]), -self.max_torque, self.max_torque)
        th, th_dot = state[:, 0], state[:, 1]
        reward = -(angle_normalize(th) ** 2 + 0.1 * th_dot**2 + 0.001 * u**2)
        acc = 3 * self.g / (2 * self.length) * torch.sin(th) + 3.0 / (self.m * self.length**2) * u
        th_dot = _clamp(th_dot + acc * self.dt, -self.max_speed, self.max_speed)
        th = th + th_dot * self.dt
        return torch.stack([th, th_dot], dim=-1), reward


@dataclass(frozen=True)
class FrictionMountainCar(_CarOnATrack):
    """The Mountain Car of the ML3 paper's demonstration: a point mass with friction.

    ``straight_through=True`` lets the gradient pass the position and velocity limits
    unchanged, as the ML3 reference code does (it overwrites ``.data``); by default the
    gradient is zero where a limit clips.

    State ``(x, v)``; Euler steps of length ``dt``::

        v += dt * (-mass * g * cos(3 x) + a / mass - friction * v);  x += dt * v

    with ``a`` clipped to ``[-a_max, a_max]``, ``|v| <= v_max``, ``x`` in ``[x_min, x_max]``
    (hitting the left wall stops the car). The largest push (``a_max / mass = 1.25``) is
    weaker than the steepest slope force (``mass * g = 1.96``), so from the valley the car
    must swing back up the left hill first. One fixed start, ``x = -0.55``, ``v = 0``; the
    goal is the right edge ``x >= 0.5`` (the ML3 code's target state is ``(0.5, 1.0375)``).

    Example:
        >>> import torch
        >>> env = FrictionMountainCar()
        >>> s = env.reset(2)
        >>> env.step(s, torch.full((2,), 0.25))[:, 1]  # pushing right from rest
        tensor([0.1405, 0.1405])
    """

    mass: float = 0.2
    g: float = 9.8
    friction: float = 0.3
    dt: float = 0.1
    a_max: float = 0.25
    x_min: float = -1.2
    x_max: float = 0.5
    v_max: float = 1.5
    goal: float = 0.5
    goal_v: float = 1.0375
    start: float = -0.55
    horizon: int = 35
    straight_through: bool = False

    state_dim: int = 2
    action_dim: int = 1

    def reset(self, n: int, dtype: torch.dtype = torch.float32) -> Tensor:
        """``n`` copies of the fixed start ``(start, 0)``."""
        return torch.tensor([[self.start, 0.0]], dtype=dtype).expand(n, 2).clone()

    def step_xv(self, x: Tensor, v: Tensor, a: Tensor) -> tuple[Tensor, Tensor]:
        """:meth:`step` on separate ``x``, ``v``, ``a`` tensors."""
        a = _clamp(a, -self.a_max, self.a_max)
        acc = -self.mass * self.g * torch.cos(3 * x) + a / self.mass - self.friction * v
        v = v + self.dt * acc
        x_free = x + self.dt * v
        x = _clamp(x_free, self.x_min, self.x_max)
        v_new = _clamp(v, -self.v_max, self.v_max)
        v_new = torch.where(x > self.x_min, v_new, v_new.clamp(min=0.0))
        if self.straight_through:  # values of the limits, gradients of the free update
            return x_free + (x - x_free).detach(), v + (v_new - v).detach()
        return x, v_new


__all__ = [
    "CartPole",
    "FrictionMountainCar",
    "MountainCar",
    "Pendulum",
    "Reacher",
    "angle_normalize",
]
