"""Video data: decoding, temporal sampling, transforms, test views, training augmentation, lists and label maps.

>>> from uniformerv2 import Protocol
>>> from uniformerv2.data import read_test_views, normalize
>>> views = read_test_views("video.mp4", Protocol(frames=8, size=224, clips=4, crops=3))  # uint8 [12, 3, 8, 224, 224]
>>> logits = model(normalize(views)).mean(0)

Everything follows MMAction2 1.2.0's UniFormerV2 pipelines (decord frame count, ``UniformSample``,
``Resize(scale=(-1, size))``, ``ThreeCrop``/``CenterCrop``, ``FormatShape('NCTHW')``); ``sampling="original"``
gives the original (SlowFast-based) code's test views instead.

* :mod:`.decode`: opening videos and reading frames (PyAV, decord, torchcodec)
* :mod:`.sampling`: which frames a clip takes; :mod:`.transforms`: resizing, crops, normalisation
* :mod:`.views`: the test views of a video; :mod:`.augment`: the training clips
* :mod:`.lists`: annotation lists, class folders, inputs; :mod:`.labels`: label maps

Checking lists before a run (broken videos, labels, duplicates) is :mod:`uniformerv2.check`.
"""

from ..errors import AnnotationError, VideoDecodeError
from .decode import BACKENDS, VideoReader, open_video, probe_num_frames, read_frames
from .labels import SHIPPED_LABEL_MAPS, read_label_map
from .lists import (
    VIDEO_EXTENSIONS,
    InputVideo,
    VideoSample,
    expand_inputs,
    find_videos,
    read_annotation_list,
    scan_class_folders,
)
from .sampling import original_test_sample, uniform_sample
from .transforms import MEAN, STD, center_crop_box, normalize, rescale_size, resize_short_side, three_crop_boxes
from .views import (
    SAMPLINGS,
    TestViewsDataset,
    collate_views,
    read_test_views,
    sample_test_indices,
    view_crop_boxes,
    views_from_frames,
)

__all__ = [
    "AnnotationError",
    "BACKENDS",
    "InputVideo",
    "MEAN",
    "SAMPLINGS",
    "SHIPPED_LABEL_MAPS",
    "STD",
    "TestViewsDataset",
    "VIDEO_EXTENSIONS",
    "VideoDecodeError",
    "VideoReader",
    "VideoSample",
    "center_crop_box",
    "collate_views",
    "expand_inputs",
    "find_videos",
    "normalize",
    "open_video",
    "original_test_sample",
    "probe_num_frames",
    "read_annotation_list",
    "read_frames",
    "read_label_map",
    "read_test_views",
    "rescale_size",
    "resize_short_side",
    "sample_test_indices",
    "scan_class_folders",
    "view_crop_boxes",
    "three_crop_boxes",
    "uniform_sample",
    "views_from_frames",
]
