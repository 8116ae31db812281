"""Procedural cartoon faces with a continuous, known smile degree (numpy only, vectorized).

Every face is drawn from a dict of factors: ``smile`` in [0, 5] and nuisance factors (skin
tone, face shape, position, scale, tilt, hair, clothing, background, lighting, noise) that are
drawn independently of the smile. The smile is deliberately a large, high-contrast feature
(a mouth of a few pixels did not survive an 8x8 VQ-VAE): it changes the
mouth width, lip curvature and opening (teeth and a dark interior), raises and reddens the
cheeks and squints the eyes, and the mouth spans about a third of the face.

Rendering is done at ``SUPERSAMPLE`` times the output size with hard masks and then
box-filtered, which antialiases every edge at once.
"""

from __future__ import annotations

import numpy as np

#: bump when the pictures change: artifacts trained on another version are refused
GENERATOR_VERSION = 4
#: smile degrees lie in [0, SMILE_MAX] (the paper's CelebA-Dialog scale)
SMILE_MAX = 5.0
IMAGE_SIZE = 64
SUPERSAMPLE = 2
#: images rendered per vectorized chunk (bounds memory at ~100 MB)
RENDER_CHUNK = 256

# Palettes: each factor is an index into one of these, plus a small continuous jitter.
SKIN_TONES = np.array([
    [0.98, 0.86, 0.76], [0.94, 0.77, 0.64], [0.86, 0.66, 0.50], [0.72, 0.52, 0.36],
    [0.56, 0.38, 0.26], [0.42, 0.28, 0.19],
], dtype=np.float32)
HAIR_COLOURS = np.array([
    [0.08, 0.06, 0.05], [0.30, 0.18, 0.09], [0.55, 0.36, 0.18], [0.86, 0.72, 0.42],
    [0.62, 0.24, 0.10], [0.62, 0.62, 0.62],
], dtype=np.float32)
#: backgrounds and clothes come from small palettes: a continuum of colours would spend the
#: VQ-VAE's 256 codes on colour combinations instead of on the shape of the mouth
BACKGROUNDS = np.array([
    [0.55, 0.70, 0.85], [0.80, 0.80, 0.78], [0.60, 0.78, 0.55], [0.90, 0.80, 0.55],
    [0.75, 0.60, 0.80], [0.35, 0.45, 0.60], [0.85, 0.62, 0.60], [0.45, 0.60, 0.50],
], dtype=np.float32)
CLOTHES = np.array([
    [0.20, 0.30, 0.60], [0.70, 0.20, 0.20], [0.25, 0.55, 0.30], [0.85, 0.85, 0.85],
    [0.15, 0.15, 0.18], [0.85, 0.65, 0.20],
], dtype=np.float32)
IRIS_COLOURS = np.array([[0.30, 0.18, 0.08], [0.18, 0.36, 0.62], [0.22, 0.45, 0.25], [0.10, 0.08, 0.07]],
                        dtype=np.float32)
LIP_COLOUR = np.array([0.62, 0.12, 0.16], dtype=np.float32)
MOUTH_INSIDE = np.array([0.22, 0.03, 0.05], dtype=np.float32)
TEETH = np.array([0.97, 0.96, 0.92], dtype=np.float32)
BLUSH = np.array([0.93, 0.30, 0.32], dtype=np.float32)

#: names of the scalar nuisance factors (``factors`` also holds their RGB colour arrays)
NUISANCE_FACTORS: tuple[str, ...] = (
    "skin_tone", "skin_jitter", "face_aspect", "center_x", "center_y", "scale", "tilt",
    "hair_colour", "hair_volume", "hair_length", "fringe", "iris_colour", "eye_spacing",
    "background", "background_jitter", "background_gradient", "clothing", "light_angle", "light_strength",
    "gain", "noise",
)


def sample_factors(n: int, rng: np.random.Generator, smile_range: tuple[float, float] = (0.0, SMILE_MAX)
                   ) -> dict[str, np.ndarray]:
    """Draw the factors of ``n`` faces: smile uniform in ``smile_range``, nuisances independent of it."""
    lo, hi = float(smile_range[0]), float(smile_range[1])
    if not 0.0 <= lo < hi <= SMILE_MAX:
        raise ValueError(f"smile_range must satisfy 0 <= lo < hi <= {SMILE_MAX}, got {smile_range}")
    f: dict[str, np.ndarray] = {"smile": rng.uniform(lo, hi, n)}
    # Nuisance factors: moderate ranges so the smile stays the dominant source of variation
    # in the mouth region, all drawn independently of the smile and of each other.
    f["skin_tone"] = rng.integers(0, len(SKIN_TONES), n)
    f["skin_jitter"] = rng.uniform(-0.03, 0.03, n)
    f["face_aspect"] = rng.uniform(1.12, 1.32, n)
    # Geometry jitters little: every sub-code shift of the mouth costs the VQ-VAE's 256 codes
    # another set of mouth patches.
    f["center_x"] = rng.uniform(-0.03, 0.03, n)
    f["center_y"] = rng.uniform(-0.03, 0.03, n)
    f["scale"] = rng.uniform(0.96, 1.04, n)
    f["tilt"] = rng.uniform(-0.08, 0.08, n)  # radians, about +-4.5 degrees
    f["hair_colour"] = rng.integers(0, len(HAIR_COLOURS), n)
    f["hair_volume"] = rng.uniform(1.05, 1.25, n)
    f["hair_length"] = rng.uniform(-0.3, 1.1, n)  # lowest hair row in face units
    f["fringe"] = rng.uniform(-0.72, -0.48, n)  # hairline height in face units
    f["iris_colour"] = rng.integers(0, len(IRIS_COLOURS), n)
    f["eye_spacing"] = rng.uniform(0.34, 0.42, n)
    f["background"] = rng.integers(0, len(BACKGROUNDS), n)
    f["background_jitter"] = rng.uniform(-0.04, 0.04, n)
    f["background_gradient"] = rng.uniform(-0.15, 0.15, n)
    f["clothing"] = rng.integers(0, len(CLOTHES), n)
    f["light_angle"] = rng.uniform(-np.pi, np.pi, n)
    f["light_strength"] = rng.uniform(0.0, 0.12, n)
    f["gain"] = rng.uniform(0.92, 1.05, n)
    f["noise"] = rng.uniform(0.0, 0.015, n)
    return f


def nuisance_matrix(factors: dict[str, np.ndarray]) -> np.ndarray:
    """(n, len(NUISANCE_FACTORS)) float array of the nuisance factors, for independence checks."""
    return np.stack([np.asarray(factors[k], dtype=np.float64) for k in NUISANCE_FACTORS], axis=1)


def generate(n: int, seed: int, smile_range: tuple[float, float] = (0.0, SMILE_MAX),
             image_size: int = IMAGE_SIZE) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``n`` faces from their own generator seeded with ``seed`` (deterministic per seed).

    Returns images (float32, (n, 3, image_size, image_size) in [0, 1]) and the factors dict
    (``factors["smile"]`` is the known smile degree in [0, 5]).
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xFACE]))
    factors = sample_factors(n, rng, smile_range)
    return render(factors, rng, image_size), factors


def render(factors: dict[str, np.ndarray], rng: np.random.Generator, image_size: int = IMAGE_SIZE) -> np.ndarray:
    """Images (float32, (n, 3, S, S) in [0, 1]) of the given factors; ``rng`` draws the pixel noise."""
    n = len(factors["smile"])
    out = np.empty((n, 3, image_size, image_size), dtype=np.float32)
    for start in range(0, n, RENDER_CHUNK):
        chunk = {k: np.asarray(v)[start:start + RENDER_CHUNK] for k, v in factors.items()}
        out[start:start + RENDER_CHUNK] = _render_chunk(chunk, rng, image_size)
    return out


def _col(x: np.ndarray) -> np.ndarray:
    """Per-image scalars as (n, 1, 1) for broadcasting against (n, H, W) pixel grids."""
    return np.asarray(x, dtype=np.float32)[:, None, None]


def _paint(img: np.ndarray, mask: np.ndarray, colour: np.ndarray) -> None:
    """In place: set the pixels of ``mask`` (n, H, W) to ``colour`` ((3,) or (n, 3))."""
    colour = np.broadcast_to(np.asarray(colour, dtype=np.float32), (img.shape[0], 3))
    for c in range(3):
        np.copyto(img[:, c], colour[:, c, None, None], where=mask)


def _blend(img: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> None:
    """In place: alpha-blend ``colour`` over ``img`` with per-pixel ``alpha`` (n, H, W)."""
    colour = np.broadcast_to(np.asarray(colour, dtype=np.float32), (img.shape[0], 3))
    img *= 1.0 - alpha[:, None]
    img += alpha[:, None] * colour[:, :, None, None]


def _render_chunk(f: dict[str, np.ndarray], rng: np.random.Generator, image_size: int) -> np.ndarray:
    n = len(f["smile"])
    size = image_size * SUPERSAMPLE
    axis = (np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0
    py, px = axis[None, :, None], axis[None, None, :]  # image coordinates in [-1, 1], y down

    # Smile degree in [0, 1], through a square root: half of the visible change happens below
    # smile 1.25, so the VQ-VAE's training faces (smile < 2.5) already span most mouth shapes
    # and a reconstruction keeps the smile (a linear ramp did not survive: corr 0.22).
    t = np.sqrt(_col(f["smile"] / SMILE_MAX))
    skin = SKIN_TONES[f["skin_tone"]] + f["skin_jitter"][:, None].astype(np.float32)
    hair = HAIR_COLOURS[f["hair_colour"]]
    if "age" in f:  # the attribute twins only: smile-synthetic's faces stay byte-identical
        grey = _ramp(_col(f["age"]), 1.5, 5.0)[:, 0, 0, None] * 0.85
        hair = hair * (1.0 - grey) + GREY_HAIR * grey

    # Background: a flat colour with a vertical gradient.
    bg = BACKGROUNDS[f["background"]] + f["background_jitter"][:, None].astype(np.float32)
    img = np.broadcast_to(bg[:, :, None, None], (n, 3, size, size)).copy()
    img *= 1.0 + _col(f["background_gradient"])[:, None] * py[:, None]

    # Face frame: (u, v) with the face centre at 0, face half-width 1, rotated by the tilt.
    half_width = 0.56 * _col(f["scale"])
    cx, cy = _col(f["center_x"]), _col(f["center_y"]) - 0.06
    cos, sin = np.cos(_col(f["tilt"])), np.sin(_col(f["tilt"]))
    dx, dy = px - cx, py - cy
    u = (cos * dx + sin * dy) / half_width
    v = (-sin * dx + cos * dy) / half_width
    aspect = _col(f["face_aspect"])

    # Shoulders and neck (image frame, below the face).
    clothing = CLOTHES[f["clothing"]]
    shoulders = ((px - cx) / (1.5 * half_width)) ** 2 + ((py - (cy + 2.05 * half_width)) / (0.75 * half_width)) ** 2 < 1
    _paint(img, shoulders, clothing)
    neck = (np.abs(u) < 0.42) & (v > 0) & (v < 1.75 * aspect)
    _paint(img, neck, skin * 0.82)

    # Hair behind the head; long hair reaches down to ``hair_length``.
    volume = _col(f["hair_volume"])
    hair_back = ((u / volume) ** 2 + ((v + 0.12) / (aspect * volume)) ** 2 < 1) & (v < _col(f["hair_length"]) * aspect)
    _paint(img, hair_back, hair)

    face = u ** 2 + (v / aspect) ** 2 < 1
    _paint(img, face, skin)
    fv = v / aspect  # vertical position as a fraction of the face half-height

    # Cheek raise: blush patches that rise, grow and redden with the smile.
    cheek_v = 0.26 - 0.14 * t
    cheek_r = 0.18 + 0.08 * t
    cheeks = ((np.abs(u) - 0.52) ** 2 + ((fv - cheek_v) * aspect) ** 2) < cheek_r ** 2
    _blend(img, (cheeks & face) * (0.05 + 0.65 * t), BLUSH)

    # Eyes: sclera, iris and pupil; the smile squints them into a crescent (lower lid rises).
    eye_x, eye_y = _col(f["eye_spacing"]), -0.12 * aspect
    eye_du, eye_dv = np.abs(u) - eye_x, v - eye_y
    eye_h = 0.12 * (1.0 - 0.6 * t)
    eye = (eye_du / 0.17) ** 2 + (eye_dv / eye_h) ** 2 < 1
    lower_lid = eye_dv < eye_h * (1.0 - 1.2 * t) + 0.6 * t * (eye_du / 0.17) ** 2 * eye_h
    eye &= lower_lid
    _paint(img, eye, np.array([0.97, 0.97, 0.97], np.float32))
    _paint(img, eye & (eye_du ** 2 + eye_dv ** 2 < 0.085 ** 2), IRIS_COLOURS[f["iris_colour"]])
    _paint(img, eye & (eye_du ** 2 + eye_dv ** 2 < 0.04 ** 2), np.array([0.02, 0.02, 0.02], np.float32))
    lid_line = ((eye_du / 0.19) ** 2 + ((eye_dv + 0.01) / (eye_h + 0.035)) ** 2 < 1) & ~eye & (eye_dv < 0)
    _paint(img, lid_line, skin * 0.35)

    # Eyebrows (hair colour), fixed shape.
    brow_v = eye_y - 0.2 + 0.25 * eye_du ** 2
    brows = (np.abs(eye_du) < 0.2) & (np.abs(v - brow_v) < 0.035)
    _paint(img, brows, hair * 0.9)

    # Nose: a shaded wedge.
    nose = (np.abs(u) < 0.05 + 0.1 * (fv - 0.02)) & (fv > 0.02) & (fv < 0.22)
    _blend(img, nose * 0.35, skin * 0.55)

    if "beard" in f:  # drawn before the mouth, which stays visible on top of it
        _draw_beard(img, _col(f["beard"] / SMILE_MAX), u, fv, face, aspect, hair)
    if "age" in f:
        _draw_wrinkles(img, _col(f["age"] / SMILE_MAX), u, fv, face, _col(f["eye_spacing"]), skin)

    # Mouth: a curved band around the centre line v_mid(u); the smile widens it, bends the
    # corners up, and opens it to show the teeth and a dark interior.
    width = 0.30 + 0.28 * t
    curvature = -0.08 + 0.40 * t
    opening = 0.20 * np.clip((t - 0.2) / 0.8, 0.0, 1.0)
    lip = 0.065
    mouth_v = 0.50 * aspect
    um = u / width
    inside = np.clip(1.0 - um ** 2, 0.0, None)
    v_mid = mouth_v + curvature * (inside - 0.5)
    dist = v - v_mid
    half_open = opening * np.sqrt(inside)
    mouth = (np.abs(um) < 1) & (np.abs(dist) < half_open + lip * inside ** 0.3)
    _paint(img, mouth & face, LIP_COLOUR * (0.8 + 0.2 * skin))
    interior = mouth & (np.abs(dist) < half_open)
    _paint(img, interior, MOUTH_INSIDE)
    teeth = interior & (dist < 0.35 * half_open) & (dist > -0.8 * half_open)
    _paint(img, teeth, TEETH)

    # Fringe: hair over the top of the forehead, drawn over the face.
    fringe = face & (fv < _col(f["fringe"]) + 0.06 * np.cos(6.0 * u))
    _paint(img, fringe, hair)
    if "bangs" in f:
        _draw_bangs(img, _col(f["bangs"] / SMILE_MAX), u, fv, face, _col(f["fringe"]), hair)
    if "eyeglasses" in f:
        _draw_eyeglasses(img, _col(f["eyeglasses"] / SMILE_MAX), u, v, eye_x, eye_y)

    # Lighting: a directional gradient over the whole picture, then gain.
    light = _col(f["light_strength"]) * (np.cos(_col(f["light_angle"])) * px + np.sin(_col(f["light_angle"])) * py)
    img *= (1.0 + light)[:, None] * _col(f["gain"])[:, None]

    # Box-filter down to the output size, add pixel noise, clip.
    img = img.reshape(n, 3, image_size, SUPERSAMPLE, image_size, SUPERSAMPLE).mean(axis=(3, 5))
    img += rng.standard_normal(img.shape, dtype=np.float32) * _col(f["noise"])[:, None]
    return np.clip(img, 0.0, 1.0).astype(np.float32, copy=False)


# --- the four extra attributes of the synthetic twins (bangs, eyeglasses, beard, age) -----------
# Each is a large, high-contrast feature that grows continuously with its degree t = degree / 5
# (an 8x8 VQ-VAE loses features of a few pixels). Degree 0 draws nothing; the four are drawn
# only when their factor is present, so faces without them are unchanged.

def _ramp(degree: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """0 below degree ``lo``, 1 above ``hi``, linear between (``degree`` is (n, 1, 1))."""
    return np.clip((degree - lo) / (hi - lo), 0.0, 1.0)


def _draw_bangs(img: np.ndarray, t: np.ndarray, u: np.ndarray, fv: np.ndarray, face: np.ndarray,
                fringe: np.ndarray, hair: np.ndarray) -> None:
    """Combed bangs from the hairline (t = 0) down to the eyes (t = 1): strands with dark partings
    and a dark shadow under their jagged edge.

    Plain hair-coloured bangs looked like the nuisance hairline (``fringe``) in the hair colour of
    the face: a scorer CNN did not learn their degree (R^2 0.01). The partings and the shadow are
    dark whatever the hair and skin colours, and both fade in over the first degree.
    """
    edge = fringe + t * (-0.16 - fringe) + 0.05 * t * np.cos(9.0 * u)
    bangs = face & (fv < edge) & (t > 0)
    strength = _ramp(t * SMILE_MAX, 0.0, 1.0)
    _paint(img, bangs, hair)
    partings = bangs & (np.cos(14.0 * u) > 0.55) & (fv > fringe - 0.25)
    _blend(img, partings * 0.75 * strength, BANGS_SHADOW)
    shadow = face & (fv >= edge) & (fv < edge + 0.09) & (t > 0)
    _blend(img, shadow * 0.7 * strength, BANGS_SHADOW)


def _draw_eyeglasses(img: np.ndarray, t: np.ndarray, u: np.ndarray, v: np.ndarray, eye_x: np.ndarray,
                     eye_y: np.ndarray) -> None:
    """Frames that thicken with the degree, a bridge, and lenses that darken into sunglasses."""
    du, dv = np.abs(u) - eye_x, v - eye_y
    r = np.sqrt((du / 0.25) ** 2 + (dv / 0.19) ** 2)
    width = 0.05 + 0.22 * t
    frame = (np.abs(r - 1.0) < width) & (t > 0)
    bridge = (np.abs(u) < eye_x - 0.2) & (np.abs(dv + 0.04) < 0.02 + 0.05 * t) & (t > 0)
    _blend(img, (r < 1.0 - width) * 0.9 * _ramp(t * SMILE_MAX, 2.5, 5.0), LENS_TINT)
    _blend(img, (frame | bridge) * _ramp(t * SMILE_MAX, 0.0, 1.0), FRAME_COLOUR)


def _draw_beard(img: np.ndarray, t: np.ndarray, u: np.ndarray, fv: np.ndarray, face: np.ndarray,
                aspect: np.ndarray, hair: np.ndarray) -> None:
    """A dark curly beard: on the chin at low degrees, up the cheeks, below the chin and over the
    upper lip (a moustache) as it grows.

    A beard in the plain hair colour looked like the nuisance long hair behind the chin: a scorer
    CNN did not learn its degree (R^2 -0.01). This one is mostly a fixed dark brown with a curl
    texture (lighter dots), whatever the hair colour.
    """
    top = 0.80 - 0.55 * t
    jaw = face & (fv > top + 0.25 * (1.0 - np.abs(u)) * (1.0 - t))
    below = (u / (0.7 + 0.15 * t)) ** 2 + ((fv - 1.0) * aspect / (0.05 + 0.7 * t)) ** 2 < 1
    moustache = (np.abs(u) < 0.1 + 0.3 * t) & (np.abs(fv - 0.38) < 0.07 * _ramp(t * SMILE_MAX, 1.5, 4.0))
    beard = (jaw | below | (moustache & face)) & (t > 0)
    colour = 0.3 * hair + 0.7 * BEARD_COLOUR
    _blend(img, beard * (0.45 + 0.5 * _ramp(t * SMILE_MAX, 0.0, 2.0)), colour)
    curls = beard & (np.cos(22.0 * u) * np.cos(22.0 * fv * aspect) > 0.6)
    _blend(img, curls * 0.35 * _ramp(t * SMILE_MAX, 0.0, 2.0), BEARD_CURLS)


def _draw_wrinkles(img: np.ndarray, t: np.ndarray, u: np.ndarray, fv: np.ndarray, face: np.ndarray,
                   eye_x: np.ndarray, skin: np.ndarray) -> None:
    """Forehead lines, bags under the eyes and nose-to-mouth folds that deepen with age."""
    lines = np.zeros(face.shape, dtype=bool)
    for k in range(3):
        lines |= (np.abs(fv - (-0.62 + 0.09 * k) - 0.03 * np.cos(3.0 * u)) < 0.018 + 0.012 * t) & (np.abs(u) < 0.55)
    bags = (np.abs(np.abs(u) - eye_x) < 0.15) & (np.abs(fv + 0.02 - 0.04 * (np.abs(u) - eye_x) ** 2) < 0.02 + 0.02 * t)
    folds = (np.abs(np.abs(u) - (0.22 + 0.25 * (fv - 0.15))) < 0.025 + 0.02 * t) & (fv > 0.15) & (fv < 0.45)
    _blend(img, ((lines | bags | folds) & face) * 0.85 * _ramp(t * SMILE_MAX, 0.5, 5.0), skin * 0.45)


#: the five attributes of the ``synthetic-faces`` twins, each a degree in [0, 5]
ATTRIBUTES: tuple[str, ...] = ("smile", "bangs", "eyeglasses", "beard", "age")
#: bump when the drawing of the four extra attributes changes (smile-synthetic is unaffected)
ATTRIBUTES_VERSION = 2
GREY_HAIR = np.array([0.78, 0.78, 0.80], dtype=np.float32)
LENS_TINT = np.array([0.06, 0.07, 0.09], dtype=np.float32)
FRAME_COLOUR = np.array([0.05, 0.05, 0.05], dtype=np.float32)
BANGS_SHADOW = np.array([0.06, 0.04, 0.03], dtype=np.float32)
BEARD_COLOUR = np.array([0.17, 0.11, 0.07], dtype=np.float32)
BEARD_CURLS = np.array([0.55, 0.45, 0.38], dtype=np.float32)


def generate_attributes(n: int, seed: int, target: str = "smile", target_range: tuple[float, float] = (0.0, SMILE_MAX),
                        image_size: int = IMAGE_SIZE) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``n`` faces with all five attributes: ``target`` uniform in ``target_range``, the other four
    uniform in [0, 5], every factor independent of the others (deterministic per seed)."""
    if target not in ATTRIBUTES:
        raise ValueError(f"target must be one of {ATTRIBUTES}, got {target!r}")
    lo, hi = float(target_range[0]), float(target_range[1])
    if not 0.0 <= lo < hi <= SMILE_MAX:
        raise ValueError(f"target_range must satisfy 0 <= lo < hi <= {SMILE_MAX}, got {target_range}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xFACE, 0xA77]))
    factors = sample_factors(n, rng, (lo, hi) if target == "smile" else (0.0, SMILE_MAX))
    for name in ATTRIBUTES[1:]:
        factors[name] = rng.uniform(*((lo, hi) if name == target else (0.0, SMILE_MAX)), n)
    return render(factors, rng, image_size), factors


#: the columns of :func:`factor_targets` (the feature network's regression targets)
FACTOR_TARGETS: tuple[str, ...] = (
    "smile", "skin_r", "skin_g", "skin_b", "hair_r", "hair_g", "hair_b", "iris_r", "iris_g", "iris_b",
    "background_r", "background_g", "background_b", "background_gradient", "clothing_r", "clothing_g", "clothing_b",
    "face_aspect", "center_x", "center_y", "scale", "tilt", "hair_volume", "hair_length", "fringe", "eye_spacing",
    "gain", "noise", "light_x", "light_y",
)


def factor_targets(factors: dict[str, np.ndarray]) -> np.ndarray:
    """Every factor as a continuous regression target: (n, len(FACTOR_TARGETS)) float64.

    Palette indices become their RGB colours and the light direction its (x, y) components,
    so that every column is a quantity the image shows. The smile is column 0.
    """
    columns = {key: np.asarray(value, dtype=np.float64) for key, value in factors.items()}
    palettes = (("skin", SKIN_TONES, "skin_tone"), ("hair", HAIR_COLOURS, "hair_colour"),
                ("iris", IRIS_COLOURS, "iris_colour"), ("background", BACKGROUNDS, "background"),
                ("clothing", CLOTHES, "clothing"))
    for prefix, palette, key in palettes:
        rgb = palette[np.asarray(factors[key], dtype=np.int64)].astype(np.float64)
        if prefix in ("skin", "background"):
            rgb += columns[f"{prefix}_jitter"][:, None]
        for c, name in enumerate("rgb"):
            columns[f"{prefix}_{name}"] = rgb[:, c]
    columns["light_x"] = columns["light_strength"] * np.cos(columns["light_angle"])
    columns["light_y"] = columns["light_strength"] * np.sin(columns["light_angle"])
    return np.stack([columns[k] for k in FACTOR_TARGETS], axis=1)
