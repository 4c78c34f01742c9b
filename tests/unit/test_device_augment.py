"""The batched kornia augmentations: torchvision's semantics, per-image draws, reproducible on a CPU,
masks that follow geometry exactly and ignore photometry."""
import pytest
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from benchmark.core.specs import Augmentation
from benchmark.evaluation.protocols.augment import augment_batch, augmentation, blur_kernel, describe

SIZE = 32
NOTHING = dict(p=1.0, crop_scale=None, hflip=False, jitter=None, blur_kernel=0, sharpness=None)


def only(**step) -> Augmentation:
    return Augmentation(**{**NOTHING, **step})


def params(transform, name: str) -> dict:
    return next(item.data for item in transform._params if item.name.startswith(name))


def boxes(transform) -> list[tuple[int, int, int, int]]:
    """kornia's drawn crops as torchvision's (top, left, height, width)."""
    src = params(transform, "RandomResizedCrop")["src"].round().long()
    return [(int(s[0, 1]), int(s[0, 0]), int(s[2, 1] - s[0, 1] + 1), int(s[1, 0] - s[0, 0] + 1)) for s in src]


def test_flip_sharpness_and_blur_match_torchvision():
    images = torch.rand(6, 3, SIZE, SIZE)
    flipped, _ = augment_batch(augmentation(only(hflip=True), SIZE, 3), images)
    assert torch.equal(flipped, TF.horizontal_flip(images))
    sharp, _ = augment_batch(augmentation(only(sharpness=2.0), SIZE, 3), images)
    assert torch.allclose(sharp, TF.adjust_sharpness(images, 2.0), atol=1e-5)
    blurred, _ = augment_batch(augmentation(only(blur_kernel=5, blur_sigma=(0.8, 0.8)), SIZE, 3), images)
    assert torch.allclose(blurred, TF.gaussian_blur(images, [5, 5], [0.8, 0.8]), atol=1e-5)


def test_crop_and_brightness_match_torchvision_at_the_drawn_parameters():
    images = torch.rand(6, 3, SIZE, SIZE)
    crop = augmentation(only(crop_scale=(0.3, 1.0)), SIZE, 3)
    out, _ = augment_batch(crop, images)
    for i, box in enumerate(boxes(crop)):
        expected = TF.resized_crop(images[i], *box, [SIZE, SIZE], antialias=False)
        assert torch.allclose(out[i], expected, atol=1e-5)
    jitter = augmentation(only(jitter=(0.3, 0.0, 0.0, 0.0)), SIZE, 3)
    out, _ = augment_batch(jitter, images)
    factors = params(jitter, "ColorJitter")["brightness_factor"]
    for i, factor in enumerate(factors.tolist()):
        assert torch.allclose(out[i], TF.adjust_brightness(images[i], factor), atol=1e-6)


def test_a_fixed_seed_reproduces_a_batch_bit_for_bit_and_images_draw_their_own_parameters():
    spec = Augmentation(p=0.8, grayscale=True)
    images = torch.rand(1, 3, SIZE, SIZE).repeat(8, 1, 1, 1)

    def run(seed):
        torch.manual_seed(seed)
        return augment_batch(augmentation(spec, SIZE, 3), images.clone())[0]

    first = run(0)
    assert torch.equal(first, run(0))
    assert not torch.equal(first, run(1))
    assert any(not torch.equal(first[0], first[i]) for i in range(1, len(first)))
    assert first.min() >= 0 and first.max() <= 1


def test_a_mask_follows_crop_and_flip_exactly_and_keeps_its_labels():
    torch.manual_seed(0)
    labels = torch.tensor([0, 3, 7])
    masks = labels[torch.randint(0, 3, (6, SIZE, SIZE))]
    images = (masks[:, None].float() / 7).repeat(1, 3, 1, 1)
    transform = augmentation(only(crop_scale=(0.2, 1.0), hflip=True), SIZE, 3)
    _, out = augment_batch(transform, images, masks)
    assert out.dtype == masks.dtype and set(out.unique().tolist()) <= set(labels.tolist())
    for i, box in enumerate(boxes(transform)):
        cropped = TF.resized_crop(masks[i][None], *box, [SIZE, SIZE], interpolation=InterpolationMode.NEAREST_EXACT)
        assert torch.equal(out[i], TF.horizontal_flip(cropped)[0])


def test_photometric_steps_leave_the_mask_alone():
    masks = torch.randint(0, 4, (4, SIZE, SIZE))
    spec = Augmentation(p=1.0, crop_scale=None, hflip=False, grayscale=True, jitter=(0.5, 0.5, 0.5, 0.2))
    images, out = augment_batch(augmentation(spec, SIZE, 3), torch.rand(4, 3, SIZE, SIZE), masks)
    assert torch.equal(out, masks)


@pytest.mark.parametrize("channels", [1, 3])
def test_every_step_runs_on_the_checkpoints_channel_count(channels):
    spec = Augmentation(p=1.0, grayscale=True)
    images, masks = augment_batch(augmentation(spec, SIZE, channels), torch.rand(4, channels, SIZE, SIZE),
                                  torch.randint(0, 2, (4, SIZE, SIZE)))
    assert images.shape == (4, channels, SIZE, SIZE) and masks.shape == (4, SIZE, SIZE)


def test_no_steps_is_the_identity():
    images = torch.rand(2, 3, SIZE, SIZE)
    out, _ = augment_batch(augmentation(only(p=0.5), SIZE, 3), images)
    assert torch.equal(out, images)


def test_steps_follow_the_spec_in_the_studys_order():
    names = lambda spec, channels=3: [type(m).__name__ for m in augmentation(spec, SIZE, channels)]  # noqa: E731
    assert names(Augmentation(grayscale=True)) == ["RandomResizedCropPerImage", "RandomHorizontalFlip", "ColorJitter",
                                                   "RandomGrayscale", "RandomGaussianBlur", "RandomSharpness"]
    assert "RandomGrayscale" not in names(Augmentation(grayscale=True), channels=1)
    crop, *others = augmentation(Augmentation(p=0.7), SIZE, 3)
    assert crop.p_image == 0.7 and all(m.p == 0.7 for m in others)
    assert blur_kernel(Augmentation(), 256) == 25 and blur_kernel(Augmentation(blur_kernel=3), 256) == 3


def test_describe_records_the_implementation():
    import kornia

    record = describe(Augmentation(p=0.7))
    assert record["p"] == 0.7 and record["implementation"] == "kornia"
    assert record["implementation_version"] == kornia.__version__


def test_the_crop_is_drawn_per_image_and_an_image_left_alone_is_unchanged():
    torch.manual_seed(0)
    images = torch.rand(64, 1, SIZE, SIZE)
    out, _ = augment_batch(augmentation(only(p=0.5, crop_scale=(0.2, 0.5)), SIZE, 1), images)
    unchanged = [torch.equal(out[i], images[i]) for i in range(len(images))]
    assert 10 < sum(unchanged) < 54
