"""Vehicle detectors on the ego camera; each returns ego-frame :class:`~perception.boxes.Boxes`.

* :mod:`perception.detectors.centernet`: the CenterNet network and its decoding;
* :mod:`perception.detectors.learned`: :class:`~perception.detectors.learned.LearnedDetector`
  (a trained CenterNet, inference only) and its checkpoints;
* :mod:`perception.detectors.opencv`: the no-learning baseline (colour segmentation);
* :mod:`perception.detectors.train`: the CenterNet trainer (targets, loss, training loop).

Inference modules import no training module; this package imports nothing itself.
"""
