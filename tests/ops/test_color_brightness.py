"""brightness (ImageNet-C's): HSV value raised, against scikit-image's HSV."""

from __future__ import annotations

import numpy as np
from skimage import color

import degrade
from degrade.ops.color import brightness
from tests.conftest import varied_images


def test_brightness_is_imagenet_cs_hsv_value_shift():
    for img in varied_images(24)[:4]:
        for c in (0.1, 0.3, 0.5):
            hsv = color.rgb2hsv(img.astype(np.float64))
            hsv[:, :, 2] = np.clip(hsv[:, :, 2] + c, 0, 1)
            np.testing.assert_allclose(brightness(img, amount=c), color.hsv2rgb(hsv), atol=2e-5)


def test_brightness_on_grey_adds_and_levels_are_imagenet_c():
    g = np.array([[[0.2], [0.9]]], np.float32)
    assert brightness(g, amount=0.3)[0, :, 0].round(6).tolist() == [0.5, 1.0]
    op = degrade.get_op("brightness")
    assert [round(op.params_at(t)["amount"], 12) for t in (0.2, 0.4, 0.6, 0.8, 1.0)] == [0.1, 0.2, 0.3, 0.4, 0.5]
