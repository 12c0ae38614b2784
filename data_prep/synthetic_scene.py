"""Procedural driving scenes rendered by exact ray casting in NumPy.

A scene is a straight street in a world frame with the camera's axis
conventions (x right, y down, z forward along the road; the ground is the plane
y = 0, so heights are negative y). Everything in it is a plane or an
axis-aligned box, so one ray per pixel centre, intersected in closed form,
gives exact geometry:

* ground: asphalt with lane marks and parking strips, grass/dirt behind the
  sidewalks;
* raised sidewalks (boxes) with paving tiles and kerbs, lamp posts;
* buildings on both sides with window grids, a continuous back row and a far
  building row closing the street, so every ray below the horizon hits
  something within about 250 m;
* vehicles (a body box and a cabin box, or one tall box for vans), parked or
  moving by pure translation, one of them driving exactly with the camera
  (it keeps its place in the image: the paper's "infinite depth" case);
* sky, at infinity: its colour depends only on the ray direction, so it is
  exactly consistent under any camera motion. Its depth is 0 (= unknown in the
  triplet spec) and it belongs to no instance.

Lighting is a fixed sun (Lambertian per face) and ambient; nothing rotates, so
a surface point keeps its colour over time apart from texture filtering, which
fades texture detail finer than the pixel footprint (analytic anti-aliasing
that keeps one ray per pixel, and so exact depth for every pixel).

Per frame the renderer gives RGB uint8, z-depth, instance ids; per pair of
consecutive frames the ego-motion and the per-pixel object translation, in the
conventions of `depth_motion/data/features.py`. Every random choice comes from
the seed, and a scene does not depend on the image size.

This module needs only NumPy (worker processes import it without TensorFlow).
"""

import dataclasses
import functools

import numpy as np

# Surface materials (per box; the ground and sky are implicit).
GROUND, SIDEWALK, FACADE, VEHICLE_BODY, VEHICLE_CABIN, POLE = range(6)

# Pixel focal length as a fraction of the image width: KITTI's horizontal field
# of view (fx = 721 px at 1242 px width). Square pixels.
FOCAL_PER_WIDTH = 0.58

_FACADE_COLOURS = np.array([
    (0.78, 0.70, 0.56), (0.62, 0.33, 0.25), (0.62, 0.62, 0.60), (0.86, 0.84, 0.80),
    (0.52, 0.40, 0.30), (0.80, 0.66, 0.40), (0.60, 0.68, 0.74), (0.55, 0.55, 0.50),
    (0.72, 0.52, 0.42), (0.45, 0.47, 0.50)])
_CAR_COLOURS = np.array([
    (0.90, 0.90, 0.88), (0.72, 0.73, 0.75), (0.10, 0.10, 0.11), (0.40, 0.41, 0.43),
    (0.72, 0.10, 0.08), (0.14, 0.24, 0.58), (0.12, 0.35, 0.22), (0.85, 0.70, 0.12),
    (0.55, 0.30, 0.12), (0.30, 0.55, 0.75)])


def default_intrinsics(height, width):
  """KITTI-like pinhole intrinsics (fx, fy, x0, y0) for an image of this size.

  Square pixels, principal point at the image centre in the pixel-centre
  convention ((W - 1) / 2, (H - 1) / 2).
  """
  _check_size(height, width)
  focal = FOCAL_PER_WIDTH * width
  return np.array([focal, focal, (width - 1) / 2.0, (height - 1) / 2.0], np.float64)


def _check_size(height, width):
  for name, value in (('height', height), ('width', width)):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
      raise ValueError('%s must be a positive integer, got %r' % (name, value))


@dataclasses.dataclass
class RoadLayout:
  """The ground's painted layout across the road (x) and its textures' parameters."""
  lane_width: float = 3.5
  lanes_per_direction: int = 1
  parking_width: float = 2.3        # 0: no parking strip
  sidewalk_width: float = 3.0
  dashed_centre_line: bool = True
  yellow_centre_line: bool = False
  dash_length: float = 3.0
  dash_period: float = 9.0
  dash_phase: float = 0.0
  asphalt: tuple = (0.33, 0.33, 0.34)
  verge: tuple = (0.35, 0.42, 0.22)  # grass/dirt behind the sidewalks
  texture_offset: tuple = (0.0, 0.0)

  @property
  def lanes_edge(self):
    return self.lanes_per_direction * self.lane_width

  @property
  def kerb(self):
    return self.lanes_edge + self.parking_width


@dataclasses.dataclass
class Scene:
  """Everything needed to render frames 0..N-1 of one sequence.

  Boxes are axis-aligned in the world; box i occupies [lo[i], hi[i]] +
  offsets[k, i] at frame k (static boxes have zero offsets). Camera k sits at
  camera_positions[k] with camera-to-world rotation camera_rotations[k]
  (P_world = R P_camera + position).
  """
  box_lo: np.ndarray              # [B, 3]
  box_hi: np.ndarray              # [B, 3]
  box_offsets: np.ndarray         # [N, B, 3]
  box_material: np.ndarray        # [B] int
  box_colour: np.ndarray          # [B, 3] in [0, 1]
  box_instance: np.ndarray        # [B] int, 0 = background
  box_params: np.ndarray          # [B, 4] material parameters
  box_texture_offset: np.ndarray  # [B, 2]
  camera_positions: np.ndarray    # [N, 3]
  camera_rotations: np.ndarray    # [N, 3, 3]
  road: RoadLayout = dataclasses.field(default_factory=RoadLayout)
  sun: np.ndarray = dataclasses.field(
      default_factory=lambda: np.array([0.4, -0.8, 0.45]) / np.linalg.norm([0.4, -0.8, 0.45]))
  ambient: float = 0.5
  diffuse: float = 0.55
  exposure: float = 1.0
  sky_horizon: tuple = (0.80, 0.85, 0.90)
  sky_zenith: tuple = (0.36, 0.55, 0.85)
  cloudiness: float = 0.5
  camera_speed_instance: int = 0  # the instance id driving with the camera, 0 if none

  @property
  def num_frames(self):
    return self.camera_positions.shape[0]


def empty_scene(camera_positions, camera_rotations=None, road=None):
  """A scene with only the ground and the sky (and `add_box` to add boxes)."""
  positions = np.asarray(camera_positions, np.float64).reshape(-1, 3)
  if camera_rotations is None:
    camera_rotations = np.tile(np.eye(3), (positions.shape[0], 1, 1))
  return Scene(
      box_lo=np.zeros((0, 3)), box_hi=np.zeros((0, 3)),
      box_offsets=np.zeros((positions.shape[0], 0, 3)),
      box_material=np.zeros((0,), np.int64), box_colour=np.zeros((0, 3)),
      box_instance=np.zeros((0,), np.int64), box_params=np.zeros((0, 4)),
      box_texture_offset=np.zeros((0, 2)), camera_positions=positions,
      camera_rotations=np.asarray(camera_rotations, np.float64),
      road=road or RoadLayout())


# Per material: facade (window spacing, storey height, window width and height fractions),
# sidewalk (tile size), vehicles (heading along z, is a van).
DEFAULT_MATERIAL_PARAMS = {
    SIDEWALK: (0.6, 0.0, 0.0, 0.0),
    FACADE: (3.0, 3.2, 0.5, 0.5),
    VEHICLE_BODY: (1.0, 0.0, 0.0, 0.0),
    VEHICLE_CABIN: (1.0, 0.0, 0.0, 0.0),
    POLE: (0.0, 0.0, 0.0, 0.0),
}


def add_box(scene, lo, hi, material, colour, instance=0, params=None, offsets=None,
            texture_offset=(0.0, 0.0)):
  """Appends a box to `scene` in place; `offsets` [N, 3] moves it per frame.

  `params` are the material's parameters (`DEFAULT_MATERIAL_PARAMS` when None).
  """
  if material not in DEFAULT_MATERIAL_PARAMS:
    raise ValueError('material must be one of %s, got %r' %
                     (sorted(DEFAULT_MATERIAL_PARAMS), material))
  params = DEFAULT_MATERIAL_PARAMS[material] if params is None else params
  lo = np.asarray(lo, np.float64)
  hi = np.asarray(hi, np.float64)
  if lo.shape != (3,) or hi.shape != (3,) or np.any(hi <= lo):
    raise ValueError('box corners must be 3-vectors with hi > lo, got lo=%s hi=%s' % (lo, hi))
  n = scene.num_frames
  offsets = np.zeros((n, 3)) if offsets is None else np.asarray(offsets, np.float64)
  if offsets.shape != (n, 3):
    raise ValueError('box offsets must have shape (%d, 3), got %s' % (n, offsets.shape))
  scene.box_lo = np.concatenate([scene.box_lo, lo[None]])
  scene.box_hi = np.concatenate([scene.box_hi, hi[None]])
  scene.box_offsets = np.concatenate([scene.box_offsets, offsets[:, None]], axis=1)
  scene.box_material = np.append(scene.box_material, int(material))
  scene.box_colour = np.concatenate([scene.box_colour, np.asarray(colour, np.float64)[None]])
  scene.box_instance = np.append(scene.box_instance, int(instance))
  scene.box_params = np.concatenate([scene.box_params, np.asarray(params, np.float64)[None]])
  scene.box_texture_offset = np.concatenate(
      [scene.box_texture_offset, np.asarray(texture_offset, np.float64)[None]])
  return len(scene.box_lo) - 1


def rotation_camera_to_world(yaw, pitch=0.0, roll=0.0):
  """R = Ry(yaw) Rx(pitch) Rz(roll): yaw > 0 turns right, pitch > 0 looks up."""
  cy, sy = np.cos(yaw), np.sin(yaw)
  cp, sp = np.cos(pitch), np.sin(pitch)
  cr, sr = np.cos(roll), np.sin(roll)
  ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
  rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
  rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
  return ry @ rx @ rz


# ----------------------------------------------------------------------------------------------
# Random scenes.


def random_scene(seed, num_frames):
  """The scene of one sequence; `seed` is anything np.random.SeedSequence accepts."""
  if num_frames < 2:
    raise ValueError('num_frames must be >= 2, got %r' % (num_frames,))
  rng = np.random.default_rng(np.random.SeedSequence(seed))
  lanes = int(rng.choice([1, 2], p=[0.6, 0.4]))
  road = RoadLayout(
      lane_width=rng.uniform(3.1, 3.7),
      lanes_per_direction=lanes,
      parking_width=rng.choice([0.0, rng.uniform(2.0, 2.6)], p=[0.2, 0.8]),
      sidewalk_width=rng.uniform(2.0, 4.0),
      dashed_centre_line=bool(rng.random() < 0.6),
      yellow_centre_line=bool(rng.random() < 0.3),
      dash_length=rng.uniform(2.0, 4.0),
      dash_period=rng.uniform(7.0, 12.0),
      dash_phase=rng.uniform(0, 12.0),
      asphalt=tuple(rng.uniform(0.26, 0.40) * np.array([1.0, 1.0, rng.uniform(1.0, 1.06)])),
      verge=tuple(np.array([0.36, 0.42, 0.22]) * rng.uniform(0.8, 1.2, 3)),
      texture_offset=tuple(rng.uniform(0, 1000, 2)))

  # Camera: forward at a steady speed with a slow yaw wobble about the lane's
  # direction and slight pitch and roll, like a car-mounted camera at 10 Hz.
  camera_lane = int(rng.integers(0, lanes))
  height = rng.uniform(1.5, 1.8)
  speed = rng.uniform(0.5, 1.0)            # m per frame (18..36 km/h at 10 Hz)
  accel = rng.uniform(-0.01, 0.01)
  period = rng.uniform(40.0, 120.0)
  omega = 2 * np.pi / period
  # Yaw amplitude, bounded so that yaw changes by <= 3 mrad per frame.
  yaw_amp = min(rng.uniform(0.0, 0.03), 0.003 / omega)
  yaw_phase = rng.uniform(0, 2 * np.pi)
  yaw_bias = rng.uniform(-0.01, 0.01)
  pitch_bias = rng.uniform(-0.01, 0.01)
  pitch_omega = 2 * np.pi / rng.uniform(8.0, 20.0)
  pitch_amp = min(rng.uniform(0.0, 0.003), 0.001 / pitch_omega)
  pitch_phase = rng.uniform(0, 2 * np.pi)
  roll = rng.uniform(-0.005, 0.005)
  positions = np.zeros((num_frames, 3))
  rotations = np.zeros((num_frames, 3, 3))
  position = np.array([(camera_lane + 0.5) * road.lane_width + rng.uniform(-0.25, 0.25),
                       -height, 0.0])
  for k in range(num_frames):
    yaw = yaw_bias + yaw_amp * np.sin(omega * k + yaw_phase)
    pitch = pitch_bias + pitch_amp * np.sin(pitch_omega * k + pitch_phase)
    positions[k] = position
    rotations[k] = rotation_camera_to_world(yaw, pitch, roll)
    step = max(0.3, speed + accel * k)
    position = position + step * np.array([np.sin(yaw), 0.0, np.cos(yaw)])

  sun_azimuth = rng.uniform(0, 2 * np.pi)
  sun_elevation = rng.uniform(np.radians(25), np.radians(70))
  sun = np.array([np.cos(sun_elevation) * np.sin(sun_azimuth), -np.sin(sun_elevation),
                  np.cos(sun_elevation) * np.cos(sun_azimuth)])
  ambient = rng.uniform(0.42, 0.58)
  scene = empty_scene(positions, rotations, road)
  scene.sun = sun
  scene.ambient = ambient
  scene.diffuse = rng.uniform(0.9, 1.1) * (1.0 - ambient)
  scene.exposure = rng.uniform(0.9, 1.1)
  scene.sky_horizon = tuple(np.clip(np.array([0.80, 0.85, 0.90]) + rng.uniform(-0.06, 0.06, 3),
                                    0, 1))
  scene.sky_zenith = tuple(np.clip(np.array([0.36, 0.55, 0.85]) + rng.uniform(-0.08, 0.08, 3),
                                   0, 1))
  scene.cloudiness = rng.uniform(0.0, 1.0)

  travel = positions[-1, 2] - positions[0, 2]
  street_end = rng.uniform(150.0, 230.0) + travel
  street_start = -20.0
  _add_street_furniture(scene, rng, street_start, street_end)
  _add_buildings(scene, rng, street_start, street_end)
  _add_vehicles(scene, rng, positions, camera_lane, street_end)
  return scene


def _add_street_furniture(scene, rng, z_start, z_end):
  road = scene.road
  kerb_height = rng.uniform(0.10, 0.18)
  paving = np.array([0.62, 0.60, 0.57]) * rng.uniform(0.85, 1.15)
  for side in (-1, 1):
    inner, outer = road.kerb, road.kerb + road.sidewalk_width
    x_lo, x_hi = (inner, outer) if side > 0 else (-outer, -inner)
    add_box(scene, (x_lo, -kerb_height, z_start), (x_hi, 0.0, z_end), SIDEWALK, paving,
            params=(rng.uniform(0.4, 0.8), 0, 0, 0), texture_offset=rng.uniform(0, 1000, 2))
    z = z_start + rng.uniform(0, 20)
    pole_height = rng.uniform(4.0, 6.5)
    pole_colour = np.array([0.45, 0.46, 0.48]) * rng.uniform(0.7, 1.3)
    spacing = rng.uniform(15.0, 30.0)
    while z < z_end - 10:
      x = side * (road.kerb + 0.5)
      add_box(scene, (x - 0.09, -kerb_height - pole_height, z - 0.09),
              (x + 0.09, -kerb_height, z + 0.09), POLE, pole_colour,
              texture_offset=rng.uniform(0, 1000, 2))
      z += spacing


def _add_buildings(scene, rng, z_start, z_end):
  road = scene.road
  front = road.kerb + road.sidewalk_width
  back_row = front + rng.uniform(22.0, 35.0)

  def facade(colour=None):
    colour = _FACADE_COLOURS[rng.integers(len(_FACADE_COLOURS))] if colour is None else colour
    colour = np.clip(colour * rng.uniform(0.85, 1.15) + rng.uniform(-0.03, 0.03, 3), 0, 1)
    # (window spacing along the facade, storey height, window width and height fractions)
    params = (rng.uniform(2.4, 4.0), rng.uniform(2.9, 3.6), rng.uniform(0.35, 0.65),
              rng.uniform(0.4, 0.6))
    return colour, params

  for side in (-1, 1):
    z = z_start + rng.uniform(-5, 0)
    while z < z_end:
      length = rng.uniform(8.0, 28.0)
      setback = rng.uniform(0.0, 3.0) if rng.random() < 0.6 else 0.0
      depth = rng.uniform(8.0, 15.0)
      height = rng.uniform(6.0, 24.0)
      x_face = front + setback
      x_lo, x_hi = (x_face, x_face + depth) if side > 0 else (-x_face - depth, -x_face)
      colour, params = facade()
      add_box(scene, (x_lo, -height, z), (x_hi, 0.0, z + length), FACADE, colour,
              params=params, texture_offset=rng.uniform(0, 1000, 2))
      z += length
      if rng.random() < 0.3:
        z += rng.uniform(2.0, 8.0)  # an alley: the back row shows through
    x_lo, x_hi = (back_row, back_row + 6) if side > 0 else (-back_row - 6, -back_row)
    colour, params = facade()
    add_box(scene, (x_lo, -rng.uniform(18.0, 32.0), z_start - 10), (x_hi, 0.0, z_end + 10),
            FACADE, colour, params=params, texture_offset=rng.uniform(0, 1000, 2))
  colour, params = facade()
  add_box(scene, (-back_row - 10, -rng.uniform(15.0, 35.0), z_end),
          (back_row + 10, 0.0, z_end + 12), FACADE, colour, params=params,
          texture_offset=rng.uniform(0, 1000, 2))


def _add_vehicle(scene, rng, instance, x_centre, z_rear, heading, offsets):
  """A car (body + cabin) or a van (one tall box) standing on the ground; returns its length."""
  colour = np.clip(_CAR_COLOURS[rng.integers(len(_CAR_COLOURS))] * rng.uniform(0.9, 1.1)
                   + rng.uniform(-0.03, 0.03, 3), 0, 1)
  van = rng.random() < 0.18
  length = rng.uniform(5.0, 6.8) if van else rng.uniform(3.8, 4.8)
  width = rng.uniform(1.9, 2.2) if van else rng.uniform(1.65, 1.9)
  clearance = rng.uniform(0.10, 0.18)
  body_height = rng.uniform(1.9, 2.6) if van else rng.uniform(0.65, 0.85)
  x_lo, x_hi = x_centre - width / 2, x_centre + width / 2
  tex = rng.uniform(0, 1000, 2)
  # params: (heading along z, is_van, -, -)
  add_box(scene, (x_lo, -clearance - body_height, z_rear), (x_hi, -clearance, z_rear + length),
          VEHICLE_BODY, colour, instance=instance, params=(heading, float(van), 0, 0),
          offsets=offsets, texture_offset=tex)
  if not van:
    cabin_length = length * rng.uniform(0.45, 0.58)
    cabin_start = z_rear + length * rng.uniform(0.18, 0.28)
    if heading < 0:
      cabin_start = z_rear + length - (cabin_start - z_rear) - cabin_length
    inset = width * 0.06
    top = -clearance - body_height
    add_box(scene, (x_lo + inset, top - rng.uniform(0.42, 0.55), cabin_start),
            (x_hi - inset, top, cabin_start + cabin_length), VEHICLE_CABIN, colour,
            instance=instance, params=(heading, 0, 0, 0), offsets=offsets, texture_offset=tex)
  return length


def _add_vehicles(scene, rng, camera_positions, camera_lane, z_end):
  road = scene.road
  n = scene.num_frames
  frames = np.arange(n, dtype=np.float64)[:, None]
  instance = 1

  # The car ahead driving exactly with the camera: same translation every frame.
  gap = rng.uniform(7.0, 20.0)
  offsets = camera_positions - camera_positions[0]
  offsets[:, 1] = 0.0
  _add_vehicle(scene, rng, instance, camera_positions[0, 0] + rng.uniform(-0.15, 0.15),
               camera_positions[0, 2] + gap, 1.0, offsets)
  scene.camera_speed_instance = instance
  instance += 1

  # Moving traffic: each lane moves at one speed, so cars in a lane never meet.
  camera_speed = (camera_positions[-1, 2] - camera_positions[0, 2]) / max(n - 1, 1)
  for lane in range(road.lanes_per_direction):
    for direction in (-1, 1):
      if direction > 0 and lane == camera_lane:
        continue
      x = direction * (lane + 0.5) * road.lane_width + rng.uniform(-0.2, 0.2)
      if direction > 0:
        speed = max(0.0, camera_speed + rng.uniform(-0.4, 0.4))
        z = rng.uniform(-25.0, 0.0)
      else:
        speed = -rng.uniform(0.4, 1.2)
        z = rng.uniform(8.0, 25.0)
      offsets = frames * np.array([0.0, 0.0, speed])
      while z < min(z_end - 20, 130.0):
        length = _add_vehicle(scene, rng, instance, x, z, float(direction), offsets)
        instance += 1
        z += length + rng.uniform(6.0, 30.0)

  # Parked cars in the parking strips.
  if road.parking_width > 0:
    for side in (-1, 1):
      x = side * (road.lanes_edge + road.parking_width / 2)
      z = rng.uniform(-5.0, 5.0)
      while z < min(z_end - 20, 100.0):
        if rng.random() < 0.6:
          length = _add_vehicle(scene, rng, instance, x + rng.uniform(-0.15, 0.15), z,
                                float(side), None)
          instance += 1
        else:
          length = rng.uniform(3.0, 6.0)
        z += length + rng.uniform(0.8, 3.0)


# ----------------------------------------------------------------------------------------------
# Procedural textures. Coordinates in metres; `footprint` is the size of a pixel on the surface.


def _hash01(ix, iy, seed=0):
  """A uniform number in [0, 1) per integer lattice point (ix, iy) and seed."""
  h = np.asarray(ix, np.int64).astype(np.uint32) * np.uint32(0x9E3779B1)
  h ^= np.asarray(iy, np.int64).astype(np.uint32) * np.uint32(0x85EBCA77)
  h ^= np.asarray(seed, np.int64).astype(np.uint32) * np.uint32(0xC2B2AE3D)
  h ^= h >> np.uint32(15)
  h *= np.uint32(0x2C1B3C6D)
  h ^= h >> np.uint32(12)
  h *= np.uint32(0x297A2D39)
  h ^= h >> np.uint32(15)
  return h.astype(np.float64) * (1.0 / 4294967296.0)


def _value_noise(x, y, seed):
  fx, fy = np.floor(x), np.floor(y)
  tx, ty = x - fx, y - fy
  ix, iy = fx.astype(np.int64), fy.astype(np.int64)
  sx, sy = tx * tx * (3 - 2 * tx), ty * ty * (3 - 2 * ty)
  a, b = _hash01(ix, iy, seed), _hash01(ix + 1, iy, seed)
  c, d = _hash01(ix, iy + 1, seed), _hash01(ix + 1, iy + 1, seed)
  top = a + (b - a) * sx
  return top + (c + (d - c) * sx - top) * sy


def _fbm(x, y, footprint, scale, octaves, seed=0, gain=0.55):
  """Fractal value noise in [0, 1] (mean 0.5), octaves finer than the footprint faded out."""
  total = np.zeros_like(x)
  norm = 0.0
  amplitude = 1.0
  wavelength = scale
  for octave in range(octaves):
    # Full contrast at >= 4 pixels per wavelength, none at <= 2 (Nyquist).
    weight = np.clip(wavelength / (2.0 * footprint) - 1.0, 0.0, 1.0)
    if np.any(weight > 0):
      noise = _value_noise(x / wavelength, y / wavelength, seed + octave)
      total += amplitude * (weight * noise + (1 - weight) * 0.5)
    else:
      total += amplitude * 0.5
    norm += amplitude
    amplitude *= gain
    wavelength /= 2.0
  return total / norm


def _box_coverage(x, lo, hi, footprint):
  """The fraction of the interval [x - fp/2, x + fp/2] inside [lo, hi] (a box-filtered step)."""
  a = np.maximum(lo, x - footprint / 2)
  b = np.minimum(hi, x + footprint / 2)
  return np.clip((b - a) / footprint, 0.0, 1.0)


def _periodic_coverage(x, period, lo, hi, footprint):
  """Box-filtered coverage of [lo, hi] repeated with `period`; its mean when under-sampled."""
  local = np.mod(x, period)
  cov = np.maximum(_box_coverage(local, lo, hi, footprint),
                   _box_coverage(local - period, lo, hi, footprint))
  cov = np.maximum(cov, _box_coverage(local + period, lo, hi, footprint))
  fade = np.clip(footprint / period * 2.0 - 0.5, 0.0, 1.0)
  return cov * (1 - fade) + (hi - lo) / period * fade


def _mix(a, b, t):
  t = t[..., None]
  return a * (1 - t) + b * t


def _ground_colour(road, x, z, fp_x, fp_z):
  fp = np.sqrt(fp_x * fp_z)
  ox, oz = road.texture_offset
  absx = np.abs(x)
  grain = _fbm(x + ox, z + oz, fp, 4.0, 7, seed=11, gain=0.75)
  patches = _fbm(x + ox, z + oz, fp, 16.0, 3, seed=23)
  asphalt = np.asarray(road.asphalt) * np.clip(
      (1.0 + 2.2 * (grain - 0.5)) * (1.0 + 1.2 * (patches - 0.5)), 0.2, 2.0)[..., None]
  parking = (absx > road.lanes_edge) & (absx <= road.kerb)
  asphalt[parking] *= np.array([1.08, 1.06, 1.02])

  # Lane marks, box-filtered over the pixel footprint.
  white = np.array([0.88, 0.88, 0.86])
  yellow = np.array([0.90, 0.76, 0.25])
  dash = _periodic_coverage(z - road.dash_phase, road.dash_period, 0.0, road.dash_length, fp_z)
  colour = asphalt
  if road.yellow_centre_line and not road.dashed_centre_line:
    centre = np.maximum(_box_coverage(x, -0.22, -0.10, fp_x), _box_coverage(x, 0.10, 0.22, fp_x))
  else:
    centre = _box_coverage(x, -0.08, 0.08, fp_x) * (dash if road.dashed_centre_line else 1.0)
  colour = _mix(colour, yellow if road.yellow_centre_line else white, centre)
  for lane in range(1, road.lanes_per_direction):
    offset = lane * road.lane_width
    divider = (_box_coverage(x, offset - 0.07, offset + 0.07, fp_x) +
               _box_coverage(x, -offset - 0.07, -offset + 0.07, fp_x)) * dash
    colour = _mix(colour, white, divider)
  edge = road.lanes_edge
  edges = _box_coverage(x, edge - 0.2, edge - 0.05, fp_x) + _box_coverage(x, -edge + 0.05,
                                                                           -edge + 0.2, fp_x)
  colour = _mix(colour, white, np.clip(edges, 0, 1))

  beyond = absx > road.kerb
  if np.any(beyond):
    verge_noise = _fbm(x[beyond] + ox + 500, z[beyond] + oz, fp[beyond], 8.0, 7, seed=37,
                       gain=0.75)
    colour[beyond] = np.asarray(road.verge) * np.clip(1.0 + 2.2 * (verge_noise - 0.5), 0.2,
                                                      2.0)[..., None]
  return colour


def _sidewalk_colour(colour, params, u, w, fp_u, fp_w, axis, seed_offset):
  """Paving tiles on top (axis 1); kerb stone on the sides."""
  fp = np.sqrt(fp_u * fp_w)
  noise = _fbm(u + seed_offset[:, 0], w + seed_offset[:, 1], fp, 3.0, 6, seed=41, gain=0.7)
  base = colour * (0.7 + 0.6 * noise)[:, None]
  tile = params[:, 0]
  joints = np.maximum(_periodic_coverage(u, tile, 0.0, 0.03, fp_u),
                      _periodic_coverage(w, tile, 0.0, 0.03, fp_w))
  top = axis == 1
  factor = np.where(top, 1.0 - 0.45 * joints, 0.8)
  return base * factor[:, None]


def _facade_colour(colour, params, horizontal, height, fp_h, fp_v, seed_offset, box_index):
  fp = np.sqrt(fp_h * fp_v)
  spacing, storey, win_w, win_h = params[:, 0], params[:, 1], params[:, 2], params[:, 3]
  plaster = _fbm(horizontal + seed_offset[:, 0], height + seed_offset[:, 1], fp, 4.0, 7, seed=53,
                 gain=0.7)
  wall = colour * (0.62 + 0.76 * plaster)[:, None]
  cell_x = np.floor(horizontal / spacing)
  cell_y = np.floor(height / storey)
  lo_x, hi_x = spacing * (1 - win_w) / 2, spacing * (1 + win_w) / 2
  lo_y, hi_y = storey * (1 - win_h) / 2 + 0.2, storey * (1 + win_h) / 2 + 0.2
  window = (_periodic_coverage(horizontal, spacing, lo_x, hi_x, fp_h) *
            _periodic_coverage(height, storey, lo_y, hi_y, fp_v))
  lit = _hash01(cell_x, cell_y, box_index * 7919)
  glass = np.stack([0.10 + 0.35 * lit, 0.13 + 0.37 * lit, 0.18 + 0.40 * lit], -1)
  glass *= (0.8 + 0.4 * _fbm(horizontal, height, fp, 1.0, 3, seed=59))[:, None]
  # A darker band (cornice) at every storey line.
  band = _periodic_coverage(height, storey, 0.0, 0.18, fp_v)
  wall = wall * (1 - 0.25 * band)[:, None]
  return _mix(wall, glass, window)


def _vehicle_colour(material, colour, params, lx, ly, lz, size, axis, sign, fp, seed_offset):
  """Body: paint, wheels on the sides, lights and plate at the ends; cabin: glass and pillars.

  (lx, ly, lz) are coordinates inside the box from its low corner; ly is height above the box
  bottom; size is the box extent [P, 3].
  """
  paint_noise = _fbm(lx + lz + seed_offset[:, 0], ly + seed_offset[:, 1], fp, 1.5, 5, seed=61,
                     gain=0.7)
  # Dirt and reflections: additive, so that dark paint has texture too.
  sheen = _fbm(lx - lz + seed_offset[:, 1], ly + seed_offset[:, 0], fp, 0.8, 4, seed=63, gain=0.7)
  paint = colour * (0.75 + 0.5 * paint_noise)[:, None] + (0.12 * sheen - 0.04)[:, None]
  width, height, length = size[:, 0], size[:, 1], size[:, 2]
  heading, van = params[:, 0], params[:, 1]
  dark = np.array([0.06, 0.06, 0.07])
  out = paint.copy()
  body = material == VEHICLE_BODY
  cabin = ~body
  side = axis == 0
  end = axis == 2
  # Body: a dark bumper band at the bottom, wheels on the sides.
  bumper = _box_coverage(ly, -1.0, 0.16, fp)
  out = _mix(out, dark * 2.5, np.where(body & ~(axis == 1), bumper, 0.0))
  wheel_radius = 0.34
  wheel_y = 0.22
  for centre in (np.full_like(lz, 0.8), length - 0.8):
    dist = np.hypot(lz - centre, ly - wheel_y)
    tyre = np.clip((wheel_radius - dist) / fp + 0.5, 0.0, 1.0)
    hub = np.clip((0.14 - dist) / fp + 0.5, 0.0, 1.0)
    mask = body & side
    out = _mix(out, dark, np.where(mask, tyre, 0.0))
    out = _mix(out, np.array([0.55, 0.55, 0.55]), np.where(mask, hub, 0.0))
  # Lights and plate at the ends: red at the rear, white at the front.
  rear = (sign * heading) < 0
  light_colour = np.where(rear[:, None], np.array([0.75, 0.08, 0.06]), np.array([0.95, 0.93, 0.8]))
  top_band = _box_coverage(ly, height - 0.32, height - 0.12, fp)
  lights = top_band * np.maximum(_box_coverage(lx, 0.08, 0.38, fp),
                                 _box_coverage(lx, width - 0.38, width - 0.08, fp))
  plate = _box_coverage(ly, 0.2, 0.32, fp) * _box_coverage(lx, width / 2 - 0.26,
                                                           width / 2 + 0.26, fp)
  m = body & end & (van < 0.5)
  out = _mix(out, light_colour, np.where(m, lights, 0.0))
  out = _mix(out, np.array([0.9, 0.9, 0.85]), np.where(body & end, plate, 0.0))
  # Vans: a windscreen high up on the front, side windows at the front.
  front = (sign * heading) > 0
  windscreen = _box_coverage(ly, height * 0.6, height - 0.1, fp) * _box_coverage(
      lx, 0.1, width - 0.1, fp)
  out = _mix(out, dark * 2, np.where(body & (van > 0.5) & end & front, windscreen, 0.0))
  cab_side = _box_coverage(ly, height * 0.6, height - 0.15, fp) * np.where(
      heading > 0, _box_coverage(lz, length - 1.6, length - 0.3, fp),
      _box_coverage(lz, 0.3, 1.6, fp))
  out = _mix(out, dark * 2, np.where(body & (van > 0.5) & side, cab_side, 0.0))
  # Vans: two rear door windows and low rear lights.
  rear_windows = _box_coverage(ly, height * 0.6, height - 0.2, fp) * np.maximum(
      _box_coverage(lx, 0.15, width / 2 - 0.08, fp),
      _box_coverage(lx, width / 2 + 0.08, width - 0.15, fp))
  van_rear = body & (van > 0.5) & end & rear
  out = _mix(out, dark * 2, np.where(van_rear, rear_windows, 0.0))
  low_lights = _box_coverage(ly, 0.4, 0.6, fp) * np.maximum(
      _box_coverage(lx, 0.05, 0.3, fp), _box_coverage(lx, width - 0.3, width - 0.05, fp))
  out = _mix(out, light_colour, np.where(van_rear, low_lights, 0.0))
  # Cabin: glass with pillars on the sides and ends, paint on the roof.
  glass_noise = _fbm(lx + lz + seed_offset[:, 0], ly, fp, 0.8, 3, seed=67)
  glass = np.stack([0.12 + 0.12 * glass_noise, 0.14 + 0.13 * glass_noise,
                    0.17 + 0.15 * glass_noise], -1)
  along = np.where(side, lz, lx)
  extent = np.where(side, length, width)
  pillars = np.maximum(_box_coverage(along, -1.0, 0.12, fp),
                       _box_coverage(along, extent - 0.12, extent + 1.0, fp))
  pillars = np.maximum(pillars, np.where(side, _box_coverage(along, extent / 2 - 0.06,
                                                               extent / 2 + 0.06, fp), 0.0))
  pane = _box_coverage(ly, 0.04, height - 0.06, fp) * (1 - pillars)
  out = _mix(out, glass, np.where(cabin & ~(axis == 1), pane, 0.0))
  return out


def _sky_colour(scene, dirs, focal):
  unit = dirs / np.linalg.norm(dirs, axis=-1, keepdims=True)
  elevation = np.clip(-unit[:, 1], 0.0, 1.0)
  t = np.clip(elevation * 2.5, 0.0, 1.0) ** 0.8
  base = _mix(np.tile(np.asarray(scene.sky_horizon), (len(t), 1)), np.asarray(scene.sky_zenith),
              t)
  # Clouds on a plane at infinity: a function of the direction only.
  lift = elevation + 0.12
  px, pz = unit[:, 0] / lift, unit[:, 2] / lift
  fp = 1.0 / (focal * lift ** 2)
  clouds = _fbm(px, pz, fp, 2.0, 5, seed=71)
  amount = np.clip((clouds - 0.62 + 0.25 * scene.cloudiness) / 0.15, 0.0, 1.0) * (
      0.3 + 0.6 * scene.cloudiness)
  return _mix(base, np.array([0.93, 0.93, 0.95]), amount)


# ----------------------------------------------------------------------------------------------
# Rendering.


@dataclasses.dataclass
class Frame:
  """One rendered frame."""
  rgb: np.ndarray        # [H, W, 3] uint8
  depth: np.ndarray      # [H, W] float32, z along the optical axis, 0 on sky
  instance: np.ndarray   # [H, W] uint16, 0 = background
  box_index: np.ndarray  # [H, W] int, the box each pixel sees, -1 for ground and sky


@functools.lru_cache(maxsize=8)
def _cached_pixel_rays(intrinsics, height, width):
  fx, fy, x0, y0 = intrinsics
  u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
  rays = np.stack([(u - x0) / fx, (v - y0) / fy, np.ones_like(u)], -1).reshape(-1, 3)
  rays.flags.writeable = False
  return rays


def _pixel_rays(intrinsics, height, width):
  """[H*W, 3] camera rays K^-1 (u, v, 1) through the pixel centres (z component 1)."""
  return _cached_pixel_rays(tuple(float(v) for v in intrinsics), int(height), int(width))


def _slab_hits(rel_lo, rel_hi, inv):
  """Ray parameter of the entry into one box (inf on a miss); rel_* = corner - origin."""
  t1 = rel_lo[0] * inv[0]
  t2 = rel_hi[0] * inv[0]
  t_min, t_max = np.minimum(t1, t2), np.maximum(t1, t2)
  for k in (1, 2):
    t1 = rel_lo[k] * inv[k]
    t2 = rel_hi[k] * inv[k]
    t_min = np.maximum(t_min, np.minimum(t1, t2))
    t_max = np.minimum(t_max, np.maximum(t1, t2))
  t_min[(t_max < t_min) | (t_min <= 1e-9)] = np.inf
  return t_min


def _intersect_boxes(origin, rays, lo, hi, windows):
  """Nearest hit of each ray with the boxes.

  Args:
    origin: [3] ray origin.
    rays: [H, W, 3] ray directions.
    lo, hi: [B, 3] box corners.
    windows: [B, 4] (row0, row1, col0, col1), the pixels each box may cover.

  Returns:
    (t [H, W] (inf on a miss), box index [H, W] (-1 on a miss), axis of the hit
    face's normal [H, W]).
  """
  height, width = rays.shape[:2]
  best_t = np.full((height, width), np.inf)
  best_box = np.full((height, width), -1, np.int64)
  safe = np.where(np.abs(rays) < 1e-12, np.where(rays < 0, -1e-12, 1e-12), rays)
  inv = np.moveaxis(1.0 / safe, -1, 0)  # [3, H, W]
  rel_lo, rel_hi = lo - origin, hi - origin
  for i, (r0, r1, c0, c1) in enumerate(windows):
    t = _slab_hits(rel_lo[i], rel_hi[i], inv[:, r0:r1, c0:c1])
    target = best_t[r0:r1, c0:c1]
    better = t < target
    target[better] = t[better]
    best_box[r0:r1, c0:c1][better] = i
  # The face hit is the slab entered last.
  best_axis = np.zeros((height, width), np.int64)
  hit = best_box >= 0
  b = best_box[hit]
  inv_hit = np.moveaxis(inv, 0, -1)[hit]
  best_axis[hit] = np.minimum(rel_lo[b] * inv_hit, rel_hi[b] * inv_hit).argmax(-1)
  return best_t, best_box, best_axis


def _box_windows(lo, hi, origin, rotation, intrinsics, height, width):
  """The boxes that may be seen and, for each, the pixel window holding its image.

  A box entirely in front of the camera projects inside the bounding rectangle
  of its projected corners (the box is convex); one reaching behind the camera
  gets the whole image; one entirely behind, or in front but outside the image,
  is dropped.
  """
  corners = np.stack([np.where(np.array([i, j, k], bool), hi, lo)
                      for i in (0, 1) for j in (0, 1) for k in (0, 1)], 1)  # [B, 8, 3]
  camera = (corners - origin) @ rotation  # camera coordinates, [B, 8, 3]
  z = camera[..., 2]
  in_front = z.min(-1) > 1e-3
  fx, fy, x0, y0 = intrinsics
  safe_z = np.where(in_front[:, None], z, 1.0)
  u = fx * camera[..., 0] / safe_z + x0
  v = fy * camera[..., 1] / safe_z + y0
  c0 = np.where(in_front, np.clip(np.floor(u.min(-1)), 0, width), 0).astype(np.int64)
  c1 = np.where(in_front, np.clip(np.ceil(u.max(-1)) + 1, 0, width), width).astype(np.int64)
  r0 = np.where(in_front, np.clip(np.floor(v.min(-1)), 0, height), 0).astype(np.int64)
  r1 = np.where(in_front, np.clip(np.ceil(v.max(-1)) + 1, 0, height), height).astype(np.int64)
  keep = (z.max(-1) > 1e-3) & (c1 > c0) & (r1 > r0)
  index = np.nonzero(keep)[0]
  return index, np.stack([r0, r1, c0, c1], -1)[index]


def render_frame(scene, frame, intrinsics, height, width):
  """Renders frame `frame` of `scene`: a `Frame` with exact depth per pixel centre."""
  _check_size(height, width)
  intrinsics = np.asarray(intrinsics, np.float64)
  focal = float(np.sqrt(intrinsics[0] * intrinsics[1]))
  rays = _pixel_rays(intrinsics, height, width)
  rotation = scene.camera_rotations[frame]
  origin = scene.camera_positions[frame]
  dirs = rays @ rotation.T
  lo = scene.box_lo + scene.box_offsets[frame]
  hi = scene.box_hi + scene.box_offsets[frame]

  keep, windows = _box_windows(lo, hi, origin, rotation, intrinsics, height, width)
  t, box, axis = _intersect_boxes(origin, dirs.reshape(height, width, 3), lo[keep], hi[keep],
                                  windows)
  t, box, axis = t.reshape(-1), box.reshape(-1), axis.reshape(-1)
  hit_box = box >= 0
  box[hit_box] = keep[box[hit_box]]

  with np.errstate(divide='ignore'):
    t_ground = np.where(dirs[:, 1] > 1e-12, -origin[1] / np.maximum(dirs[:, 1], 1e-12), np.inf)
  on_ground = t_ground < t
  t = np.where(on_ground, t_ground, t)
  box = np.where(on_ground, -1, box)
  axis = np.where(on_ground, 1, axis)
  sky = ~np.isfinite(t)

  count = rays.shape[0]
  colour = np.zeros((count, 3))
  points = origin + np.where(sky, 0.0, t)[:, None] * dirs
  ray_length = np.linalg.norm(dirs, axis=-1)
  unit = dirs / ray_length[:, None]
  distance = np.where(sky, 0.0, t) * ray_length
  pixel = distance / focal  # the pixel's size on a surface facing the ray
  sign = -np.sign(unit[np.arange(count), axis])
  cos = np.maximum(np.abs(unit[np.arange(count), axis]), 0.02)

  def footprint(i, k):
    """Pixel footprint along world axis k on the faces whose normal is `axis`."""
    return np.maximum(pixel[i] * np.sqrt(1.0 + unit[i, k] ** 2 / cos[i] ** 2), 1e-4)

  ground = np.nonzero(on_ground)[0]
  if ground.size:
    colour[ground] = _ground_colour(scene.road, points[ground, 0], points[ground, 2],
                                    footprint(ground, 0), footprint(ground, 2))

  hits = np.nonzero(box >= 0)[0]
  if hits.size:
    b = box[hits]
    a = axis[hits]
    local = points[hits] - lo[b]
    size = hi[b] - lo[b]
    material = scene.box_material[b]
    params = scene.box_params[b]
    tex = scene.box_texture_offset[b]
    base = scene.box_colour[b]
    # The two in-face coordinates: horizontal (along z on x-faces, along x otherwise) and
    # vertical (height, or z on top faces).
    horizontal = np.where(a == 0, local[:, 2], local[:, 0])
    vertical = np.where(a == 1, local[:, 2], size[:, 1] - local[:, 1])
    fp_h = footprint(hits, np.where(a == 0, 2, 0))
    fp_v = footprint(hits, np.where(a == 1, 2, 1))
    result = np.zeros((hits.size, 3))
    for kind in (SIDEWALK, FACADE, POLE, VEHICLE_BODY):
      sel = (material == kind) if kind != VEHICLE_BODY else (
          (material == VEHICLE_BODY) | (material == VEHICLE_CABIN))
      if not np.any(sel):
        continue
      if kind == SIDEWALK:
        result[sel] = _sidewalk_colour(base[sel], params[sel], horizontal[sel], vertical[sel],
                                       fp_h[sel], fp_v[sel], a[sel], tex[sel])
      elif kind == FACADE:
        result[sel] = _facade_colour(base[sel], params[sel], horizontal[sel], vertical[sel],
                                     fp_h[sel], fp_v[sel], tex[sel], b[sel])
      elif kind == POLE:
        noise = _fbm(vertical[sel] + tex[sel, 0], horizontal[sel] + tex[sel, 1],
                     np.sqrt(fp_h[sel] * fp_v[sel]), 1.0, 4, seed=79)
        result[sel] = base[sel] * (0.75 + 0.5 * noise)[:, None]
      else:
        result[sel] = _vehicle_colour(
            material[sel], base[sel], params[sel], local[sel, 0], size[sel, 1] - local[sel, 1],
            local[sel, 2], size[sel], a[sel], sign[hits][sel],
            np.sqrt(fp_h[sel] * fp_v[sel]), tex[sel])
    colour[hits] = result

  # Lambertian shading per face (normals are world axes), then exposure.
  normal = np.zeros((count, 3))
  normal[np.arange(count), axis] = sign
  normal[on_ground] = (0.0, -1.0, 0.0)
  shade = scene.ambient + scene.diffuse * np.maximum(0.0, normal @ scene.sun)
  colour = colour * shade[:, None]
  if np.any(sky):
    colour[sky] = _sky_colour(scene, dirs[sky], focal)
  colour *= scene.exposure
  rgb = np.round(np.clip(colour, 0.0, 1.0) * 255.0).astype(np.uint8).reshape(height, width, 3)

  depth = np.where(sky, 0.0, t).astype(np.float32).reshape(height, width)
  instance = np.zeros(box.shape, np.int64)
  instance[box >= 0] = scene.box_instance[box[box >= 0]]
  return Frame(rgb=rgb, depth=depth, instance=instance.astype(np.uint16).reshape(height, width),
               box_index=box.reshape(height, width))


def egomotion(scene, frame):
  """The 4x4 transform taking frame `frame`'s camera coordinates to frame `frame + 1`'s."""
  r1, r2 = scene.camera_rotations[frame], scene.camera_rotations[frame + 1]
  c1, c2 = scene.camera_positions[frame], scene.camera_positions[frame + 1]
  matrix = np.eye(4)
  matrix[:3, :3] = r2.T @ r1
  matrix[:3, 3] = r2.T @ (c1 - c2)
  return matrix


def object_translation(scene, frame, box_index):
  """[H, W, 3]: each pixel's extra translation from frame `frame` to `frame + 1`.

  In frame `frame + 1`'s camera coordinates, added after the rotation
  (P2 = R P1 + t + dT); `box_index` is the `Frame.box_index` of frame `frame`.
  """
  moves = scene.box_offsets[frame + 1] - scene.box_offsets[frame]          # [B, 3] world
  moves_camera = moves @ scene.camera_rotations[frame + 1]                  # R_cw m = m R_wc
  field = np.zeros(box_index.shape + (3,))
  hit = box_index >= 0
  field[hit] = moves_camera[box_index[hit]]
  return field


def sequence_seed(split_seed, index):
  """The seed of sequence `index` of a split: distinct splits give distinct sequences."""
  return (int(split_seed), int(index))


def render_sequence(seed, height, width, num_frames, intrinsics=None):
  """Renders one random sequence.

  Args:
    seed: the sequence's seed (e.g. `sequence_seed(split_seed, index)`).
    height, width: image size in pixels.
    num_frames: number of frames (>= 2).
    intrinsics: (fx, fy, x0, y0), default `default_intrinsics(height, width)`.

  Returns:
    A dict of NumPy arrays: images uint8 [N, H, W, 3], depth float32 [N, H, W]
    (0 on sky), masks uint16 [N, H, W] (instance ids, 0 = background),
    egomotion float32 [N-1, 4, 4], object_translation float32 [N-1, H, W, 3],
    intrinsics float32 [4], and camera_speed_instance (int).
  """
  _check_size(height, width)
  if intrinsics is None:
    intrinsics = default_intrinsics(height, width)
  scene = random_scene(seed, num_frames)
  frames = [render_frame(scene, k, intrinsics, height, width) for k in range(num_frames)]
  return {
      'images': np.stack([f.rgb for f in frames]),
      'depth': np.stack([f.depth for f in frames]),
      'masks': np.stack([f.instance for f in frames]),
      'egomotion': np.stack([egomotion(scene, k) for k in range(num_frames - 1)]).astype(
          np.float32),
      'object_translation': np.stack([
          object_translation(scene, k, frames[k].box_index) for k in range(num_frames - 1)
      ]).astype(np.float32),
      'intrinsics': np.asarray(intrinsics, np.float32),
      'camera_speed_instance': scene.camera_speed_instance,
  }


def render_sequence_job(args):
  """`render_sequence` of sequence `index` of a split, from one picklable tuple.

  args = (split_seed, index, height, width, num_frames); the entry point of
  the builder's worker processes.
  """
  split_seed, index, height, width, num_frames = args
  return render_sequence(sequence_seed(split_seed, index), height, width, num_frames)
