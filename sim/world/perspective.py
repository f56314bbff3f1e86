"""Headless CPU perspective rendering: what a :class:`~sim.geometry.pinhole.PinholeCamera`
on the ego car sees of the world (issue 20, "a real camera").

The scene is a flat road plane (``z = 0``) carrying every lane's surface and markings, and
the other road users as 3D boxes.  One call renders one camera:

1. **background**: the cached sky/ground split of the camera (sky where a pixel's ray
   never meets the road plane, :meth:`PinholeCamera.pixel_to_ground`; the same line as
   :meth:`PinholeCamera.horizon_row`);
2. **road**: every lane, sampled along its centre line (:mod:`sim.world.roadmap`: 10 m on
   straight lanes, 1 m on arcs and sines) into quads on the road plane; then the markings
   as thin quads (highway-env's line types: continuous, or striped with highway-env's 3 m
   dashes, spaced as the road map and the bird's-eye renderer space them: one every 8 m,
   :data:`sim.world.roadmap.STRIPE_PERIOD_M`; highway-env's pygame view spaces them 4.33 m).
   A border two lanes both paint is drawn once.  Lines beyond :data:`MARKING_FAR_M` are
   sub-pixel, so they take a road/paint blend instead of turning far roads white.  A lane
   edge no neighbour shares sample for sample is pushed out by :data:`SEAM_OVERLAP_M`, so
   differently sampled neighbours (concentric arcs) overlap instead of showing a seam.
   Surfaces and markings are culled, transformed, clipped and projected in one pass
   (:class:`FlatPass`), then filled surfaces first;
3. **objects**: boxes of true length and width and a plausible height
   (:func:`object_heights`), faces shaded by their orientation to a fixed sun, colours
   from a palette drawn per object identity (:func:`object_colours`), back faces culled,
   boxes painted far to near (painter's algorithm).

Every polygon is culled first (view distance, the camera's side, top and bottom planes and
the near plane, with its bounding circle/sphere), then **clipped in 3D against the near
plane before projection** (Sutherland-Hodgman; vectorised, or plain Python for the usual
handful of polygons that cross it): a polygon crossing the near
plane keeps only its part in front of it, so nothing behind the camera ever appears and
nothing is smeared across the frame.  Projection is the camera's own model (its
:attr:`~PinholeCamera.rotation_ego_from_camera`, :attr:`~PinholeCamera.position_m` and
intrinsics), filled with OpenCV at 1/16 px (no anti-aliasing, so the image, the instance
mask and the depth image agree pixel for pixel, and the same state gives the same bytes).

Occlusion: ground polygons are coplanar and lie under everything, so they go first; boxes
are sorted by the distance from the camera to the nearest point of their footprint,
farthest first, ties by identity; within one box only its front faces are drawn, and those
never overlap.  For road users in line or side by side the nearer footprint is the
occluder, so this order is right; it is not a z-buffer, and two long boxes at odd angles
could in principle be ordered wrongly.  Flat polygons of one colour are filled a group
per OpenCV call, groups built so that their polygons never overlap (OpenCV fills several
polygons with the even-odd rule).

Colours and light come from a :class:`PerspectivePalette`, one per visual condition
(:mod:`sim.world.visual`: day, dusk, night, colours, worn); a worn road's palette adds its
repaired-asphalt patches to the road pass, and a night palette multiplies the finished
frame by a fixed per-camera gain (the car's light falling off with distance, a vignette).

:class:`PerspectiveRenderer` works on plain arrays (a :class:`RoadMesh` built once from a
:class:`~sim.world.roadmap.RoadGeometry`, the ego pose, :class:`~sim.world.render.SceneObjects`);
:func:`render_env` is the small adapter that reads them from a
:class:`~sim.world.env.DrivingEnv`.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

import cv2
import numpy as np

from sim.geometry.pinhole import PinholeCamera
from sim.world.render import KIND_OBSTACLE, Palette, SceneObjects, box_corners, wear_patches
from sim.world.roadmap import STRIPE_DASH_M, STRIPE_PERIOD_M, LaneGeometry, RoadGeometry

SHIFT = 4  # fractional bits of OpenCV's sub-pixel polygon fill
SCALE = float(1 << SHIFT)

VIEW_DISTANCE_M = 250.0
"""[m] Nothing farther from the camera is drawn (a 2 m car there is < 1 px wide at the
default rig's fx = 107 px, and the road is within 0.7 px of the horizon)."""
MARKING_WIDTH_M = 0.15  # [m] painted line width (the bird's-eye renderer's width at fine scales)
MARKING_FAR_M = 50.0
"""[m] Beyond this depth a painted line is well under a pixel wide, yet the fill still
lights whole pixels; such lines are drawn in a colour between road and paint instead
(:data:`MARKING_FAR_BLEND` of the way), so far roads do not turn white."""
MARKING_FAR_BLEND = 0.4
DASH_SAMPLE_M = 1.0  # [m] a dash on an arc or a sine is bent through points about this far apart
MIN_CLIP_M = 0.05  # [m] the clip plane is at least this far, so projected coordinates stay in int32

CAR_HEIGHT_M = 1.5  # [m] highway-env's cars are 5 m x 2 m: a sedan's height
TRUCK_HEIGHT_M = 3.5  # [m] any vehicle at least TRUCK_LENGTH_M long is drawn as a truck
TRUCK_LENGTH_M = 7.0  # [m]
OBSTACLE_HEIGHT_M = 1.0  # [m] highway-env's 2 m x 2 m obstacles: a barrier block

# Box corners: the footprint counter-clockwise from rear-right (render.box_corners), then the
# same four at roof height.  Faces as corner loops, with outward normals in the box frame
# (x forward, y left, z up).
_FACES = np.array(
    [
        [0, 3, 7, 4],  # rear
        [1, 2, 6, 5],  # front
        [0, 1, 5, 4],  # right
        [3, 2, 6, 7],  # left
        [4, 5, 6, 7],
    ]
)  # top
_FACE_NORMALS_BOX = np.array(
    [[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
)


@dataclass(frozen=True)
class PerspectivePalette:
    """RGB colours of the perspective scene and the light that shades box faces; the ground,
    road, markings and obstacles share the bird's-eye view's colours (:class:`Palette`)."""

    sky: tuple[int, int, int] = (150, 190, 230)
    ground: tuple[int, int, int] = Palette.ground
    road: tuple[int, int, int] = Palette.road
    marking: tuple[int, int, int] = Palette.marking
    obstacle: tuple[int, int, int] = Palette.obstacle
    vehicles: tuple[tuple[int, int, int], ...] = (
        (190, 35, 35),
        (40, 75, 190),
        (215, 215, 220),
        (35, 35, 40),
        (140, 140, 150),
        (215, 185, 45),
        (35, 130, 70),
        (110, 55, 140),
        (95, 60, 40),
        (60, 160, 175),
    )
    """Car body colours; each vehicle draws one by its identity (:func:`object_colours`)."""
    light: tuple[float, float, float] = (0.25, 0.45, 0.86)
    """Direction towards the sun, world frame (x east, y north, z up); normalised on use."""
    ambient: float = 0.5
    """Shade of a face turned straight away from the sun; one facing it is at 1.0, and in
    between the shade follows ``ambient + (1 - ambient) (1 + n . light) / 2`` (wrapped
    lighting: every face keeps its colour, none goes black)."""
    patch: tuple[int, int, int] | None = Palette.patch
    """Colour of a worn road's repaired-asphalt patches (:func:`~sim.world.render.wear_patches`,
    the same patches as the bird's-eye view's); None: a clean road."""
    light_range_m: float = 0.0
    """[m] Night lighting when > 0: the frame is dimmed by the camera-frame depth of the
    road point each pixel sees, ``light_floor + (1 - light_floor) exp(-depth / light_range_m)``
    (lit near the car, as by its own lights, down to ``light_floor`` at the horizon and
    in the sky), so the palette's colours are those near the car.  0: no dimming."""
    light_floor: float = 1.0
    """The gain of the far road and the sky under ``light_range_m``."""
    vignette: float = 0.0
    """Radial darkening towards the image corners: the gain is ``1 - vignette r^2``, ``r``
    the distance from the principal point over the half diagonal.  0: none."""

    @property
    def dims_the_frame(self) -> bool:
        """Whether frames are multiplied by a per-pixel gain (night lighting, vignette)."""
        return self.light_range_m > 0.0 or self.vignette > 0.0


@dataclass
class PerspectiveFrame:
    """One rendered camera frame and, when asked for, its per-pixel labels."""

    image: np.ndarray
    """``uint8[H, W, 3]`` RGB."""
    instance: np.ndarray | None = None
    """``int32[H, W]``: the identity of the object seen at each pixel, -1 for none."""
    depth_m: np.ndarray | None = None
    """``float32[H, W]``: camera-frame depth (z along the optical axis) of what each pixel
    sees [m], road or object; ``inf`` for the sky."""


# ------------------------------------------------------------------------------ the road mesh
def _edge_normals(heading_rad: np.ndarray) -> np.ndarray:
    """Unit left normals ``[N, 2]`` of a line with these headings (world frame)."""
    return np.stack([-np.sin(heading_rad), np.cos(heading_rad)], axis=-1)


STRIP_SEGMENTS = 3
"""Flat strips (lane surfaces, painted lines) are cut into polygons of this many sample
segments: fewer, larger polygons than one quad per segment (OpenCV's fill cost grows with
their number), still short enough to stay nearly convex on the tightest curves."""
POLY_VERTICES = 2 * (STRIP_SEGMENTS + 1)  # vertices of one strip polygon (padded by repeats)


def _strip_polys(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The strip between two sampled sides ``a``, ``b`` ``[N, 2]`` as polygons
    ``[C, POLY_VERTICES, 2]`` of up to :data:`STRIP_SEGMENTS` segments each (``a`` forward,
    then ``b`` backward; a short last one repeats its last vertex).  Neighbouring polygons
    share their cut exactly."""
    out = []
    for i0 in range(0, len(a) - 1, STRIP_SEGMENTS):
        i1 = min(i0 + STRIP_SEGMENTS, len(a) - 1)
        poly = np.concatenate([a[i0 : i1 + 1], b[i0 : i1 + 1][::-1]])
        out.append(np.concatenate([poly, np.repeat(poly[-1:], POLY_VERTICES - len(poly), axis=0)]))
    return np.array(out).reshape(-1, POLY_VERTICES, 2)


def _line_polys(points_m: np.ndarray, normals: np.ndarray, half_width_m: float) -> np.ndarray:
    """A painted line of half width ``half_width_m`` along a polyline, as strip polygons."""
    return _strip_polys(points_m + half_width_m * normals, points_m - half_width_m * normals)


def _dash_quads(lane: LaneGeometry, edge: np.ndarray, curved: bool) -> list[np.ndarray]:
    """The polygons ``[1, POLY_VERTICES, 2]`` of each dash of a striped marking along ``edge``."""
    length = float(lane.s_m[-1])
    heading = np.unwrap(lane.heading_rad)
    out = []
    for start in np.arange(0.0, length, STRIPE_PERIOD_M):
        end = min(start + STRIPE_DASH_M, length)
        if end - start < 0.5 * STRIPE_DASH_M:  # a stub at the lane's end (highway-env skips it too)
            continue
        n = (
            min(STRIP_SEGMENTS + 1, int(np.ceil((end - start) / DASH_SAMPLE_M)) + 1)
            if curved
            else 2
        )
        s = np.linspace(start, end, n)
        pts = np.stack([np.interp(s, lane.s_m, edge[:, k]) for k in (0, 1)], axis=-1)
        out.append(
            _line_polys(pts, _edge_normals(np.interp(s, lane.s_m, heading)), MARKING_WIDTH_M / 2)
        )
    return out


SEAM_OVERLAP_M = 0.05
"""[m] A lane surface's edge that no other lane of its road shares sample for sample is
pushed out by this much: two concentric arcs sampled every metre each cut their shared
border by different chords (up to 1 cm apart on a 15 m radius), which left a dotted line
of ground between them.  Less than the painted line's half width, so it hides under any
edge line; a bare edge grows by 5 cm."""
STYLE_CACHE = 8  # object lists whose heights and colours a renderer remembers
MERGE_CELL_M = 2.0  # [m] grid of the build-time overlap test that merges quad groups
CHUNK_QUADS = 16  # quads per culling chunk


def _cells(quads: np.ndarray) -> set[tuple[int, int]]:
    """Grid cells touched by the bounding boxes of quads ``[K, 4, 2]`` (a superset of the
    cells the quads cover, so a shared cell is a conservative overlap test)."""
    lo = np.floor(quads.min(axis=1) / MERGE_CELL_M).astype(np.int64)
    hi = np.floor(quads.max(axis=1) / MERGE_CELL_M).astype(np.int64)
    out: set[tuple[int, int]] = set()
    for (x0, y0), (x1, y1) in zip(lo.tolist(), hi.tolist()):
        out.update((x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1))
    return out


@dataclass
class QuadSet:
    """Flat polygons on the road plane, grouped so that no two of one group overlap
    (OpenCV fills several polygons in one call with the even-odd rule, so an overlap would
    be a hole): each group is filled in one call."""

    quads_m: np.ndarray  # [Q, POLY_VERTICES, 2] world frame (strip polygons)
    group: np.ndarray  # [Q] int, non-decreasing
    centre_m: np.ndarray  # [Q, 2] bounding circles, for culling
    radius_m: np.ndarray  # [Q]
    chunk_centre_m: np.ndarray  # [C, 2] quads [k * CHUNK_QUADS, (k + 1) * CHUNK_QUADS)
    chunk_radius_m: np.ndarray  # [C]

    @classmethod
    def build(cls, parts: list[np.ndarray]) -> QuadSet:
        """``parts``: polygon arrays ``[K, POLY_VERTICES, 2]``, each free of overlaps within
        itself (they may
        share edges).  Parts are merged greedily into groups whose grid cells
        (:data:`MERGE_CELL_M`) are disjoint, so that parts which might overlap never share
        a group, while far-apart ones are filled together."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls(
                np.zeros((0, POLY_VERTICES, 2)),
                np.zeros(0, dtype=np.int64),
                np.zeros((0, 2)),
                np.zeros(0),
                np.zeros((0, 2)),
                np.zeros(0),
            )
        groups: list[tuple[set, list[np.ndarray]]] = []
        for part in parts:
            cells = _cells(part)
            for taken, members in groups:
                if taken.isdisjoint(cells):
                    taken |= cells
                    members.append(part)
                    break
            else:
                groups.append((cells, [part]))
        q = np.concatenate([p for _, members in groups for p in members]).astype(np.float64)
        group = np.concatenate(
            [np.full(sum(len(p) for p in members), g) for g, (_, members) in enumerate(groups)]
        )
        centre = 0.5 * (q.min(axis=1) + q.max(axis=1))
        radius = np.linalg.norm(q - centre[:, None], axis=-1).max(axis=1)
        # culling chunks: runs of CHUNK_QUADS consecutive quads with a bounding circle
        starts = np.arange(0, len(q), CHUNK_QUADS)
        lo = np.minimum.reduceat(q.min(axis=1), starts)
        hi = np.maximum.reduceat(q.max(axis=1), starts)
        chunk_centre = 0.5 * (lo + hi)
        chunk_radius = 0.5 * np.linalg.norm(hi - lo, axis=1)
        return cls(q, group, centre, radius, chunk_centre, chunk_radius)

    def candidates(self, eye_xy_m: np.ndarray, reach_m: float) -> np.ndarray:
        """Indices of the quads in chunks whose circle comes within ``reach_m`` of a point."""
        d = self.chunk_centre_m - eye_xy_m
        chunks = np.flatnonzero(
            np.einsum("ij,ij->i", d, d) <= np.square(reach_m + self.chunk_radius_m)
        )
        if not len(chunks):
            return chunks
        idx = (chunks[:, None] * CHUNK_QUADS + np.arange(CHUNK_QUADS)).ravel()
        return idx[idx < len(self.group)]


@dataclass
class FlatPass:
    """A :class:`RoadMesh`'s surfaces, markings (and a worn road's patches) as one set of
    road-plane polygons, so a frame culls, transforms, clips and projects them in one pass
    (numpy's per-call overhead, not arithmetic, is most of a frame's cost).  Each polygon
    has a fill key: its :class:`QuadSet` group, surface groups first, then patch groups,
    then marking groups, times two; a marking adds one when it is beyond
    :data:`MARKING_FAR_M` (its blended colour).  Filling in key order draws every surface
    before every patch and every patch before every marking, a group per call, as separate
    passes would.  Culling
    chunks are the two sets' own, so the same polygons are candidates."""

    quads_m: np.ndarray  # [Q, POLY_VERTICES, 2] world frame: surface polygons, markings, patches
    centre_m: np.ndarray  # [Q, 2] bounding circles
    radius_m: np.ndarray  # [Q]
    key: np.ndarray  # [Q] int64, even: 2 x group (surface, then patch, then marking groups)
    marking: np.ndarray  # [Q] bool: a painted line (may take the far colour)
    first_marking_key: int  # keys below this are lane surfaces or patches
    first_patch_key: int  # keys below this are lane surfaces
    chunk_centre_m: np.ndarray  # [C, 2]
    chunk_radius_m: np.ndarray  # [C]
    chunk_start: np.ndarray  # [C] int64: first polygon of each chunk
    chunk_len: np.ndarray  # [C] int64: its polygons (up to CHUNK_QUADS)

    @classmethod
    def build(cls, surface: QuadSet, markings: QuadSet, patches: QuadSet | None = None) -> FlatPass:
        """``patches`` (a worn road's, :class:`RoadMesh`) are filled over the surfaces and
        under the markings; without them the keys are those of surfaces and markings alone."""
        patches = patches if patches is not None else QuadSet.build([])
        ns, nm, npatch = len(surface.group), len(markings.group), len(patches.group)

        def groups(q: QuadSet) -> int:
            return int(q.group.max()) + 1 if len(q.group) else 0

        first_patch = 2 * groups(surface)
        first_marking = first_patch + 2 * groups(patches)

        def chunks(n: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
            start = np.arange(0, n, CHUNK_QUADS, dtype=np.int64)
            return start + offset, np.minimum(CHUNK_QUADS, n - start)

        (s0, sl), (m0, ml), (p0, pl) = chunks(ns, 0), chunks(nm, ns), chunks(npatch, ns + nm)
        sets = (surface, markings, patches)
        return cls(
            quads_m=np.concatenate([q.quads_m for q in sets]).astype(np.float64),
            centre_m=np.concatenate([q.centre_m for q in sets]),
            radius_m=np.concatenate([q.radius_m for q in sets]),
            key=np.concatenate(
                [
                    2 * surface.group,
                    first_marking + 2 * markings.group,
                    first_patch + 2 * patches.group,
                ]
            ).astype(np.int64),
            marking=np.concatenate(
                [np.zeros(ns, dtype=bool), np.ones(nm, dtype=bool), np.zeros(npatch, dtype=bool)]
            ),
            first_marking_key=first_marking,
            first_patch_key=first_patch,
            chunk_centre_m=np.concatenate([q.chunk_centre_m for q in sets]),
            chunk_radius_m=np.concatenate([q.chunk_radius_m for q in sets]),
            chunk_start=np.concatenate([s0, m0, p0]),
            chunk_len=np.concatenate([sl, ml, pl]),
        )

    def candidates(self, eye_xy_m: np.ndarray, reach_m: float) -> np.ndarray:
        """Indices of the polygons in chunks whose circle comes within ``reach_m`` of a point
        (the same polygons as :meth:`QuadSet.candidates` on each set)."""
        d = self.chunk_centre_m - eye_xy_m
        chunks = np.flatnonzero(
            np.einsum("ij,ij->i", d, d) <= np.square(reach_m + self.chunk_radius_m)
        )
        idx = self.chunk_start[chunks, None] + np.arange(CHUNK_QUADS)
        return idx[np.arange(CHUNK_QUADS) < self.chunk_len[chunks, None]]


@dataclass
class RoadMesh:
    """Every lane of a road map as quads on the road plane (world frame), built once."""

    surface: QuadSet
    """Lane surfaces: lanes of one road (same ``from``, ``to`` nodes) whose borders are the
    very same samples share a part; every other lane is a part of its own."""
    markings: QuadSet
    """Painted lines, a part each; a border two neighbouring lanes both paint is drawn once
    (a continuous line wins over dashes)."""
    patches: QuadSet | None = None
    """A worn road's repaired-asphalt patches (:func:`~sim.world.render.wear_patches`, one
    overlap-free part), filled between the surfaces and the markings; None: none."""

    def __post_init__(self) -> None:
        self.flat = FlatPass.build(self.surface, self.markings, self.patches)

    @classmethod
    def from_geometry(cls, geometry: RoadGeometry, worn: bool = False) -> RoadMesh:
        """``worn``: with the road's wear patches (:func:`~sim.world.render.wear_patches`)."""
        roads: dict[tuple[str, str], list[LaneGeometry]] = {}
        for lane in geometry.lanes.values():
            roads.setdefault(lane.index[:2], []).append(lane)
        surfaces: list[list[np.ndarray]] = []  # parts: lanes joined by exactly shared edges
        lines: list[tuple[np.ndarray, str, LaneGeometry]] = []  # one per distinct painted edge
        for lanes in roads.values():
            edges: list[tuple[np.ndarray, int]] = []  # this road's edges and their part
            strips = []  # (lane, left, right, part)
            for lane in lanes:
                (left, pl), (right, pr) = (
                    _shared(edges, lane.left_m),
                    _shared(edges, lane.right_m),
                )
                part = pl if pl is not None else pr
                if part is None:
                    part = len(surfaces)
                    surfaces.append([])
                strips.append((lane, left, right, part))
                edges.extend([(left, part), (right, part)])
            # an edge no other lane of the road shares sample for sample is pushed out by
            # SEAM_OVERLAP_M, so that a neighbour sampled differently (a concentric arc) or
            # on another road overlaps it instead of leaving a sliver of ground between
            shared = collections.Counter(id(e) for e, _ in edges)
            for lane, left, right, part in strips:
                out = SEAM_OVERLAP_M * _edge_normals(lane.heading_rad)  # towards the left
                surfaces[part].append(
                    _strip_polys(
                        left if shared[id(left)] > 1 else left + out,
                        right if shared[id(right)] > 1 else right - out,
                    )
                )
            for lane, left, right, _ in strips:
                for kind, edge in ((lane.line_left, left), (lane.line_right, right)):
                    if kind not in ("continuous", "striped"):
                        continue
                    same = next(
                        (k for k, (e, _, _) in enumerate(lines) if _coincide(e, edge)), None
                    )
                    if same is None:
                        lines.append((edge, kind, lane))
                    elif kind == "continuous":  # a continuous line wins over dashes on its edge
                        lines[same] = (edge, kind, lane)
        markings = []
        for edge, kind, lane in lines:
            if kind == "continuous":
                markings.append(
                    _line_polys(edge, _edge_normals(lane.heading_rad), MARKING_WIDTH_M / 2)
                )
            else:
                curved = not np.allclose(lane.heading_rad, lane.heading_rad[0])
                dashes = _dash_quads(lane, edge, curved)
                if dashes:
                    markings.append(np.concatenate(dashes))
        patches = None
        if worn:
            quads = wear_patches(geometry)  # [K, 4, 2], padded to strip polygons by repeats
            patches = QuadSet.build(
                [
                    np.concatenate(
                        [quads, np.repeat(quads[:, -1:], POLY_VERTICES - 4, axis=1)], axis=1
                    )
                ]
            )
        return cls(
            QuadSet.build([np.concatenate(p) for p in surfaces]), QuadSet.build(markings), patches
        )


def _shared(edges: list[tuple[np.ndarray, int]], edge: np.ndarray) -> tuple[np.ndarray, int | None]:
    """The sample-for-sample equal edge already in ``edges`` and its part, else ``(edge, None)``
    (neighbouring lanes then use the very same vertices, so their fills meet exactly)."""
    for e, part in edges:
        if e.shape == edge.shape and np.allclose(e, edge, rtol=0.0, atol=1e-6):
            return e, part
    return edge, None


def _coincide(a: np.ndarray, b: np.ndarray, tol_m: float = 0.02) -> bool:
    """Whether two sampled edges trace the same line (same ends, same middle by arc length),
    e.g. the shared border of two lanes sampled differently (two arcs of a ring)."""
    if not (np.allclose(a[0], b[0], atol=tol_m) and np.allclose(a[-1], b[-1], atol=tol_m)):
        return False

    def middle(e: np.ndarray) -> np.ndarray:
        s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(e, axis=0), axis=1))])
        return np.array([np.interp(s[-1] / 2, s, e[:, k]) for k in (0, 1)])

    return bool(np.linalg.norm(middle(a) - middle(b)) <= tol_m)


# ------------------------------------------------------------------------------ objects
def object_heights(length_m: np.ndarray, kind: np.ndarray) -> np.ndarray:
    """Box heights [m]: cars 1.5 m, vehicles at least 7 m long 3.5 m (trucks), obstacles 1 m."""
    length = np.asarray(length_m, dtype=np.float64)
    h = np.where(length >= TRUCK_LENGTH_M, TRUCK_HEIGHT_M, CAR_HEIGHT_M)
    return np.where(np.asarray(kind) == KIND_OBSTACLE, OBSTACLE_HEIGHT_M, h)


def object_colours(
    ids: np.ndarray, kind: np.ndarray, palette: PerspectivePalette, seed: int = 0
) -> np.ndarray:
    """Body colours ``float[N, 3]``: a vehicle's colour is a hash of ``(id, seed)`` into
    ``palette.vehicles`` (the same identity keeps its colour all episode); obstacles take
    ``palette.obstacle``."""
    x = np.asarray(ids, dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):  # splitmix64 of (id, seed): uint64 arithmetic wraps
        h = (
            x
            + np.uint64(seed & 0xFFFFFFFF) * np.uint64(0x100000001B3)
            + np.uint64(0x9E3779B97F4A7C15)
        )
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
    cars = np.asarray(palette.vehicles, dtype=np.float64)
    out = cars[(h % np.uint64(len(cars))).astype(np.int64)]
    out[np.asarray(kind) == KIND_OBSTACLE] = palette.obstacle
    return out


# ------------------------------------------------------------------------------ geometry
def clip_near(polys: np.ndarray, near_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Clip convex polygons ``[P, n, 3]`` (camera frame) to the half-space ``z >= near_m``.

    Returns ``(clipped [P, 2n, 3], count [P])``: each polygon's ``count`` vertices in order,
    padded by repeating the last one (a zero-length edge fills nothing); count 0 = nothing
    left.  A convex polygon gains at most one vertex; a slightly concave strip may cross the
    plane more than twice, hence the 2n slots (its bridges along the plane fill nothing).
    Vectorised Sutherland-Hodgman against one plane: each edge keeps its start when that is in
    front, and adds its crossing point when it crosses the plane.
    """
    p, n = polys.shape[:2]
    z = polys[..., 2]
    nxt = np.roll(polys, -1, axis=1)
    zn = nxt[..., 2]
    inside = z >= near_m
    crossing = inside != (zn >= near_m)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(crossing, (near_m - z) / (zn - z), 0.0)
    inter = polys + t[..., None] * (nxt - polys)
    inter[..., 2] = np.where(crossing, near_m, inter[..., 2])
    cand = np.stack([polys, inter], axis=2).reshape(p, 2 * n, 3)
    keep = np.stack([inside, crossing], axis=2).reshape(p, 2 * n)
    order = np.argsort(~keep, axis=1, kind="stable")  # kept slots first, in order
    count = keep.sum(axis=1)
    pad = np.minimum(np.arange(2 * n)[None, :], np.maximum(count - 1, 0)[:, None])
    out = np.take_along_axis(
        np.take_along_axis(cand, order[..., None], axis=1), pad[..., None], axis=1
    )
    return out, count


_FEW = 16  # up to this many polygons cross the near plane: clip them one by one


def _clip_one(poly: list[list[float]], near_m: float) -> list[list[float]]:
    """:func:`clip_near` for one polygon given as a list of ``[x, y, z]``: its clipped vertices."""
    out = []
    for k, a in enumerate(poly):
        b = poly[k + 1 - len(poly)]
        a_in, b_in = a[2] >= near_m, b[2] >= near_m
        if a_in:
            out.append(a)
        if a_in != b_in:
            t = (near_m - a[2]) / (b[2] - a[2])
            out.append([a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]), near_m])
    return out


def _clip_crossing(polys: np.ndarray, near_m: float) -> tuple[np.ndarray, np.ndarray]:
    """:func:`clip_near` for polygons ``[P, n, 3]`` that all cross the plane: one by one in
    plain Python when there are a handful (the usual case), vectorised otherwise."""
    if len(polys) > _FEW:
        return clip_near(polys, near_m)
    n = polys.shape[1]
    out = np.empty((len(polys), 2 * n, 3))
    count = np.empty(len(polys), dtype=np.int64)
    for k, poly in enumerate(polys.tolist()):
        clipped = _clip_one(poly, near_m)
        count[k] = len(clipped)
        out[k] = clipped + clipped[-1:] * (2 * n - len(clipped))
    return out, count


def _clip_to_px(view: _View, polys: np.ndarray) -> list[np.ndarray]:
    """Polygons ``[P, n, 3]`` (camera frame) that all cross the clip plane, clipped
    (:func:`clip_near`) and projected: one ``int32[k, 2]`` array of fixed-point pixels per
    polygon, its ``k`` clipped vertices (a crossing convex polygon keeps at least 3).  One
    by one in plain Python when there are a handful, vectorised otherwise; one projection."""
    if len(polys) > _FEW:
        clipped, count = clip_near(polys, view.near_m)
        return [p[:c] for p, c in zip(view.to_px(clipped), count.tolist())]
    verts: list[list[float]] = []
    ends = []
    for poly in polys.tolist():
        verts.extend(_clip_one(poly, view.near_m))
        ends.append(len(verts))
    px = view.to_px(np.array(verts))
    return [px[a:b] for a, b in zip([0, *ends[:-1]], ends)]


@dataclass(frozen=True)
class _View:
    """One camera at one ego pose: world -> camera frame, the culling planes, projection."""

    camera: PinholeCamera
    a: np.ndarray  # [3, 3] world vector -> camera frame: q = p @ a + b
    b: np.ndarray  # [3]
    eye_m: np.ndarray  # [3] the optical centre, world frame
    near_m: float
    planes: np.ndarray  # [4, 3] inward unit normals of the side/top/bottom planes, camera frame

    @staticmethod
    def frustum_planes(camera: PinholeCamera) -> np.ndarray:
        """The inward unit normals ``[4, 3]`` of the frustum's side planes through the optical
        centre (image edges at u = -0.5, W - 0.5 and v = -0.5, H - 0.5), camera frame."""
        tx = (camera.width_px / 2.0) / camera.fx
        ty = (camera.height_px / 2.0) / camera.fy
        planes = np.array([[1.0, 0.0, tx], [-1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, -1.0, ty]])
        return planes / np.linalg.norm(planes, axis=1, keepdims=True)

    @classmethod
    def build(
        cls,
        camera: PinholeCamera,
        ego_xy_m: np.ndarray,
        ego_heading_rad: float,
        planes: np.ndarray | None = None,
    ) -> _View:
        """``planes``: :meth:`frustum_planes` of ``camera``, when the caller has them cached."""
        c, s = np.cos(ego_heading_rad), np.sin(ego_heading_rad)
        world_to_ego = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])  # p_ego = d @ this
        r = camera.rotation_ego_from_camera  # q = (p_ego - position) @ r
        a = world_to_ego @ r
        ego3 = np.array([ego_xy_m[0], ego_xy_m[1], 0.0])
        b = -ego3 @ a - camera.position_m @ r
        eye = ego3 + camera.position_m @ world_to_ego.T
        if planes is None:
            planes = cls.frustum_planes(camera)
        return cls(camera, a, b, eye, max(camera.near_m, MIN_CLIP_M), planes)

    def visible(self, centre_cam: np.ndarray, radius_m: np.ndarray) -> np.ndarray:
        """Whether bounding spheres (camera-frame centres ``[N, 3]``) may touch the view."""
        ok = centre_cam[:, 2] + radius_m >= self.near_m
        ok &= np.all(centre_cam @ self.planes.T >= -radius_m[:, None], axis=1)
        return ok

    def to_px(self, q: np.ndarray) -> np.ndarray:
        """Camera-frame points ``[..., 3]`` in front of the clip plane -> OpenCV fixed-point
        pixels ``int32[..., 2]`` (the camera's intrinsics ``K``)."""
        return np.rint(self.camera.camera_to_pixel(q) * SCALE).astype(np.int32)


SKY_SPILL_PX = 3  # [px] how far above the horizon the road's fill is undone (see _CameraCache)


class _CameraCache:
    """Per camera (a frozen, hashable model): the background image, the sky mask, the
    per-pixel viewing rays and the road plane's depth."""

    def __init__(self, camera: PinholeCamera, palette: PerspectivePalette) -> None:
        h, w = camera.height_px, camera.width_px
        v, u = np.mgrid[0:h, 0:w].astype(np.float64)
        uv = np.stack([u, v], axis=-1)
        ground = camera.pixel_to_ground(uv)
        self.sky = np.isnan(ground[..., 0])
        self.background = np.empty((h, w, 3), dtype=np.uint8)
        self.background[:] = palette.ground
        self.background[self.sky] = palette.sky
        self.sky3 = np.repeat(self.sky[..., None], 3, axis=-1)
        _, depth = camera.project(np.nan_to_num(ground))
        self.ground_depth = np.where(self.sky, np.inf, depth).astype(np.float32)
        self.rays = camera.camera_rays(uv)  # camera frame, z = 1
        self.planes = _View.frustum_planes(camera)
        # The rows where a road fill may spill onto the sky: sky pixels within SKY_SPILL_PX
        # of a ground pixel (every road point projects below the horizon; a fill lights at
        # most a pixel beyond its polygon).
        k = 2 * SKY_SPILL_PX + 1
        near_ground = cv2.dilate((~self.sky).astype(np.uint8), np.ones((k, k), np.uint8)) > 0
        rows = np.flatnonzero((self.sky & near_ground).any(axis=1))
        self.spill_rows = slice(int(rows[0]), int(rows[-1]) + 1) if len(rows) else slice(0, 0)
        self.gain = (
            _frame_gain(camera, palette, self.ground_depth)  # night palettes only
            if palette.dims_the_frame
            else None
        )


def _frame_gain(
    camera: PinholeCamera, palette: PerspectivePalette, ground_depth_m: np.ndarray
) -> np.ndarray:
    """The per-pixel gain ``uint8[H, W, 3]`` (255 = 1) of a palette's night lighting and
    vignette (:class:`PerspectivePalette`), fixed per camera: the road point a pixel sees
    does not move in the camera frame, so the light's falloff is a property of the pixel.
    Objects take the gain of the road behind them: their lower part, nearer, is lit more."""
    gain = np.ones(ground_depth_m.shape)
    if palette.light_range_m > 0.0:
        near = np.exp(-ground_depth_m.astype(np.float64) / palette.light_range_m)  # 0 in the sky
        gain *= palette.light_floor + (1.0 - palette.light_floor) * near
    if palette.vignette > 0.0:
        h, w = ground_depth_m.shape
        v, u = np.mgrid[0:h, 0:w].astype(np.float64)
        r2 = ((u - camera.cx) ** 2 + (v - camera.cy) ** 2) / ((w / 2) ** 2 + (h / 2) ** 2)
        gain *= np.clip(1.0 - palette.vignette * r2, 0.0, 1.0)
    return np.repeat(np.rint(255.0 * gain).astype(np.uint8)[..., None], 3, axis=-1)


class PerspectiveRenderer:
    """Renders a :class:`RoadMesh` and the objects on it through a :class:`PinholeCamera`."""

    def __init__(
        self, geometry: RoadGeometry | RoadMesh, palette: PerspectivePalette = PerspectivePalette()
    ) -> None:
        """``geometry``: a road map (its mesh is built here, with wear patches when the
        palette has a patch colour) or a ready :class:`RoadMesh`, taken as it is."""
        self.mesh = (
            geometry
            if isinstance(geometry, RoadMesh)
            else RoadMesh.from_geometry(geometry, worn=palette.patch is not None)
        )
        self.palette = palette
        self._cameras: dict[PinholeCamera, _CameraCache] = {}
        far = tuple(
            round(r + MARKING_FAR_BLEND * (m - r)) for r, m in zip(palette.road, palette.marking)
        )
        self._marking_far = far
        light = np.asarray(palette.light, dtype=np.float64)
        self._light = light / np.linalg.norm(light)
        self._styles: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    def _flat_colour(self, key: int) -> tuple[int, ...]:
        """The fill colour of a :class:`FlatPass` key."""
        if key < self.mesh.flat.first_patch_key:
            return self.palette.road
        if key < self.mesh.flat.first_marking_key:
            return self.palette.patch if self.palette.patch is not None else self.palette.road
        return self._marking_far if key % 2 else self.palette.marking

    def _style(
        self,
        ids: np.ndarray,
        kind: np.ndarray,
        length_m: np.ndarray,
        heights_m: np.ndarray | None,
        colour_seed: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Every object's box height ``[N]`` and body colour ``[N, 3]``
        (:func:`object_heights`, :func:`object_colours`), remembered for the last few object
        lists: an episode's identities, kinds and sizes do not change from frame to frame."""
        key = (
            colour_seed,
            ids.dtype.str,
            ids.tobytes(),
            kind.dtype.str,
            kind.tobytes(),
            length_m.tobytes() if heights_m is None else None,
        )
        style = self._styles.get(key)
        if style is None:
            height = object_heights(length_m, kind) if heights_m is None else None
            style = (height, object_colours(ids, kind, self.palette, colour_seed))
            if len(self._styles) >= STYLE_CACHE:
                del self._styles[next(iter(self._styles))]
            self._styles[key] = style
        if heights_m is not None:
            return np.asarray(heights_m, dtype=np.float64), style[1]
        return style

    def _cache(self, camera: PinholeCamera) -> _CameraCache:
        cache = self._cameras.get(camera)
        if cache is None:
            cache = self._cameras[camera] = _CameraCache(camera, self.palette)
        return cache

    def render(
        self,
        camera: PinholeCamera,
        ego_xy_m: np.ndarray,
        ego_heading_rad: float,
        objects: SceneObjects,
        ids: np.ndarray | None = None,
        heights_m: np.ndarray | None = None,
        colour_seed: int = 0,
        instance: bool = False,
        depth: bool = False,
    ) -> PerspectiveFrame:
        """One frame of ``camera`` on the ego at ``ego_xy_m`` (world frame [m]) heading
        ``ego_heading_rad`` [rad].

        :param objects: the other road users and obstacles (world frame); the ego is not drawn
        :param ids: each object's identity ``[N]`` (default: its index), for the instance mask
            and its colour
        :param heights_m: box heights ``[N]`` [m] (default: :func:`object_heights`)
        :param colour_seed: reshuffles which vehicle gets which palette colour
        :param instance: also return the instance mask (``ids`` per pixel, -1 for none)
        :param depth: also return the depth image
        """
        cache = self._cache(camera)
        view = _View.build(
            camera, np.asarray(ego_xy_m, dtype=np.float64), float(ego_heading_rad), cache.planes
        )
        img = cache.background.copy()
        self._draw_road(img, view)
        # a far road quad's fill may touch the pixel row above the horizon
        rows = cache.spill_rows
        np.copyto(img[rows], cache.background[rows], where=cache.sky3[rows])
        face_id = np.full(img.shape[:2], -1, dtype=np.int32) if (instance or depth) else None
        planes, owners = self._draw_boxes(img, face_id, view, objects, ids, heights_m, colour_seed)
        if cache.gain is not None:
            cv2.multiply(img, cache.gain, dst=img, scale=1.0 / 255.0)
        frame = PerspectiveFrame(img)
        if face_id is not None:
            hit = face_id >= 0
            if instance:
                frame.instance = np.full(face_id.shape, -1, dtype=np.int32)
                frame.instance[hit] = owners[face_id[hit]]
            if depth:
                frame.depth_m = cache.ground_depth.copy()
                k = face_id[hit]
                n_dot_r = np.einsum("ij,ij->i", cache.rays[hit], planes[k, :3])
                frame.depth_m[hit] = (planes[k, 3] / n_dot_r).astype(np.float32)
        return frame

    # -- the road plane --------------------------------------------------------------------
    def _draw_road(self, img: np.ndarray, view: _View) -> None:
        """Fill the visible surfaces and markings (:class:`FlatPass`), a key per call; a
        marking centred beyond :data:`MARKING_FAR_M` in depth takes the far colour."""
        flat = self.mesh.flat
        near = flat.candidates(view.eye_m[:2], VIEW_DISTANCE_M)
        if not len(near):
            return
        a2, b = view.a[:2], view.b
        centre = flat.centre_m[near] @ a2 + b
        vis = view.visible(centre, flat.radius_m[near])
        near = near[vis]
        if not len(near):
            return
        key = flat.key[near] + (flat.marking[near] & (centre[vis, 2] > MARKING_FAR_M))
        q = flat.quads_m[near] @ a2 + b  # [P, K, 3] camera frame (the road plane: z_world = 0)
        z_ok = q[..., 2] >= view.near_m
        front = z_ok.all(axis=1)
        cross = np.flatnonzero(z_ok.any(axis=1) & ~front)
        # the polygons in front of the clip plane in key order (stable), a fill call per key;
        # the few that cross it are clipped and join their key's call, after the others
        front = np.flatnonzero(front)
        order = front[np.argsort(key[front], kind="stable")]
        polys = list(view.to_px(q[order]))  # OpenCV takes a list of arrays faster than a 3D one
        calls: dict[int, list[np.ndarray]] = {}
        if len(order):
            key_front = key[order]
            bounds = (np.flatnonzero(np.diff(key_front)) + 1).tolist()
            for k, lo, hi in zip(
                key_front[[0, *bounds]].tolist(), [0, *bounds], [*bounds, len(polys)]
            ):
                calls[k] = polys[lo:hi]
        if len(cross):
            for k, poly in zip(key[cross].tolist(), _clip_to_px(view, q[cross])):
                calls.setdefault(k, []).append(poly)
            calls = dict(sorted(calls.items()))
        for k, group in calls.items():
            cv2.fillPoly(img, group, self._flat_colour(k), cv2.LINE_8, SHIFT)

    # -- boxes ---------------------------------------------------------------------------------
    def _draw_boxes(
        self, img, face_id, view: _View, objects: SceneObjects, ids, heights_m, colour_seed: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Paint the visible faces far to near; returns the drawn faces' camera-frame planes
        ``[F, 4]`` (``n . q = d`` as ``n, d``) and owners ``[F]`` (indexed by ``face_id``)."""
        n_obj = len(objects.position_m)
        none = (np.zeros((0, 4)), np.zeros(0, dtype=np.int32))
        if not n_obj:
            return none
        ids = np.arange(n_obj) if ids is None else np.asarray(ids)
        length = np.asarray(objects.length_m, dtype=np.float64)
        height, body = self._style(ids, np.asarray(objects.kind), length, heights_m, colour_seed)
        pos = np.asarray(objects.position_m, dtype=np.float64)
        width = np.asarray(objects.width_m, dtype=np.float64)
        # cull by bounding sphere: distance, near plane, frustum
        radius = 0.5 * np.sqrt(length**2 + width**2 + height**2)
        d = pos - view.eye_m[:2]
        sel = np.flatnonzero(np.einsum("ij,ij->i", d, d) <= np.square(VIEW_DISTANCE_M + radius))
        if len(sel):
            centre = np.concatenate([pos[sel], 0.5 * height[sel, None]], axis=1) @ view.a + view.b
            sel = sel[view.visible(centre, radius[sel])]
        if not len(sel):
            return none
        heading = np.asarray(objects.heading_rad, dtype=np.float64)[sel]
        # painter's order: the nearest point of each footprint, farthest first, ties by id
        c, s = np.cos(heading), np.sin(heading)
        rel = view.eye_m[:2] - pos[sel]
        lx, ly = c * rel[:, 0] + s * rel[:, 1], -s * rel[:, 0] + c * rel[:, 1]
        gap = np.hypot(
            lx - np.clip(lx, -length[sel] / 2, length[sel] / 2),
            ly - np.clip(ly, -width[sel] / 2, width[sel] / 2),
        )
        order = np.lexsort((ids[sel], -gap))
        sel, heading, c, s = sel[order], heading[order], c[order], s[order]
        m = len(sel)
        foot = box_corners(pos[sel], heading, length[sel], width[sel])  # [M, 4, 2]
        corners = np.zeros((m, 8, 3))
        corners[:, :4, :2] = foot
        corners[:, 4:, :2] = foot
        corners[:, 4:, 2] = height[sel, None]
        # outward face normals, world frame [M, 5, 3]
        rot = np.zeros((m, 3, 3))
        rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1], rot[:, 2, 2] = c, s, -s, c, 1.0
        normals = _FACE_NORMALS_BOX @ rot  # row vectors: n_world = n_box @ [[c, s], [-s, c]]
        faces_w = corners[:, _FACES]  # [M, 5, 4, 3]
        front = np.einsum("mfk,mfk->mf", normals, view.eye_m - faces_w[:, :, 0]) > 1e-9
        mi, fi = np.nonzero(front)  # row-major: box by box, far to near
        if not len(mi):
            return none
        q = faces_w[mi, fi] @ view.a + view.b  # [F, 4, 3] camera frame
        z_ok = q[..., 2] >= view.near_m
        whole = z_ok.all(axis=1)
        cross = np.flatnonzero(z_ok.any(axis=1) & ~whole)
        if len(cross):
            poly = np.concatenate([q, np.repeat(q[:, -1:], 4, axis=1)], axis=1)  # clip_near's shape
            poly[cross] = _clip_crossing(q[cross], view.near_m)[0]  # each keeps >= 3 vertices
            whole[cross] = True
        else:
            poly = q
        amb = self.palette.ambient
        n_world = normals[mi, fi]
        shade = amb + (1.0 - amb) * 0.5 * (1.0 + n_world @ self._light)
        colour = np.clip(np.rint(body[sel][mi] * shade[:, None]), 0, 255).astype(np.int64)
        n_cam = n_world @ view.a
        planes = np.concatenate([n_cam, np.einsum("fk,fk->f", n_cam, q[:, 0])[:, None]], axis=1)
        owners = ids[sel][mi].astype(np.int32)
        px = list(view.to_px(poly))
        colours = colour.tolist()
        for k in np.flatnonzero(whole).tolist():  # faces wholly behind the clip plane: none
            cv2.fillConvexPoly(img, px[k], colours[k], cv2.LINE_8, SHIFT)
            if face_id is not None:
                cv2.fillConvexPoly(face_id, px[k], k, cv2.LINE_8, SHIFT)
        return planes, owners


# ------------------------------------------------------------------------------ the adapter
_RENDERERS: dict[tuple[int, PerspectivePalette], tuple[RoadGeometry, PerspectiveRenderer]] = {}
RENDERER_CACHE_SIZE = 32
"""Renderers kept per process (one per road map and palette; generated roads give a map per
seed), the oldest dropped first, as :data:`sim.world.env.GEOMETRY_CACHE_SIZE` maps."""


def renderer_for(
    geometry: RoadGeometry, palette: PerspectivePalette = PerspectivePalette()
) -> PerspectiveRenderer:
    """The process-wide renderer of a road map in a palette (the palettes of the visual
    conditions: :func:`sim.world.visual.visual_palettes`).  A map's mesh is built once and
    shared by its palettes (a worn road's, with its patches, once more)."""
    key = (id(geometry), palette)
    entry = _RENDERERS.get(key)
    if entry is None or entry[0] is not geometry:
        worn = palette.patch is not None
        mesh = next(
            (
                r.mesh
                for g, r in _RENDERERS.values()
                if g is geometry and (r.palette.patch is not None) == worn
            ),
            None,
        )
        _RENDERERS.pop(key, None)
        while len(_RENDERERS) >= RENDERER_CACHE_SIZE:  # the oldest goes first
            _RENDERERS.pop(next(iter(_RENDERERS)))
        renderer = PerspectiveRenderer(mesh if mesh is not None else geometry, palette)
        entry = _RENDERERS[key] = (geometry, renderer)
    return entry[1]


def render_env(
    env, camera: PinholeCamera, instance: bool = False, depth: bool = False, colour_seed: int = 0
) -> PerspectiveFrame:
    """Render ``camera`` on a :class:`~sim.world.env.DrivingEnv`'s current state: the ego's
    pose, every other vehicle and obstacle (identities = the ``truth`` sensor's ids, their
    index), the env's road map.  Kept for callers of the adapter: it is
    :meth:`DrivingEnv.render_camera <sim.world.env.DrivingEnv.render_camera>`."""
    return env.render_camera(camera, instance=instance, depth=depth, colour_seed=colour_seed)
