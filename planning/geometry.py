"""Lane and route centre lines as polylines, and Frenet coordinates along them.

A :class:`Polyline` is a centre line sampled at vertices, with arc length ``s_m``, a
unit tangent and heading at every vertex, and curvature.  Frenet coordinates
(Werling et al. 2010, "Optimal trajectory generation for dynamic street scenarios in a
Frenet frame") are ``s`` (arc length of the foot point) and ``d`` (signed distance,
left of the direction of travel positive).

The frame is smooth, not piecewise: between two vertices the centre point moves
linearly and the tangent is the linear blend of the two vertex tangents, so the
normal turns continuously and every point near the line has exactly one foot point
(a piecewise-linear frame leaves gaps outside corners and overlaps inside them).
With that frame,

    to_xy(s, d) = c(s) + d * n(s)

and projecting a point q back means finding ``u`` in a segment with
``(q - c(u)) . t(u) = 0``, which is a quadratic in ``u``: solved in closed form for all
segments at once (:meth:`Polyline.project`).  Before the first and after the last
vertex the line extends straight along the end tangents, so ``s`` may be negative or
exceed the length.

Pure numpy; world frame (x east, y north, heading counter-clockwise from x) [m, rad].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_SEGMENT_M = 1e-6  # [m] consecutive vertices closer than this are merged
LOCAL_SEARCH_SEGMENTS = 8  # lines with more segments are searched around the nearest vertex only


def wrap_angle(angle_rad: np.ndarray) -> np.ndarray:
    """Angles [rad] wrapped to [-pi, pi): the project's one angle wrap.

    ``(a + pi) mod 2 pi - pi`` (not ``atan2(sin a, cos a)``): the simulator's pose heading
    is wrapped with it, so this is the formula whose bits every sensor already carries.
    """
    return (np.asarray(angle_rad) + np.pi) % (2 * np.pi) - np.pi


def left_normal(v: np.ndarray) -> np.ndarray:
    """Vectors ``[..., 2]`` rotated by +90 degrees (to the left)."""
    return np.stack([-v[..., 1], v[..., 0]], axis=-1)


@dataclass(frozen=True, eq=False)
class Polyline:
    points_m: np.ndarray  # [N, 2] vertices
    s_m: np.ndarray  # [N] arc length at each vertex, s_m[0] = 0
    tangent: np.ndarray  # [N, 2] unit tangent at each vertex
    heading_rad: np.ndarray  # [N] unwrapped heading of the tangent
    curvature_1pm: np.ndarray  # [N] d(heading)/ds [1/m], left turn positive

    @classmethod
    def from_points(cls, points_m: np.ndarray, heading_rad: np.ndarray | None = None) -> Polyline:
        """A polyline through ``points_m``; vertex headings from ``heading_rad`` when the
        source knows them exactly (the map does), else from the adjacent segments."""
        pts = np.asarray(points_m, dtype=np.float64).reshape(-1, 2)
        if not np.all(np.isfinite(pts)):
            raise ValueError("polyline points must be finite")
        keep = np.ones(len(pts), dtype=bool)
        if len(pts) > 1:
            keep[1:] = np.linalg.norm(np.diff(pts, axis=0), axis=1) > MIN_SEGMENT_M
        pts = pts[keep]
        if len(pts) < 2:
            raise ValueError(f"a polyline needs at least 2 distinct points, got {len(pts)}")
        seg = np.diff(pts, axis=0)
        seg_len = np.linalg.norm(seg, axis=1)
        s = np.concatenate([[0.0], np.cumsum(seg_len)])
        if heading_rad is not None:
            h = np.asarray(heading_rad, dtype=np.float64).reshape(-1)[keep]
            tangent = np.stack([np.cos(h), np.sin(h)], axis=-1)
        else:
            seg_dir = seg / seg_len[:, None]
            tangent = np.empty_like(pts)
            tangent[0], tangent[-1] = seg_dir[0], seg_dir[-1]
            mid = seg_dir[:-1] + seg_dir[1:]  # bisector of the two adjacent segments
            tangent[1:-1] = mid / np.maximum(np.linalg.norm(mid, axis=1, keepdims=True), 1e-12)
        heading = np.unwrap(np.arctan2(tangent[:, 1], tangent[:, 0]))
        curvature = np.gradient(heading, s) if len(s) > 2 else np.zeros(len(s))
        return cls(pts, s, tangent, heading, curvature)

    @property
    def length_m(self) -> float:
        return float(self.s_m[-1])

    def __len__(self) -> int:
        return len(self.s_m)

    # -- evaluation along the line -------------------------------------------------------
    def _locate(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Segment index and fraction ``u`` for arc lengths ``s`` (u < 0 / > 1 only at the ends)."""
        i = np.clip(np.searchsorted(self.s_m, s, side="right") - 1, 0, len(self.s_m) - 2)
        seg_len = self.s_m[i + 1] - self.s_m[i]
        return i, (s - self.s_m[i]) / seg_len

    def frame(self, s_m: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Centre point ``[..., 2]`` and unit tangent ``[..., 2]`` at arc length ``s_m``."""
        s = np.asarray(s_m, dtype=np.float64)
        i, u = self._locate(s)
        inside = np.clip(u, 0.0, 1.0)
        t = self.tangent[i] + inside[..., None] * (self.tangent[i + 1] - self.tangent[i])
        t = t / np.linalg.norm(t, axis=-1, keepdims=True)
        c = self.points_m[i] + inside[..., None] * (self.points_m[i + 1] - self.points_m[i])
        # beyond the ends: straight along the end tangent
        before = s < 0.0
        after = s > self.length_m
        c = np.where(before[..., None], self.points_m[0] + s[..., None] * self.tangent[0], c)
        c = np.where(
            after[..., None],
            self.points_m[-1] + (s - self.length_m)[..., None] * self.tangent[-1],
            c,
        )
        t = np.where(before[..., None], self.tangent[0], t)
        t = np.where(after[..., None], self.tangent[-1], t)
        return c, t

    def heading_at(self, s_m: np.ndarray | float) -> np.ndarray:
        _, t = self.frame(s_m)
        return np.arctan2(t[..., 1], t[..., 0])

    def curvature_at(self, s_m: np.ndarray | float) -> np.ndarray:
        return np.interp(s_m, self.s_m, self.curvature_1pm)

    def to_xy(self, s_m: np.ndarray | float, d_m: np.ndarray | float) -> np.ndarray:
        """Frenet ``(s, d)`` -> world ``[..., 2]``; ``d`` is left-positive."""
        c, t = self.frame(s_m)
        return c + np.asarray(d_m, dtype=np.float64)[..., None] * left_normal(t)

    def project(self, xy_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points ``[..., 2]`` -> Frenet ``(s, d)``, each ``[...]``.

        Every segment's foot-point equation is solved in closed form; the foot point
        nearest to the query wins.  On lines of more than ``LOCAL_SEARCH_SEGMENTS``
        segments only those around the nearest vertex are solved, which is exact while
        the vertex spacing is small against the distance to other parts of the line.
        """
        q = np.asarray(xy_m, dtype=np.float64)
        shape = q.shape[:-1]
        q = q.reshape(-1, 1, 2)  # [Q, 1, 2]
        n_seg = len(self.points_m) - 1
        if n_seg > LOCAL_SEARCH_SEGMENTS:
            # long lines: only the segments around each query's nearest vertex
            v = np.argmin(np.sum((q - self.points_m[None]) ** 2, axis=-1), axis=1)
            segs = np.clip(
                v[:, None] + np.arange(-LOCAL_SEARCH_SEGMENTS // 2, LOCAL_SEARCH_SEGMENTS // 2),
                0,
                n_seg - 1,
            )  # [Q, W]
        else:
            segs = np.broadcast_to(np.arange(n_seg), (len(q), n_seg))
        a = self.points_m[segs]  # [Q, S, 2]
        delta = self.points_m[segs + 1] - a
        t0 = self.tangent[segs]
        dt = self.tangent[segs + 1] - t0
        r = q - a  # [Q, S, 2]
        # (r - u delta) . (t0 + u dt) = 0  ->  qa u^2 + qb u + qc = 0
        qa = -np.sum(delta * dt, axis=-1)  # [Q, S]
        qb = np.sum(r * dt, axis=-1) - np.sum(delta * t0, axis=-1)
        qc = np.sum(r * t0, axis=-1)
        u = _quadratic_roots_in_unit(qa, qb, qc)  # [Q, S, 2], NaN where no root in [0, 1]
        c = a[:, :, None, :] + u[..., None] * delta[:, :, None, :]
        t = t0[:, :, None, :] + u[..., None] * dt[:, :, None, :]
        dist2 = np.sum((q[:, :, None, :] - c) ** 2, axis=-1)
        dist2 = np.where(np.isnan(u), np.inf, dist2)
        # the straight extensions before the start and after the end
        lam0 = np.einsum("qk,k->q", q[:, 0] - self.points_m[0], self.tangent[0])
        lam1 = np.einsum("qk,k->q", q[:, 0] - self.points_m[-1], self.tangent[-1])
        foot0 = self.points_m[0] + lam0[:, None] * self.tangent[0]
        foot1 = self.points_m[-1] + lam1[:, None] * self.tangent[-1]
        d0 = np.where(lam0 < 0, np.sum((q[:, 0] - foot0) ** 2, axis=-1), np.inf)
        d1 = np.where(lam1 > 0, np.sum((q[:, 0] - foot1) ** 2, axis=-1), np.inf)

        flat = dist2.reshape(len(q), -1)
        k = np.argmin(flat, axis=1)
        best = flat[np.arange(len(q)), k]
        col, root = np.divmod(k, 2)
        rows = np.arange(len(q))
        seg = segs[rows, col]
        uu = u[rows, col, root]
        s = self.s_m[seg] + uu * (self.s_m[seg + 1] - self.s_m[seg])
        tt = t[rows, col, root]
        tt = tt / np.linalg.norm(tt, axis=-1, keepdims=True)
        cc = c[rows, col, root]
        d = np.einsum("qk,qk->q", q[:, 0] - cc, left_normal(tt))
        # the extensions win only where nothing on the line itself is nearer
        use0 = d0 < best
        use1 = d1 < np.minimum(best, d0)
        s = np.where(use0, lam0, s)
        d = np.where(
            use0, np.einsum("qk,k->q", q[:, 0] - self.points_m[0], left_normal(self.tangent[0])), d
        )
        s = np.where(use1, self.length_m + lam1, s)
        d = np.where(
            use1,
            np.einsum("qk,k->q", q[:, 0] - self.points_m[-1], left_normal(self.tangent[-1])),
            d,
        )
        no_root = ~np.isfinite(best) & ~use0 & ~use1
        if np.any(no_root):  # only possible exactly at a reflex corner: take the nearest vertex
            v = np.argmin(np.sum((q[no_root] - self.points_m[None]) ** 2, axis=-1), axis=1)
            s[no_root] = self.s_m[v]
            d[no_root] = np.einsum(
                "qk,qk->q", q[no_root, 0] - self.points_m[v], left_normal(self.tangent[v])
            )
        return s.reshape(shape), d.reshape(shape)

    # -- derived lines -------------------------------------------------------------------
    def crop(self, s_from_m: float, s_to_m: float) -> Polyline:
        """The part between two arc lengths (clamped to the line), as a new polyline."""
        lo = float(np.clip(s_from_m, 0.0, self.length_m))
        hi = float(np.clip(s_to_m, 0.0, self.length_m))
        if hi - lo < 1e-3:
            raise ValueError(
                f"empty crop [{s_from_m:.2f}, {s_to_m:.2f}] of a {self.length_m:.2f} m line"
            )
        inner = (self.s_m > lo + 1e-6) & (self.s_m < hi - 1e-6)
        s = np.concatenate([[lo], self.s_m[inner], [hi]])
        return self.resample_at(s)

    def resample(self, spacing_m: float) -> Polyline:
        """Evenly spaced vertices (the last spacing may be shorter)."""
        if not spacing_m > 0:
            raise ValueError(f"spacing must be > 0, got {spacing_m}")
        n = max(2, int(np.ceil(self.length_m / spacing_m)) + 1)
        return self.resample_at(np.linspace(0.0, self.length_m, n))

    def resample_at(self, s_m: np.ndarray) -> Polyline:
        c, t = self.frame(np.asarray(s_m, dtype=np.float64))
        return Polyline.from_points(c, np.arctan2(t[:, 1], t[:, 0]))


def _quadratic_roots_in_unit(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Roots of ``a u^2 + b u + c`` in [0, 1] (``a, b, c [Q, S]``),
    as ``[Q, S, 2]`` with NaN for a missing root.  Numerically stable form."""
    eps = 1e-9
    a = np.broadcast_to(a, b.shape)
    linear = np.abs(a) < 1e-12
    with np.errstate(
        divide="ignore", invalid="ignore", over="ignore"
    ):  # out-of-range roots are dropped
        disc = b * b - 4.0 * a * c
        sq = np.sqrt(np.maximum(disc, 0.0))
        qq = -0.5 * (b + np.where(b >= 0, sq, -sq))
        r1 = np.where(linear, -c / b, qq / a)
        r2 = np.where(linear, np.nan, c / qq)
        r1 = np.where((disc < 0) & ~linear, np.nan, r1)
        r2 = np.where(disc < 0, np.nan, r2)
    roots = np.stack([r1, r2], axis=-1)
    ok = (roots >= -eps) & (roots <= 1.0 + eps)
    return np.where(ok, np.clip(roots, 0.0, 1.0), np.nan)
