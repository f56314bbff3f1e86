"""Vehicle detectors; each returns ego-frame :class:`~perception.boxes.Boxes`.

On the bird's-eye camera (``detect(frame)``):

* :mod:`perception.detectors.centernet`: the CenterNet network and its decoding;
* :mod:`perception.detectors.learned`: :class:`~perception.detectors.learned.LearnedDetector`
  (a trained CenterNet, inference only) and its checkpoints;
* :mod:`perception.detectors.opencv`: the no-learning baseline (colour segmentation);
* :mod:`perception.detectors.train`: the CenterNet trainer (targets, loss, training loop).

On the rig's perspective cameras (``detect(frame, camera)``, the camera a
:class:`~sim.geometry.pinhole.PinholeCamera`):

* :mod:`perception.detectors.mono3d`: the monocular 3D CenterNet (network, decoding,
  :class:`~perception.detectors.mono3d.Mono3DDetector`);
* :mod:`perception.detectors.train_mono3d`: its trainer;
* :mod:`perception.detectors.geometric`: the no-learning baseline (segmentation + inverse
  perspective mapping of each blob's road contact).

Inference modules import no training module; this package imports nothing itself.
"""
