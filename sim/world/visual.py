"""Visual conditions: what every camera looks like under each of
:data:`~sim.world.scenarios.VISUAL_CONDITIONS` (``highway:night``).

Policies are trained on ``day``; the other conditions shift the look of the world while
keeping its geometry, traffic and seeds, so a drop in score measures visual
generalisation (domain shift) alone.  A condition is a pair of palettes, one per renderer:
:class:`~sim.world.render.Palette` for the bird's-eye raster (and the overview people
see), :class:`~sim.world.perspective.PerspectivePalette` for the perspective rig.

=========  =========================================================================
condition  look
=========  =========================================================================
day        the renderers' defaults, exactly (the same bytes as before conditions existed)
dusk       a low warm sun: orange-pink sky, dimmer and warmer ground, road and cars,
           the light low in the west, a lower ambient (strong face contrast)
night      dark sky, ground and road, dim markings, dark car bodies, lit from above as
           under street lights; the rig's frames are also dimmed with the road distance
           each pixel sees (lit near the car, as by its own lights) and vignetted
colours    other vehicles in saturated, unusual body colours and another obstacle
           colour; everything else as ``day``
worn       a lighter, older asphalt with darker repaired patches (a fixed texture of
           each map, :func:`~sim.world.render.wear_patches`) and lane markings faded
           55% of the way to the road colour
=========  =========================================================================

The ego's own box in the bird's-eye view keeps its colour in ``colours`` (it is not one of
the *other* vehicles) and darkens with the scene in ``dusk`` and ``night``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sim.world.perspective import PerspectivePalette
from sim.world.render import Palette
from sim.world.scenarios import VISUAL_CONDITIONS

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class VisualPalettes:
    """The palettes of one visual condition, one per renderer."""

    condition: str
    bev: Palette
    """The bird's-eye raster (``bev`` sensor) and the overview (:mod:`sim.world.render`)."""
    rig: PerspectivePalette
    """Every perspective camera of the rig (:mod:`sim.world.perspective`)."""


def _tint(colour: RGB, gain: tuple[float, float, float]) -> RGB:
    """``colour`` times a per-channel gain, rounded and clipped to 0-255."""
    return tuple(
        min(255, max(0, round(c * g)))  # type: ignore[return-value]
        for c, g in zip(colour, gain)
    )


def _blend(a: RGB, b: RGB, t: float) -> RGB:
    """The colour ``t`` of the way from ``a`` to ``b``."""
    return tuple(round(x + t * (y - x)) for x, y in zip(a, b))  # type: ignore[return-value]


_DAY_BEV, _DAY_RIG = Palette(), PerspectivePalette()

# -- dusk: a low warm sun -----------------------------------------------------------------
DUSK_TINT = (0.88, 0.72, 0.6)  # what the warm, dimmer light does to a surface colour
_DUSK_GROUND: RGB = (52, 68, 40)
_DUSK_ROAD: RGB = (84, 76, 72)
_DUSK_MARKING: RGB = (225, 196, 165)
_DUSK_OBSTACLE: RGB = _tint(_DAY_BEV.obstacle, DUSK_TINT)
DUSK = VisualPalettes(
    "dusk",
    bev=Palette(
        ground=_DUSK_GROUND,
        road=_DUSK_ROAD,
        marking=_DUSK_MARKING,
        vehicle=_tint(_DAY_BEV.vehicle, DUSK_TINT),
        obstacle=_DUSK_OBSTACLE,
        ego=_tint(_DAY_BEV.ego, DUSK_TINT),
        route=_DAY_BEV.route,
    ),
    rig=PerspectivePalette(
        sky=(236, 148, 118),
        ground=_DUSK_GROUND,
        road=_DUSK_ROAD,
        marking=_DUSK_MARKING,
        obstacle=_DUSK_OBSTACLE,
        vehicles=tuple(_tint(c, DUSK_TINT) for c in _DAY_RIG.vehicles),
        light=(-0.95, 0.3, 0.15),  # the sun 8.5 deg above the western horizon (world: x east)
        ambient=0.3,
    ),
)

# -- night: street lights, the car's own lights --------------------------------------------
NIGHT_TINT = (0.45, 0.46, 0.54)  # dim, slightly blue (scotopic) surface colours
_NIGHT_GROUND: RGB = (16, 28, 21)
_NIGHT_ROAD: RGB = (46, 46, 52)
_NIGHT_MARKING: RGB = (150, 150, 138)
_NIGHT_OBSTACLE: RGB = _tint(_DAY_BEV.obstacle, NIGHT_TINT)
NIGHT = VisualPalettes(
    "night",
    bev=Palette(
        ground=_NIGHT_GROUND,
        road=_NIGHT_ROAD,
        marking=_NIGHT_MARKING,
        vehicle=_tint(_DAY_BEV.vehicle, NIGHT_TINT),
        obstacle=_NIGHT_OBSTACLE,
        ego=_tint(_DAY_BEV.ego, NIGHT_TINT),
        route=_tint(_DAY_BEV.route, NIGHT_TINT),
    ),
    rig=PerspectivePalette(
        sky=(30, 36, 66),
        ground=_NIGHT_GROUND,
        road=_NIGHT_ROAD,
        marking=_NIGHT_MARKING,
        obstacle=_NIGHT_OBSTACLE,
        vehicles=tuple(_tint(c, NIGHT_TINT) for c in _DAY_RIG.vehicles),
        light=(0.0, 0.0, 1.0),  # street lights overhead: roofs brightest, sides alike
        ambient=0.6,
        light_range_m=30.0,
        light_floor=0.5,
        vignette=0.35,
    ),
)

# -- colours: other road users in unusual body colours --------------------------------------
UNUSUAL_VEHICLES: tuple[RGB, ...] = (
    (0, 235, 235),
    (255, 110, 0),
    (255, 20, 170),
    (150, 255, 0),
    (255, 0, 255),
    (145, 0, 255),
    (255, 170, 200),
    (255, 240, 0),
    (0, 255, 140),
    (130, 60, 0),
)
"""Cyan, vivid orange, hot pink, lime, magenta, violet, pale pink, lemon, spring green, rust:
each far in hue from the ``day`` colour of the same index (red, blue, white, black, grey,
yellow, green, purple, brown, teal), so every car changes colour."""
UNUSUAL_OBSTACLE: RGB = (30, 60, 230)  # deep blue barrier blocks instead of orange
COLOURS = VisualPalettes(
    "colours",
    bev=replace(_DAY_BEV, vehicle=UNUSUAL_VEHICLES[0], obstacle=UNUSUAL_OBSTACLE),
    rig=replace(_DAY_RIG, vehicles=UNUSUAL_VEHICLES, obstacle=UNUSUAL_OBSTACLE),
)

# -- worn: old asphalt, patches, faded paint -----------------------------------------------
MARKING_FADE = 0.55  # worn markings are this much of the way from the day paint to the road
_WORN_ROAD: RGB = (124, 121, 115)
_WORN_PATCH: RGB = (100, 98, 95)  # repaired asphalt: newer, darker
_WORN_MARKING: RGB = _blend(_DAY_BEV.marking, _WORN_ROAD, MARKING_FADE)
WORN = VisualPalettes(
    "worn",
    bev=replace(_DAY_BEV, road=_WORN_ROAD, marking=_WORN_MARKING, patch=_WORN_PATCH),
    rig=replace(_DAY_RIG, road=_WORN_ROAD, marking=_WORN_MARKING, patch=_WORN_PATCH),
)

CONDITIONS: dict[str, VisualPalettes] = {
    p.condition: p for p in (VisualPalettes("day", _DAY_BEV, _DAY_RIG), DUSK, NIGHT, COLOURS, WORN)
}
"""Every condition of :data:`VISUAL_CONDITIONS`, in its order."""


def visual_palettes(condition: str) -> VisualPalettes:
    """The palettes of a visual condition; an unknown one is refused with the known list."""
    try:
        return CONDITIONS[condition]
    except KeyError:
        raise ValueError(
            f"unknown visual condition {condition!r}; known: {', '.join(VISUAL_CONDITIONS)}"
        ) from None
