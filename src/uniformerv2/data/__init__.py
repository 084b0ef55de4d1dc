"""The test-time data pipeline: decoding, temporal sampling, test-time transforms, video lists and label maps.

>>> from uniformerv2.data import read_test_views, normalize
>>> views = read_test_views("video.mp4", clip_len=8, num_clips=4, num_crops=3, size=224)  # uint8 [12, 3, 8, 224, 224]
>>> logits = model(normalize(views)).mean(0)

Everything follows MMAction2 1.2.0's UniFormerV2 test pipeline (decord frame count, ``UniformSample``,
``Resize(scale=(-1, size))``, ``ThreeCrop``/``CenterCrop``, ``FormatShape('NCTHW')``); ``sampling="original"``
gives the original (SlowFast-based) code's test views instead.
"""
from .datasets import (SAMPLINGS, SHIPPED_LABEL_MAPS, VIDEO_EXTENSIONS, AnnotationError, TestViewsDataset,
                       VideoSample, collate_views, read_annotation_list, read_label_map, read_test_views,
                       sample_test_indices, scan_class_folders, view_crop_boxes, views_from_frames)
from .decode import (BACKENDS, VideoDecodeError, VideoReader, open_video, probe_num_frames, read_frames)
from .sampling import original_test_sample, uniform_sample
from .transforms import (MEAN, STD, center_crop_box, normalize, rescale_size, resize_short_side,
                         three_crop_boxes)

__all__ = [
    "AnnotationError",
    "BACKENDS",
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
