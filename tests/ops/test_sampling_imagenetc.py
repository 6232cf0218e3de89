"""elastic_transform and resample (new sampling ops)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

import degrade
from degrade.ops.sampling import _elastic_field, elastic_displacement, elastic_transform, resample
from tests.conftest import varied_images


def test_elastic_displacement_is_smoothed_scaled_uniform_noise():
    fld = _elastic_field(np.random.default_rng(0), (64, 48, 3))
    assert fld.shape == (2, 64, 48) and fld.min() >= -1 and fld.max() < 1
    dx, _ = elastic_displacement(fld, alpha=10.0, sigma=0.05, max_shift=0.005)
    # The imagecorruptions definition: gaussian(U(-m, m), σ·(H, W), reflect, truncate 3) · α.
    ref = ndimage.gaussian_filter(fld[0] * 0.005 * 64, sigma=(0.05 * 64, 0.05 * 48), mode="reflect", truncate=3.0) * 10
    np.testing.assert_allclose(dx, ref, atol=2e-4)
    dx2, _ = elastic_displacement(fld, alpha=20.0, sigma=0.05, max_shift=0.005)
    np.testing.assert_allclose(dx2, 2 * dx, rtol=1e-5, atol=1e-6)


def test_elastic_transform_samples_along_the_displacement():
    img = varied_images(40)[0]
    fld = _elastic_field(np.random.default_rng(1), img.shape)
    out = elastic_transform(img, alpha=25.0, field=fld)
    dx, dy = elastic_displacement(fld, alpha=25.0, sigma=0.01, max_shift=0.005)
    yy, xx = np.mgrid[0:40, 0:40]
    ref = np.stack([ndimage.map_coordinates(img[:, :, c], [yy + dy, xx + dx], order=1, mode="reflect")
                    for c in range(3)], axis=2)
    inner = (slice(4, -4), slice(4, -4))
    assert np.abs(out - ref)[inner].max() < 0.03 and np.abs(out - ref)[inner].mean() < 0.002
    assert elastic_transform(img, alpha=0.0, field=fld).tobytes() == img.tobytes()


def test_elastic_levels_are_imagecorruptions():
    op = degrade.get_op("elastic_transform")
    assert [op.params_at(t)["alpha"] for t in (0.2, 0.4, 0.6, 0.8, 1.0)] == pytest.approx(
        [250 * 0.05, 250 * 0.065, 250 * 0.085, 250 * 0.1, 250 * 0.12])
    assert op.params_at(0.5)["sigma"] == 0.01 and op.params_at(0.5)["max_shift"] == 0.005


def test_elastic_damage_grows_with_alpha_on_one_field():
    img = varied_images(48)[0]
    fld = _elastic_field(np.random.default_rng(2), img.shape)
    errs = [float(np.abs(elastic_transform(img, alpha=a, field=fld) - img).mean()) for a in (5, 10, 20, 40)]
    assert errs == sorted(errs)


def test_resample_bicubic_down_nearest_up_is_torch_interpolate():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    img = varied_images(32)[2]
    out = resample(img, scale=0.25, down="bicubic", up="nearest")
    t = torch.from_numpy(img).permute(2, 0, 1)[None].double()
    small = F.interpolate(t, size=(8, 8), mode="bicubic", align_corners=False)
    up = F.interpolate(small, size=(32, 32), mode="nearest")[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(out, np.clip(up, 0, 1), atol=2e-3)
    blocks = out.reshape(8, 4, 8, 4, 3)
    assert (blocks == blocks[:, :1, :, :1]).all()


def test_resample_area_averages_blocks():
    img = np.arange(16, dtype=np.float32).reshape(4, 4, 1) / 15
    out = resample(img, scale=0.5, down="area", up="nearest")
    assert (out[:2, :2, 0] * 15).round(3).tolist() == [[2.5, 2.5], [2.5, 2.5]]
    assert resample(img, scale=1.0).tobytes() == img.tobytes()
