import numpy as np

from benchmark.core.specs import Preprocessing, Window
from benchmark.data.transforms import slice_transform


def test_each_window_becomes_a_clipped_channel_at_the_target_size():
    hu = np.full((128, 128), -1000, np.float32)
    hu[32:96, 32:96] = 40  # soft tissue
    hu[60:68, 60:68] = 1000  # bone
    prep = Preprocessing(windows=[Window(center=40, width=400), Window(center=-600, width=1500),
                                  Window(center=400, width=1800)], channels=3, size=32)
    out = slice_transform(prep)(hu)
    assert out.shape == (3, 32, 32) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1
    assert out[0, 0, 0] == 0  # air is below the soft-tissue window
    assert abs(out[0, 10, 10] - 0.5) < 1e-6  # 40 HU is the soft-tissue window's centre
    assert out[1, 10, 10] > out[1, 0, 0]  # the lung window still separates air from tissue


def test_one_window_is_repeated_to_fill_the_channels():
    prep = Preprocessing(windows=[Window(center=40, width=400)], channels=3, size=16)
    out = slice_transform(prep)(np.linspace(-200, 300, 64 * 64, dtype=np.float32).reshape(64, 64))
    np.testing.assert_array_equal(out[0], out[1])
    np.testing.assert_array_equal(out[0], out[2])


def test_the_cache_keeps_one_plane_per_window_and_the_pipeline_copies_it():
    import torch

    from benchmark.core.specs import InputConvention
    from benchmark.evaluation.inputs import InputPipeline

    prep = Preprocessing(windows=[Window(center=40, width=400)], channels=3, size=16)
    hu = np.linspace(-200, 300, 64 * 64, dtype=np.float32).reshape(64, 64)
    stored = slice_transform(prep, fit=False)(hu)
    assert stored.shape == (1, 16, 16)
    expanded = InputPipeline(InputConvention(mean=None, std=None), "ct").unit(torch.from_numpy(stored)[None])
    np.testing.assert_array_equal(expanded[0].numpy(), slice_transform(prep)(hu))
